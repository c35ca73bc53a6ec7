-- R18: a held run can be rejected instead of approved. A rejected run keeps its report (what it
-- would have done) and can no longer be approved; who rejected it, when and why is kept beside it.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'succeeded', 'completed with errors', 'failed', 'held', 'interrupted',
                      'rejected'));

CREATE TABLE run_rejections (
    run_id      bigint PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    rejected_by text NOT NULL CHECK (btrim(rejected_by) <> ''),
    rejected_at timestamptz NOT NULL DEFAULT now(),
    reason      text CHECK (char_length(reason) <= 500)
);
