-- tether schema, version 6 (postgres): using a connector's cluster through tether.
-- Keep in step with ../sqlite/0006_kube_proxy.sql.

-- An API token may use the Kubernetes API of connectors in its scope only
-- when granted (kube_access = 1), optionally of one connector only
-- (kube_connector = '<scope key>/<identifier>'), and may expire.
ALTER TABLE api_tokens ADD COLUMN kube_access BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN kube_connector TEXT;
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;

-- One row per proxied request (or exec/attach/port-forward session): who,
-- where, what, how it ended. Never a header, a body or a credential.
CREATE TABLE kube_audit (
    id            BIGSERIAL PRIMARY KEY,
    started_at    BIGINT NOT NULL,
    ended_at      BIGINT NOT NULL,
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
    status        BIGINT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    bytes_in      BIGINT NOT NULL,
    bytes_out     BIGINT NOT NULL,
    error         TEXT
);

CREATE INDEX kube_audit_scope_time ON kube_audit (scope_key, started_at);
CREATE INDEX kube_audit_time ON kube_audit (started_at);

-- Where each manager takes proxied requests, so a manager that holds no tunnel
-- to an eligible delegate can pass the request to one that does.
CREATE TABLE proxy_managers (
    manager_id  TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
