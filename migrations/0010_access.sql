-- Who may use dirsync (issue 8): grants per person and tenant, sign-in attempts in flight,
-- server-side sessions, API tokens, and the audit log. Secrets that arrive in a cookie or a
-- header (session IDs, sign-in attempt IDs, API tokens) are stored only as SHA-256 hashes.

-- A person is an Entra identity: the directory (tid) and the object (oid) from the ID token.
-- `operator` holds everywhere (tenant_id NULL); `tenant_admin` and `viewer` hold on one tenant.
CREATE TABLE access_grants (
    id              bigserial PRIMARY KEY,
    entra_tenant_id uuid        NOT NULL,
    entra_object_id uuid        NOT NULL,
    role            text        NOT NULL CHECK (role IN ('operator', 'tenant_admin', 'viewer')),
    tenant_id       bigint      REFERENCES tenants (id) ON DELETE CASCADE,
    label           text        CHECK (length(label) <= 200),
    granted_by      text        NOT NULL,
    granted_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'operator') = (tenant_id IS NULL))
);

-- One grant per person and scope: granting again replaces the role.
CREATE UNIQUE INDEX access_grants_one_per_scope
    ON access_grants (entra_tenant_id, entra_object_id, COALESCE(tenant_id, 0));

-- An OpenID Connect sign-in between the redirect to Entra and the callback: what the callback
-- must find again (state, nonce, PKCE verifier). Taken once: a replayed callback finds nothing.
CREATE TABLE sign_in_attempts (
    id_hash       bytea       PRIMARY KEY,
    state         text        NOT NULL,
    nonce         text        NOT NULL,
    pkce_verifier text        NOT NULL,
    return_to     text        NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);

CREATE TABLE sessions (
    id_hash         bytea       PRIMARY KEY,
    entra_tenant_id uuid        NOT NULL,
    entra_object_id uuid        NOT NULL,
    name            text        NOT NULL,
    username        text,
    -- The app roles in the ID token at sign-in (`roles` claim).
    app_roles       text[]      NOT NULL DEFAULT '{}',
    csrf_token      text        NOT NULL,
    created_at      timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    -- The absolute expiry; the idle expiry is last_seen_at plus the configured idle time.
    expires_at      timestamptz NOT NULL
);

CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Tokens for automation: `dsy_` and 43 characters of randomness (256 bits). The prefix (the
-- first 12 characters) is shown in lists so a person can tell tokens apart; the whole token is
-- shown once, at creation.
CREATE TABLE api_tokens (
    id           bigserial   PRIMARY KEY,
    prefix       text        NOT NULL UNIQUE,
    secret_hash  bytea       NOT NULL UNIQUE,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role         text        NOT NULL CHECK (role IN ('operator', 'tenant_admin', 'viewer')),
    tenant_id    bigint      REFERENCES tenants (id) ON DELETE CASCADE,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    revoked_by   text,
    CHECK ((role = 'operator') = (tenant_id IS NULL)),
    CHECK (expires_at > created_at)
);

-- Sign-ins, grant changes, tokens, tenant changes, forced and approved runs, report downloads:
-- who, when, from where. Events of a tenant are kept for the tenant's report retention; the
-- others (tenant_id NULL) for a year.
CREATE TABLE audit_events (
    id            bigserial   PRIMARY KEY,
    at            timestamptz NOT NULL,
    tenant_id     bigint      REFERENCES tenants (id) ON DELETE CASCADE,
    actor         text        NOT NULL,
    actor_id      text,
    action        text        NOT NULL,
    outcome       text        NOT NULL CHECK (outcome IN ('ok', 'refused')),
    detail        jsonb       NOT NULL DEFAULT '{}',
    source_ip     text,
    forwarded_for text,
    user_agent    text
);

CREATE INDEX audit_events_newest_first ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, at DESC);
