-- Issue 10 item 8, as in PostgreSQL's 0031: a tenant's HighQ access token is shared by every
-- process until it expires; a refresh happens inside a `BEGIN IMMEDIATE` transaction (the
-- file's write lock), one at a time.
ALTER TABLE target_tokens ADD COLUMN access_token TEXT;
ALTER TABLE target_tokens ADD COLUMN access_expires_at TEXT;
