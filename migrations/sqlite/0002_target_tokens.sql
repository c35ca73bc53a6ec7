-- Rotating OAuth2 refresh tokens for targets (HighQ), as migrations/0002_target_tokens.sql.
CREATE TABLE target_tokens (
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    target_kind   TEXT    NOT NULL,
    refresh_token TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, target_kind)
);
