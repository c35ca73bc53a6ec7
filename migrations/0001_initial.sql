-- dirsync's own records: tenants and their selected groups, the mirror of what was synced
-- (synced groups with their conversion history, synced users, memberships), runs and reports.

CREATE TABLE tenants (
    id                      bigserial PRIMARY KEY,
    key                     text NOT NULL UNIQUE,
    display_name            text NOT NULL,
    entra_tenant_id         uuid NOT NULL,
    time_zone               text NOT NULL,
    report_retention_months smallint NOT NULL CHECK (report_retention_months IN (1, 3, 6)),
    deactivation_status     text NOT NULL CHECK (deactivation_status IN ('inactive', 'archived')),
    deletion_threshold      bigint NOT NULL CHECK (deletion_threshold BETWEEN 0 AND 4294967295),
    source                  jsonb NOT NULL DEFAULT '{}',
    target                  jsonb NOT NULL DEFAULT '{}',
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- `position` keeps the order the operator listed the groups in.
CREATE TABLE selected_groups (
    tenant_id      bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_group_id uuid NOT NULL,
    role           text NOT NULL CHECK (role IN ('internal', 'basic')),
    position       integer NOT NULL,
    PRIMARY KEY (tenant_id, entra_group_id)
);

-- A synced group is linked to (Entra group, role). When converted (R12, R13) it becomes a system
-- group: it keeps its row as history, with the name it was renamed to.
CREATE TABLE synced_groups (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_group_id  uuid NOT NULL,
    role            text NOT NULL CHECK (role IN ('internal', 'basic')),
    target_group_id text NOT NULL,
    name            text NOT NULL,
    kind            text NOT NULL DEFAULT 'synced' CHECK (kind IN ('synced', 'system')),
    system_name     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    converted_at    timestamptz,
    CHECK ((kind = 'synced') = (system_name IS NULL AND converted_at IS NULL))
);

-- At most one managed group per Entra group; system groups accumulate as history.
CREATE UNIQUE INDEX synced_groups_one_synced_per_entra_group
    ON synced_groups (tenant_id, entra_group_id) WHERE kind = 'synced';

CREATE TABLE synced_users (
    tenant_id      bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    entra_user_id  uuid NOT NULL,
    target_user_id text NOT NULL,
    email          text NOT NULL,
    first_name     text NOT NULL,
    last_name      text NOT NULL,
    phone          text,
    job_title      text,
    role           text NOT NULL CHECK (role IN ('internal', 'basic')),
    status         text NOT NULL CHECK (status IN ('active', 'inactive', 'archived')),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entra_user_id)
);

CREATE INDEX synced_users_by_email ON synced_users (tenant_id, lower(email));

CREATE TABLE memberships (
    synced_group_id bigint NOT NULL REFERENCES synced_groups (id) ON DELETE CASCADE,
    entra_user_id   uuid NOT NULL,
    PRIMARY KEY (synced_group_id, entra_user_id)
);

CREATE TABLE runs (
    id             bigserial PRIMARY KEY,
    tenant_id      bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    trigger_kind   text NOT NULL CHECK (trigger_kind IN ('automatic', 'manual')),
    triggered_by   text,
    status         text NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'succeeded', 'completed with errors', 'failed', 'held')),
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    summary        jsonb,
    message        text,
    -- R18: the held run this run was approved from. Not a foreign key: purging the held run's
    -- report must not rewrite the history of the run that approved it.
    approves       bigint,
    progress_done  integer,
    progress_total integer,
    heartbeat_at   timestamptz
);

-- R20, R21: one running run per tenant, across every replica sharing the database.
CREATE UNIQUE INDEX runs_one_running_per_tenant ON runs (tenant_id) WHERE status = 'running';
CREATE INDEX runs_by_tenant_newest_first ON runs (tenant_id, started_at DESC, id DESC);

CREATE TABLE run_groups (
    run_id         bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq            integer NOT NULL,
    entra_group_id uuid NOT NULL,
    name           text NOT NULL,
    role           text NOT NULL CHECK (role IN ('internal', 'basic')),
    members_seen   bigint CHECK (members_seen >= 0),
    status         text NOT NULL CHECK (status IN ('found', 'deleted', 'failed', 'deselected')),
    message        text,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE report_entries (
    id        bigserial PRIMARY KEY,
    run_id    bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    subject   text NOT NULL CHECK (subject IN ('user', 'group', 'run')),
    entra_id  uuid,
    email     text,
    name      text,
    action    text NOT NULL,
    field     text,
    old_value text,
    new_value text,
    severity  text NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    message   text
);

CREATE INDEX report_entries_by_run ON report_entries (run_id, id);
