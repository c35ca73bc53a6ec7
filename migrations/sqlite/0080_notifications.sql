-- Issue 14 items 3 and 6, as PostgreSQL's 0080: notification settings, the durable outbox,
-- once-only marks, and the HighQ refresh token's expiry.
CREATE TABLE notification_settings (
    tenant_id       INTEGER PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    webhook_url     TEXT,
    webhook_secret  TEXT,
    email_to        TEXT    NOT NULL DEFAULT '[]',
    events          TEXT    NOT NULL DEFAULT '[]',
    error_threshold INTEGER NOT NULL DEFAULT 1 CHECK (error_threshold >= 0),
    daily_digest    INTEGER NOT NULL DEFAULT 0 CHECK (daily_digest IN (0, 1)),
    updated_by      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);

CREATE TABLE notification_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel         TEXT    NOT NULL CHECK (channel IN ('webhook', 'email')),
    event           TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    finished_at     TEXT
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at)
    WHERE status = 'pending';

CREATE TABLE notification_marks (
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    mark       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, mark)
);

ALTER TABLE target_tokens ADD COLUMN refresh_expires_at TEXT;
