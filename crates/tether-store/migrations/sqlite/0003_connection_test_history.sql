-- tether schema, version 3 (SQLite): the history of connection test results.
-- Keep in step with ../postgres/0003_connection_test_history.sql.

-- The last N results of each connector, newest by id. `report` is the whole
-- report as JSON (stages, permissions, missing rules, hints); it never holds a
-- secret value. Rows go with their connector.
CREATE TABLE connection_test_results (
    id           INTEGER PRIMARY KEY,
    connector_id INTEGER NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    status       TEXT NOT NULL,
    tested_at    INTEGER NOT NULL,
    recorded_at  INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    trigger_kind TEXT NOT NULL,
    delegate_id  TEXT,
    task_id      TEXT,
    report       TEXT NOT NULL
) STRICT;

CREATE INDEX connection_test_results_connector ON connection_test_results (connector_id, id);
