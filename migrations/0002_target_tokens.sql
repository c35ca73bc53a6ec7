-- Rotating OAuth2 refresh tokens for targets (HighQ): saved before the access token that came
-- with them is used, so a crash between refresh and save cannot lock a tenant out.
CREATE TABLE target_tokens (
    tenant_id     bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    target_kind   text        NOT NULL,
    refresh_token text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, target_kind)
);
