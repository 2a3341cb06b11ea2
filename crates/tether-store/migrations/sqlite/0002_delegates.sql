-- tether schema, version 2 (SQLite): delegates, their tokens, and tasks.
-- Keep in step with ../postgres/0002_delegates.sql.

CREATE TABLE delegate_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    scope_key   TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

-- One row per delegate name in a scope. manager_id/connection_id name the live
-- connection (NULL when disconnected); a newer connection of the same delegate
-- replaces an older one.
CREATE TABLE delegates (
    id             TEXT PRIMARY KEY,
    scope_key      TEXT NOT NULL,
    name           TEXT NOT NULL,
    token_id       TEXT NOT NULL REFERENCES delegate_tokens (id),
    tags           TEXT NOT NULL,
    version        TEXT NOT NULL,
    hostname       TEXT NOT NULL,
    in_cluster     INTEGER NOT NULL,
    capacity       INTEGER NOT NULL,
    draining       INTEGER NOT NULL DEFAULT 0,
    manager_id     TEXT,
    connection_id  TEXT,
    connected_at   INTEGER,
    last_heartbeat INTEGER,
    created_at     INTEGER NOT NULL,
    UNIQUE (scope_key, name)
) STRICT;

-- payload never holds secret values: they are resolved when the task is handed
-- to a delegate, for that delegate only.
CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    scope_key        TEXT NOT NULL,
    payload          TEXT NOT NULL,
    selectors        TEXT NOT NULL,
    timeout_ms       INTEGER NOT NULL,
    state            TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    delegate_id      TEXT,
    lease_expires_at INTEGER,
    output           TEXT,
    error            TEXT,
    history          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    deadline_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX tasks_queued ON tasks (state, created_at);
CREATE INDEX tasks_delegate ON tasks (delegate_id, state);
