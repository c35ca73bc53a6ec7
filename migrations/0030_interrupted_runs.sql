-- Issue 10: a run whose process died (SIGKILL, OOM, node loss) is closed as `interrupted` by the
-- next run of its tenant, its partial report kept. A run's exclusivity is a session advisory lock
-- held by the process running it (src/store/lease.rs), so it dies with the process; the partial
-- unique index on running runs stays as the last word.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'succeeded', 'completed with errors', 'failed', 'held', 'interrupted'));
