-- R21: what a run in progress is doing, for the UI's progress bar.
ALTER TABLE runs ADD COLUMN progress_stage text;

-- R20: each tenant's midnights, claimed by the replica that runs them, so that across any number
-- of replicas each midnight runs at most once.
CREATE TABLE scheduled_midnights (
    tenant_id  bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    midnight   timestamptz NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    run_id     bigint,
    PRIMARY KEY (tenant_id, midnight)
);
