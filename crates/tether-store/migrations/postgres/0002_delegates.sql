-- tether schema, version 2 (PostgreSQL): delegates, their tokens, and tasks.
-- Keep in step with ../sqlite/0002_delegates.sql.

CREATE TABLE delegate_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    scope_key   TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

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
    in_cluster     BIGINT NOT NULL,
    capacity       BIGINT NOT NULL,
    draining       BIGINT NOT NULL DEFAULT 0,
    manager_id     TEXT,
    connection_id  TEXT,
    connected_at   BIGINT,
    last_heartbeat BIGINT,
    created_at     BIGINT NOT NULL,
    UNIQUE (scope_key, name)
);

-- payload never holds secret values: they are resolved when the task is handed
-- to a delegate, for that delegate only.
CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    scope_key        TEXT NOT NULL,
    payload          TEXT NOT NULL,
    selectors        TEXT NOT NULL,
    timeout_ms       BIGINT NOT NULL,
    state            TEXT NOT NULL,
    attempt          BIGINT NOT NULL,
    max_attempts     BIGINT NOT NULL,
    delegate_id      TEXT,
    lease_expires_at BIGINT,
    output           TEXT,
    error            TEXT,
    history          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    deadline_at      BIGINT NOT NULL
);

CREATE INDEX tasks_queued ON tasks (state, created_at);
CREATE INDEX tasks_delegate ON tasks (delegate_id, state);
