-- R21: a run's progress stage; R20: claimed midnights, as migrations/0003_progress_and_schedule.sql.
ALTER TABLE runs ADD COLUMN progress_stage TEXT;

CREATE TABLE scheduled_midnights (
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    midnight   TEXT    NOT NULL,
    claimed_at TEXT    NOT NULL,
    run_id     INTEGER,
    PRIMARY KEY (tenant_id, midnight)
);
