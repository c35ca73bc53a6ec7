-- dirsync's own records on SQLite, mirroring migrations/0001_initial.sql: tenants and their
-- selected groups, the mirror of what was synced, runs and reports. UUIDs are 16-byte BLOBs,
-- JSON is TEXT, timestamps are RFC 3339 TEXT in UTC written by dirsync (never by SQLite's own
-- clock), so they compare in time order.

CREATE TABLE tenants (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    key                     TEXT NOT NULL UNIQUE,
    display_name            TEXT NOT NULL,
    entra_tenant_id         BLOB NOT NULL,
    time_zone               TEXT NOT NULL,
    report_retention_months INTEGER NOT NULL CHECK (report_retention_months IN (1, 3, 6)),
    deactivation_status     TEXT NOT NULL CHECK (deactivation_status IN ('inactive', 'archived')),
    deletion_threshold      INTEGER NOT NULL CHECK (deletion_threshold BETWEEN 0 AND 4294967295),
    source                  TEXT NOT NULL DEFAULT '{}',
    target                  TEXT NOT NULL DEFAULT '{}',
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);

CREATE TABLE selected_groups (
    tenant_id      INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_group_id BLOB NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('internal', 'basic')),
    position       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, entra_group_id)
);

CREATE TABLE synced_groups (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_group_id  BLOB NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('internal', 'basic')),
    target_group_id TEXT NOT NULL,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'synced' CHECK (kind IN ('synced', 'system')),
    system_name     TEXT,
    created_at      TEXT NOT NULL,
    converted_at    TEXT,
    CHECK ((kind = 'synced') = (system_name IS NULL AND converted_at IS NULL))
);

CREATE UNIQUE INDEX synced_groups_one_synced_per_entra_group
    ON synced_groups (tenant_id, entra_group_id) WHERE kind = 'synced';

CREATE TABLE synced_users (
    tenant_id      INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_user_id  BLOB NOT NULL,
    target_user_id TEXT NOT NULL,
    email          TEXT NOT NULL,
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    phone          TEXT,
    job_title      TEXT,
    role           TEXT NOT NULL CHECK (role IN ('internal', 'basic')),
    status         TEXT NOT NULL CHECK (status IN ('active', 'inactive', 'archived')),
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, entra_user_id)
);

CREATE INDEX synced_users_by_email ON synced_users (tenant_id, lower(email));

CREATE TABLE memberships (
    synced_group_id INTEGER NOT NULL REFERENCES synced_groups (id) ON DELETE CASCADE,
    entra_user_id   BLOB NOT NULL,
    PRIMARY KEY (synced_group_id, entra_user_id)
);

CREATE INDEX memberships_by_user ON memberships (entra_user_id);

CREATE TABLE runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    trigger_kind   TEXT NOT NULL CHECK (trigger_kind IN ('automatic', 'manual')),
    triggered_by   TEXT,
    status         TEXT NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'succeeded', 'completed with errors', 'failed', 'held',
                                     'rejected')),
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    summary        TEXT,
    message        TEXT,
    -- R18: the held run this run was approved from (not a foreign key, as in PostgreSQL).
    approves       INTEGER,
    progress_done  INTEGER,
    progress_total INTEGER,
    heartbeat_at   TEXT
);

CREATE UNIQUE INDEX runs_one_running_per_tenant ON runs (tenant_id) WHERE status = 'running';
CREATE INDEX runs_by_tenant_newest_first ON runs (tenant_id, started_at DESC, id DESC);

CREATE TABLE run_groups (
    run_id         INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    entra_group_id BLOB NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('internal', 'basic')),
    members_seen   INTEGER CHECK (members_seen >= 0),
    status         TEXT NOT NULL CHECK (status IN ('found', 'deleted', 'failed', 'deselected')),
    message        TEXT,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE report_entries (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    subject   TEXT NOT NULL CHECK (subject IN ('user', 'group', 'run')),
    entra_id  BLOB,
    email     TEXT,
    name      TEXT,
    action    TEXT NOT NULL,
    field     TEXT,
    old_value TEXT,
    new_value TEXT,
    severity  TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    message   TEXT
);

CREATE INDEX report_entries_by_run ON report_entries (run_id, id);
