-- coco SQLite schema, version 5: admission control (src/engine/admission.ts).
-- A task past its agent's limit is stored `queued` (its intent, never sent to the agent) until a
-- slot frees; `queued` joins the task machine of src/core/states.ts. SQLite cannot change a CHECK
-- in place, so the tasks table is rebuilt (its trigger goes with it and is created again).
INSERT INTO task_transitions (from_status, to_status) VALUES
  ('queued', 'created'), ('queued', 'running'), ('queued', 'succeeded'), ('queued', 'failed'),
  ('queued', 'cancelled');

CREATE TABLE tasks_v5 (
  command_id INTEGER NOT NULL,
  ordinal INTEGER NOT NULL,
  origin INTEGER NOT NULL,
  agent_id TEXT NOT NULL,
  verb TEXT NOT NULL,
  args TEXT,
  status TEXT NOT NULL CHECK (status = 'queued' OR status = 'created' OR status = 'running' OR status = 'succeeded' OR status = 'failed' OR status = 'cancelled'),
  result TEXT,
  error TEXT,
  deadline_at INTEGER,
  stop_requested INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  ended_at INTEGER,
  PRIMARY KEY (command_id, ordinal)
) WITHOUT ROWID;
INSERT INTO tasks_v5 SELECT command_id, ordinal, origin, agent_id, verb, args, status, result, error,
  deadline_at, stop_requested, created_at, ended_at FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_v5 RENAME TO tasks;

CREATE TRIGGER tasks_status_transition
AFTER UPDATE OF status ON tasks
WHEN OLD.status <> NEW.status
  AND NOT EXISTS (SELECT 1 FROM task_transitions WHERE from_status = OLD.status AND to_status = NEW.status)
BEGIN
  SELECT RAISE(ABORT, 'ILLEGAL_TRANSITION|task|' || OLD.command_id || '/' || OLD.ordinal || '|' || OLD.status || '|' || NEW.status);
END;
