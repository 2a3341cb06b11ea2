-- tether schema, version 1 (SQLite). Keep in step with ../postgres/0001_init.sql.
-- STRICT tables make SQLite enforce the declared column types.

-- Small key/value facts about the store itself, e.g. the id of the key every
-- secret is encrypted with.
CREATE TABLE tether_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE orgs (
    identifier  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE projects (
    org_identifier TEXT NOT NULL REFERENCES orgs (identifier),
    identifier     TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (org_identifier, identifier)
) STRICT;

-- org_identifier/project_identifier repeat what scope_key says so that foreign
-- keys keep secrets and connectors from outliving (or predating) their org or
-- project. A NULL column switches the composite key off, as the account scope needs.
CREATE TABLE secrets (
    id                 INTEGER PRIMARY KEY,
    scope_key          TEXT NOT NULL,
    org_identifier     TEXT REFERENCES orgs (identifier),
    project_identifier TEXT,
    identifier         TEXT NOT NULL,
    name               TEXT NOT NULL,
    name_key           TEXT NOT NULL,
    description        TEXT,
    tags               TEXT NOT NULL,
    key_id             TEXT NOT NULL,
    nonce              BLOB NOT NULL,
    ciphertext         BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    UNIQUE (scope_key, identifier),
    FOREIGN KEY (org_identifier, project_identifier) REFERENCES projects (org_identifier, identifier)
) STRICT;

CREATE TABLE connectors (
    id                 INTEGER PRIMARY KEY,
    scope_key          TEXT NOT NULL,
    org_identifier     TEXT REFERENCES orgs (identifier),
    project_identifier TEXT,
    identifier         TEXT NOT NULL,
    name               TEXT NOT NULL,
    name_key           TEXT NOT NULL,
    credential_type    TEXT NOT NULL,
    auth_type          TEXT,
    body               TEXT NOT NULL,
    status             TEXT NOT NULL,
    connectivity       TEXT NOT NULL,
    last_connected_at  INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    UNIQUE (scope_key, identifier),
    FOREIGN KEY (org_identifier, project_identifier) REFERENCES projects (org_identifier, identifier)
) STRICT;

CREATE INDEX connectors_scope_name ON connectors (scope_key, name_key);
CREATE INDEX connectors_scope_created ON connectors (scope_key, created_at);
CREATE INDEX connectors_scope_updated ON connectors (scope_key, updated_at);

-- Which secret each secret-reference field of a connector resolved to. The
-- RESTRICT side keeps a referenced secret from being deleted even by a writer
-- that skipped the store's own check.
CREATE TABLE connector_secret_refs (
    connector_id INTEGER NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    field        TEXT NOT NULL,
    reference    TEXT NOT NULL,
    secret_id    INTEGER NOT NULL REFERENCES secrets (id),
    PRIMARY KEY (connector_id, field)
) STRICT;

CREATE INDEX connector_secret_refs_secret ON connector_secret_refs (secret_id);

CREATE TABLE api_tokens (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    scope_key          TEXT NOT NULL,
    role               TEXT NOT NULL,
    token_hash         TEXT NOT NULL UNIQUE,
    created_at         INTEGER NOT NULL,
    revoked_at         INTEGER
) STRICT;

CREATE INDEX api_tokens_scope ON api_tokens (scope_key);
