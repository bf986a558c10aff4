-- CHECKs spell value lists as OR chains (an IN list in a CHECK costs ~4 us per row in SQLite).
-- coco job monitor schema, version 1: the user's view of jobs and their steps, derived from the
-- engine's tables (which stay the truth) and kept by the job monitor on the same database file.
-- The migration ledger (coco_jobs_migrations) is created by the job store before this file runs.
-- No foreign keys and no cascades: the view must never delete anything by side effect.

-- One row per root command.
CREATE TABLE job_jobs (
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status = 'running' OR status = 'succeeded' OR status = 'failed' OR status = 'cancelled'),
  compensation TEXT NOT NULL CHECK (compensation = 'none' OR compensation = 'compensating' OR compensation = 'compensated' OR compensation = 'failed'),
  progress REAL NOT NULL CHECK (progress >= 0 AND progress <= 100),
  error TEXT,
  started_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  ended_at INTEGER
);

-- listJobs by status (running jobs at start-up, the dashboard's filters), newest first.
CREATE INDEX job_jobs_status ON job_jobs (status, id);
-- listJobs by type, newest first.
CREATE INDEX job_jobs_type ON job_jobs (type, id);

-- One row per command of a job's tree and per task. key: 'c<commandId>' or 't<commandId>.<ordinal>'.
CREATE TABLE job_steps (
  job_id INTEGER NOT NULL,
  key TEXT NOT NULL,
  parent_key TEXT,
  kind TEXT NOT NULL CHECK (kind = 'command' OR kind = 'task'),
  name TEXT NOT NULL,
  command_id INTEGER NOT NULL,
  task_ordinal INTEGER,
  -- A command status for a command step, a task status for a task step. Checked by the reader
  -- (src/jobs/rows.ts), not by a CHECK here: the per-kind CHECK measured about a quarter
  -- of the cost of an upsert, and this table is a derived view written by one typed writer.
  status TEXT NOT NULL,
  compensation TEXT NOT NULL CHECK (compensation = 'none' OR compensation = 'compensating' OR compensation = 'compensated' OR compensation = 'failed'),
  progress REAL NOT NULL CHECK (progress >= 0 AND progress <= 100),
  expected_tasks INTEGER NOT NULL,
  expected_children INTEGER NOT NULL,
  undo INTEGER NOT NULL CHECK (undo = 0 OR undo = 1),
  error TEXT,
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  -- The engine's last recorded change of the command (tasks: end, else creation).
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (job_id, key)
) WITHOUT ROWID;

-- One-off values of the monitor: 'watermark' is the highest engine command id whose changes the
-- view holds (written in the same transaction as those changes).
CREATE TABLE coco_job_meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
