-- tether schema, version 9 (SQLite): live task events and deploy releases.
-- Keep in step with ../postgres/0009_task_events.sql.

-- What a delegate reported while a task ran, in order: (attempt, seq) is the
-- delegate's own numbering, so an event re-sent after a reconnect is stored
-- once. Streamed to clients from here (GET /api/v1/tasks/{id}/events).
CREATE TABLE task_events (
    task_id     TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    data        TEXT,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (task_id, attempt, seq)
) STRICT;

-- A summary of each release of a deploy (the release itself, with its
-- manifests, lives in the cluster as a Secret). One row per release number.
CREATE TABLE deploy_releases (
    scope_key   TEXT NOT NULL,
    connector   TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    summary     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope_key, connector, namespace, name, revision)
) STRICT;
