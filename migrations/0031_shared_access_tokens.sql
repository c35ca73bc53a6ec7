-- Issue 10 item 8: a tenant's HighQ access token is shared by every process until it expires, so
-- refreshes (each of which rotates the refresh token) are rare; refreshing happens under a row
-- lock on the tenant's token row (`SELECT … FOR UPDATE`), one process at a time.
ALTER TABLE target_tokens ADD COLUMN access_token text;
ALTER TABLE target_tokens ADD COLUMN access_expires_at timestamptz;
