-- Issue 14, as in PostgreSQL's 0060: runs of a few people picked by an admin (`on_demand`), and
-- midnights a paused or quarantined tenant skipped (`skipped`). SQLite cannot alter a CHECK
-- constraint, so the runs table is rebuilt as in 0030 (migrations run with foreign keys off).
CREATE TABLE runs_with_new_kinds (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    trigger_kind   TEXT NOT NULL CHECK (trigger_kind IN ('automatic', 'manual', 'on_demand')),
    triggered_by   TEXT,
    status         TEXT NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'succeeded', 'completed with errors', 'failed', 'held',
                                     'interrupted', 'rejected', 'skipped')),
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    summary        TEXT,
    message        TEXT,
    -- R18: the held run this run was approved from (not a foreign key, as in PostgreSQL).
    approves       INTEGER,
    progress_done  INTEGER,
    progress_total INTEGER,
    heartbeat_at   TEXT,
    progress_stage TEXT,
    approved_deactivations INTEGER CHECK (approved_deactivations >= 0)
);
INSERT INTO runs_with_new_kinds (id, tenant_id, trigger_kind, triggered_by, status, started_at,
                                   finished_at, summary, message, approves, progress_done,
                                   progress_total, heartbeat_at, progress_stage,
                                   approved_deactivations)
SELECT id, tenant_id, trigger_kind, triggered_by, status, started_at, finished_at, summary, message,
       approves, progress_done, progress_total, heartbeat_at, progress_stage, approved_deactivations
FROM runs;
DROP TABLE runs;
ALTER TABLE runs_with_new_kinds RENAME TO runs;
CREATE UNIQUE INDEX runs_one_running_per_tenant ON runs (tenant_id) WHERE status = 'running';
CREATE INDEX runs_by_tenant_newest_first ON runs (tenant_id, started_at DESC, id DESC);
CREATE UNIQUE INDEX runs_approve_a_held_run_once
    ON runs (approves) WHERE approves IS NOT NULL AND approved_deactivations IS NOT NULL;
