-- Issue 14: two new kinds of run record. A run of a few people picked by an admin ("sync one
-- person now") has its own trigger, `on_demand`; a midnight that a paused or quarantined tenant did
-- not run is recorded as a run with status `skipped` (and why, in its message), not silently lost.
ALTER TABLE runs DROP CONSTRAINT runs_trigger_kind_check;
ALTER TABLE runs ADD CONSTRAINT runs_trigger_kind_check
    CHECK (trigger_kind IN ('automatic', 'manual', 'on_demand'));
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'succeeded', 'completed with errors', 'failed', 'held', 'interrupted',
                      'rejected', 'skipped'));
