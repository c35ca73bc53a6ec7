-- R18: an approval is used once, as migrations/0020_approvals.sql.
ALTER TABLE runs ADD COLUMN approved_deactivations INTEGER CHECK (approved_deactivations >= 0);

CREATE UNIQUE INDEX runs_approve_a_held_run_once
    ON runs (approves) WHERE approves IS NOT NULL AND approved_deactivations IS NOT NULL;
