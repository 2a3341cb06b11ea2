-- tether schema, version 12 (postgres): what an exec, attach or port-forward
-- session reached. Keep in step with ../sqlite/0012_audit_session_target.sql.

-- The container of an exec or attach (as the request names it; none: the
-- pod's default container), the program an exec ran (the first word of its
-- command only: arguments can carry secrets and are never recorded), and the
-- ports of a port-forward (comma-separated).
ALTER TABLE kube_audit ADD COLUMN container TEXT;
ALTER TABLE kube_audit ADD COLUMN program TEXT;
ALTER TABLE kube_audit ADD COLUMN ports TEXT;
