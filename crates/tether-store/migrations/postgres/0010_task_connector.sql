-- tether schema, version 10 (PostgreSQL): a task's connector as a column, and
-- the follow-up a task leaves when its delegate is lost.
-- Keep in step with ../sqlite/0010_task_connector.sql.

-- The connector a task runs through (connection tests, deploys, builds), so
-- a connector's builds are one indexed query, however many other tasks exist.
ALTER TABLE tasks ADD COLUMN connector TEXT;
UPDATE tasks SET connector = payload::jsonb ->> 'connector'
    WHERE kind IN ('connectionTest', 'deploy', 'build');
CREATE INDEX tasks_by_connector ON tasks (scope_key, connector, kind, created_at);

-- A task that must not run twice (a build) is not offered again when its
-- delegate is lost: it fails, and this task (JSON: kind, payload, ...) is
-- queued in its place, e.g. the clean-up of what the lost attempt left.
ALTER TABLE tasks ADD COLUMN on_lost TEXT;
