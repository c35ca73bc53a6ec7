-- Issue 14: pause and resume (a tenant, or the whole service for maintenance) and quarantine.
-- A row in tenant_pauses means the tenant is paused: its midnights are recorded as skipped runs
-- and forced runs are refused until it is resumed (the row deleted). service_pauses holds at most
-- one row: the global pause. Who and why are in the audit log as well.
CREATE TABLE tenant_pauses (
    tenant_id bigint      PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    paused_by text        NOT NULL,
    paused_at timestamptz NOT NULL,
    reason    text
);

CREATE TABLE service_pauses (
    id        smallint    PRIMARY KEY CHECK (id = 1),
    paused_by text        NOT NULL,
    paused_at timestamptz NOT NULL,
    reason    text
);

-- Quarantine is worked out from the runs (failed automatic runs in a row); this keeps what the
-- runs cannot say: when it was last lifted by a fix (runs before then no longer count), and the
-- failed run whose quarantine was announced, so each quarantine is announced once.
CREATE TABLE quarantine_marks (
    tenant_id     bigint      PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    lifted_at     timestamptz,
    lifted_by     text,
    lifted_reason text,
    announced_run bigint
);
