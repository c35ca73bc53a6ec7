-- R18: an approval is used once. The run that carries out the approval of a held run records how
-- many deactivations the approval allows; at most one such run exists per held run, whichever
-- replica received the approval. (Runs begun with `approves` before this migration carry no
-- count and are left out of the index, so applying it never fails on old history.)
ALTER TABLE runs ADD COLUMN approved_deactivations bigint CHECK (approved_deactivations >= 0);

CREATE UNIQUE INDEX runs_approve_a_held_run_once
    ON runs (approves) WHERE approves IS NOT NULL AND approved_deactivations IS NOT NULL;
