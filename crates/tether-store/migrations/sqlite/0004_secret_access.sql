-- tether schema, version 4 (SQLite): using a secret is a permission of its own.
-- Keep in step with ../postgres/0004_secret_access.sql.

-- usable_from: JSON list of scope keys whose connectors may use the secret
-- besides its own scope ('[]': its own scope only). allowed_hosts: JSON list of
-- the hosts its value may be sent to ('[]': any). Existing secrets get no
-- grants: a connector of another scope that used one is refused until an
-- editor of the secret's scope grants it (its connection test says how).
ALTER TABLE secrets ADD COLUMN usable_from TEXT NOT NULL DEFAULT '[]';
ALTER TABLE secrets ADD COLUMN allowed_hosts TEXT NOT NULL DEFAULT '[]';
