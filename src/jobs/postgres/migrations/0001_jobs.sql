-- coco job monitor schema, version 1 (PostgreSQL): the user's view of jobs and their steps,
-- derived from the engine's tables (which stay the truth) and kept by the job monitor.
-- Runs inside the job store's migration transaction with search_path set to the store's schema,
-- so the unqualified names below land there. The ledger (coco_jobs_migrations) is created by the
-- job store before this file runs.
-- Same tables, columns and constraints as the SQLite job store's 0001_jobs.sql, with these types:
-- - every integer is bigint: ids and ms timestamps do not fit in 32 bits, and counts and
--   ordinals keep SQLite's 64-bit range, so both stores accept the same values;
-- - error stays JSON text, not jsonb: jsonb refuses \u0000 inside strings, and an error message
--   from an agent may hold anything; the reader parses and validates it either way;
-- - undo is a boolean.
-- No foreign keys and no cascades: the view must never delete anything by side effect.
-- fillfactor 80 leaves room on each page for HOT updates: a step's row is rewritten on every
-- progress report, and none of the columns that change on such updates is indexed.

-- One row per root command.
CREATE TABLE job_jobs (
  id bigint PRIMARY KEY,
  type text NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
  compensation text NOT NULL CHECK (compensation IN ('none', 'compensating', 'compensated', 'failed')),
  progress double precision NOT NULL CHECK (progress >= 0 AND progress <= 100),
  error text,
  started_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  ended_at bigint
) WITH (fillfactor = 80);

-- listJobs by status (running jobs at start-up, the dashboard's filters), newest first.
CREATE INDEX job_jobs_status ON job_jobs (status, id);
-- listJobs by type, newest first.
CREATE INDEX job_jobs_type ON job_jobs (type, id);

-- One row per command of a job's tree and per task. key: 'c<commandId>' or 't<commandId>.<ordinal>'.
CREATE TABLE job_steps (
  job_id bigint NOT NULL,
  key text NOT NULL,
  parent_key text,
  kind text NOT NULL CHECK (kind IN ('command', 'task')),
  name text NOT NULL,
  command_id bigint NOT NULL,
  task_ordinal bigint,
  -- A command status for a command step, a task status for a task step. Checked by the reader
  -- (src/jobs/rows.ts), not by a CHECK here, as in the SQLite store: both stores accept
  -- the same writes, and this table is a derived view written by one typed writer.
  status text NOT NULL,
  compensation text NOT NULL CHECK (compensation IN ('none', 'compensating', 'compensated', 'failed')),
  progress double precision NOT NULL CHECK (progress >= 0 AND progress <= 100),
  expected_tasks bigint NOT NULL,
  expected_children bigint NOT NULL,
  undo boolean NOT NULL,
  error text,
  started_at bigint NOT NULL,
  ended_at bigint,
  -- The engine's last recorded change of the command (tasks: end, else creation).
  updated_at bigint NOT NULL,
  PRIMARY KEY (job_id, key)
) WITH (fillfactor = 80);

-- One-off values of the monitor: 'watermark' is the highest engine command id whose changes the
-- view holds (written in the same transaction as those changes).
CREATE TABLE coco_job_meta (
  key text PRIMARY KEY,
  value bigint NOT NULL
);
