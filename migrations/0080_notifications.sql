-- Issue 14 items 3 and 6: notifications. A tenant's settings (webhook, email recipients, which
-- events, error threshold, daily digest); a durable outbox the delivery worker drains, so a
-- restart loses nothing; and once-only marks (a day's digest, a credential's expiry warning at a
-- threshold), claimed like a midnight, so no replica sends one twice.
CREATE TABLE notification_settings (
    tenant_id       bigint      PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    webhook_url     text,
    -- The HMAC key: a value or an `env:NAME` reference, as other tenant secrets.
    webhook_secret  text,
    email_to        jsonb       NOT NULL DEFAULT '[]',
    events          jsonb       NOT NULL DEFAULT '[]',
    error_threshold bigint      NOT NULL DEFAULT 1 CHECK (error_threshold >= 0),
    daily_digest    smallint    NOT NULL DEFAULT 0 CHECK (daily_digest IN (0, 1)),
    updated_by      text        NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE notification_outbox (
    id              bigserial   PRIMARY KEY,
    tenant_id       bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel         text        NOT NULL CHECK (channel IN ('webhook', 'email')),
    event           text        NOT NULL,
    payload         jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at)
    WHERE status = 'pending';

CREATE TABLE notification_marks (
    tenant_id  bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    mark       text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, mark)
);

-- Item 6: when the HighQ refresh token stops working (`refresh_token_expires_in` of the token
-- response that brought it).
ALTER TABLE target_tokens ADD COLUMN refresh_expires_at timestamptz;
