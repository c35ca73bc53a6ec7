-- Issue 14: pause and resume, and quarantine, as in PostgreSQL's 0090.
CREATE TABLE tenant_pauses (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    paused_by TEXT    NOT NULL,
    paused_at TEXT    NOT NULL,
    reason    TEXT
);

CREATE TABLE service_pauses (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    paused_by TEXT    NOT NULL,
    paused_at TEXT    NOT NULL,
    reason    TEXT
);

CREATE TABLE quarantine_marks (
    tenant_id     INTEGER PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    lifted_at     TEXT,
    lifted_by     TEXT,
    lifted_reason TEXT,
    announced_run INTEGER
);
