-- Who may use dirsync, as migrations/0010_access.sql: grants, sign-in attempts, sessions, API
-- tokens (secrets only as SHA-256 hashes) and the audit log. A session's app roles are a JSON
-- array of strings.

CREATE TABLE access_grants (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    entra_tenant_id BLOB    NOT NULL,
    entra_object_id BLOB    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('operator', 'tenant_admin', 'viewer')),
    tenant_id       INTEGER REFERENCES tenants (id) ON DELETE CASCADE,
    label           TEXT    CHECK (length(label) <= 200),
    granted_by      TEXT    NOT NULL,
    granted_at      TEXT    NOT NULL,
    CHECK ((role = 'operator') = (tenant_id IS NULL))
);

CREATE UNIQUE INDEX access_grants_one_per_scope
    ON access_grants (entra_tenant_id, entra_object_id, COALESCE(tenant_id, 0));

CREATE TABLE sign_in_attempts (
    id_hash       BLOB PRIMARY KEY,
    state         TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);

CREATE TABLE sessions (
    id_hash         BLOB PRIMARY KEY,
    entra_tenant_id BLOB NOT NULL,
    entra_object_id BLOB NOT NULL,
    name            TEXT NOT NULL,
    username        TEXT,
    app_roles       TEXT NOT NULL DEFAULT '[]',
    csrf_token      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    expires_at      TEXT NOT NULL
);

CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    prefix       TEXT    NOT NULL UNIQUE,
    secret_hash  BLOB    NOT NULL UNIQUE,
    name         TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role         TEXT    NOT NULL CHECK (role IN ('operator', 'tenant_admin', 'viewer')),
    tenant_id    INTEGER REFERENCES tenants (id) ON DELETE CASCADE,
    created_by   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT,
    revoked_by   TEXT,
    CHECK ((role = 'operator') = (tenant_id IS NULL)),
    CHECK (expires_at > created_at)
);

CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            TEXT    NOT NULL,
    tenant_id     INTEGER REFERENCES tenants (id) ON DELETE CASCADE,
    actor         TEXT    NOT NULL,
    actor_id      TEXT,
    action        TEXT    NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome IN ('ok', 'refused')),
    detail        TEXT    NOT NULL DEFAULT '{}',
    source_ip     TEXT,
    forwarded_for TEXT,
    user_agent    TEXT
);

CREATE INDEX audit_events_newest_first ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, at DESC);
