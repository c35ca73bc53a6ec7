-- R18: a held run can be rejected instead of approved (PostgreSQL's 0051). The status value
-- `rejected` is in the runs table's check (0001, and 0030's rebuild): the SQLite store had not
-- shipped when rejection came, so no further rebuild was needed.
CREATE TABLE run_rejections (
    run_id      INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    rejected_by TEXT NOT NULL CHECK (trim(rejected_by) <> ''),
    rejected_at TEXT NOT NULL,
    reason      TEXT CHECK (length(reason) <= 500)
);
