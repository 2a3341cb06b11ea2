-- tether schema, version 6 (sqlite): using a connector's cluster through tether.
-- Keep in step with ../postgres/0006_kube_proxy.sql.

-- An API token may use the Kubernetes API of connectors in its scope only
-- when granted (kube_access = 1), optionally of one connector only
-- (kube_connector = '<scope key>/<identifier>'), and may expire.
ALTER TABLE api_tokens ADD COLUMN kube_access INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN kube_connector TEXT;
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;

-- One row per proxied request (or exec/attach/port-forward session): who,
-- where, what, how it ended. Never a header, a body or a credential.
CREATE TABLE kube_audit (
    id            INTEGER PRIMARY KEY,
    started_at    INTEGER NOT NULL,
    ended_at      INTEGER NOT NULL,
    token_id      TEXT NOT NULL,
    caller        TEXT NOT NULL,
    scope_key     TEXT NOT NULL,
    connector     TEXT NOT NULL,
    delegate_id   TEXT,
    verb          TEXT NOT NULL,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    namespace     TEXT,
    resource      TEXT,
    name          TEXT,
    session       TEXT,
    status        INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL,
    bytes_in      INTEGER NOT NULL,
    bytes_out     INTEGER NOT NULL,
    error         TEXT
) STRICT;

CREATE INDEX kube_audit_scope_time ON kube_audit (scope_key, started_at);
CREATE INDEX kube_audit_time ON kube_audit (started_at);

-- Where each manager takes proxied requests, so a manager that holds no tunnel
-- to an eligible delegate can pass the request to one that does.
CREATE TABLE proxy_managers (
    manager_id  TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
