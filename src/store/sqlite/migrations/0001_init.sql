-- coco SQLite schema, version 1.
-- CHECKs spell value lists as OR chains: SQLite evaluates `x IN (...)` in a CHECK through an
-- ephemeral table per row, measured at ~4 us per insert, against ~0.4 us for the OR chain.
-- Integer keys and WITHOUT ROWID child tables: measured ~30% faster for the engine's group
-- commit than text keys. Secondary indexes are kept to the few queries that need them.
-- The migration ledger (coco_migrations) is created by the store before this file runs.

-- Store identity (store_id) and other one-off settings.
CREATE TABLE coco_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- The single writer of this store: at most one row (singleton = 1).
CREATE TABLE coco_owner (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  node_id TEXT NOT NULL,
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  since INTEGER NOT NULL
);

CREATE TABLE commands (
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  params_version INTEGER NOT NULL,
  params TEXT,
  status TEXT NOT NULL CHECK (status = 'pending' OR status = 'waiting' OR status = 'aborting' OR status = 'compensating' OR status = 'succeeded' OR status = 'failed' OR status = 'cancelled'),
  parent_id INTEGER,
  root_id INTEGER NOT NULL,
  seq INTEGER,
  origin_stage INTEGER,
  child_mode TEXT NOT NULL,
  failure_policy TEXT NOT NULL,
  compensation TEXT NOT NULL CHECK (compensation = 'none' OR compensation = 'compensating' OR compensation = 'compensated' OR compensation = 'failed'),
  error TEXT,
  result TEXT,
  -- The engine's mutable bookkeeping (declared and created counts, stage, journal position,
  -- flags, retry state, scratch data) as one JSON object: nobody filters on these, and one
  -- column instead of sixteen nearly halves the cost of writing a row (measured ~10 -> ~6 us).
  state TEXT NOT NULL,
  idempotency_key TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  ended_at INTEGER,
  tasks_cleared INTEGER NOT NULL,
  owner TEXT,
  lease_until INTEGER,
  -- 1 while the engine must resume the command: not ended, OR tasks not cleared, OR being
  -- compensated. Computed by the store on every insert and update (see rows.ts isActive).
  active INTEGER NOT NULL
);

-- loadActive: the active set, without scanning ended commands.
CREATE INDEX commands_active ON commands (id) WHERE active = 1;
-- Children of a command in journal order (loadActive's ended children, listCommands parentId).
CREATE INDEX commands_children ON commands (parent_id, seq) WHERE parent_id IS NOT NULL;
-- getCommandByKey, and at most one command per idempotency key.
CREATE UNIQUE INDEX commands_idempotency ON commands (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- listCommands rootId: a root's root_id is its own id, so only descendants need the index.
CREATE INDEX commands_root ON commands (root_id, id) WHERE parent_id IS NOT NULL;

CREATE TABLE tasks (
  command_id INTEGER NOT NULL,
  ordinal INTEGER NOT NULL,
  origin INTEGER NOT NULL,
  agent_id TEXT NOT NULL,
  verb TEXT NOT NULL,
  args TEXT,
  status TEXT NOT NULL CHECK (status = 'created' OR status = 'running' OR status = 'succeeded' OR status = 'failed' OR status = 'cancelled'),
  result TEXT,
  error TEXT,
  deadline_at INTEGER,
  stop_requested INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  ended_at INTEGER,
  PRIMARY KEY (command_id, ordinal)
) WITHOUT ROWID;

CREATE TABLE undo_steps (
  command_id INTEGER NOT NULL,
  ordinal INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  stage INTEGER NOT NULL,
  name TEXT NOT NULL,
  data TEXT,
  status TEXT NOT NULL CHECK (status = 'recorded' OR status = 'done' OR status = 'failed'),
  error TEXT,
  PRIMARY KEY (command_id, ordinal)
) WITHOUT ROWID;

CREATE TABLE entities (
  kind TEXT NOT NULL,
  id TEXT NOT NULL,
  value TEXT NOT NULL,
  command_id INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (kind, id)
) WITHOUT ROWID;

-- The state machines of src/core/states.ts (MACHINES), copied here so that the database itself
-- refuses an illegal transition, whatever the code does. Same-state updates are always legal
-- (the triggers only look at changes). test/store-conformance/sqlite.test.ts checks that these
-- rows equal MACHINES; a change to states.ts needs a new migration.
CREATE TABLE command_transitions (
  from_status TEXT NOT NULL,
  to_status TEXT NOT NULL,
  PRIMARY KEY (from_status, to_status)
) WITHOUT ROWID;
INSERT INTO command_transitions (from_status, to_status) VALUES
  ('pending', 'waiting'), ('pending', 'aborting'), ('pending', 'compensating'),
  ('pending', 'succeeded'), ('pending', 'failed'), ('pending', 'cancelled'),
  ('waiting', 'aborting'), ('waiting', 'compensating'), ('waiting', 'succeeded'),
  ('waiting', 'failed'), ('waiting', 'cancelled'),
  ('aborting', 'compensating'), ('aborting', 'failed'), ('aborting', 'cancelled'),
  ('compensating', 'failed'), ('compensating', 'cancelled');

CREATE TABLE compensation_transitions (
  from_status TEXT NOT NULL,
  to_status TEXT NOT NULL,
  PRIMARY KEY (from_status, to_status)
) WITHOUT ROWID;
INSERT INTO compensation_transitions (from_status, to_status) VALUES
  ('none', 'compensating'), ('none', 'compensated'), ('none', 'failed'),
  ('compensating', 'compensated'), ('compensating', 'failed');

CREATE TABLE task_transitions (
  from_status TEXT NOT NULL,
  to_status TEXT NOT NULL,
  PRIMARY KEY (from_status, to_status)
) WITHOUT ROWID;
INSERT INTO task_transitions (from_status, to_status) VALUES
  ('created', 'running'), ('created', 'succeeded'), ('created', 'failed'), ('created', 'cancelled'),
  ('running', 'succeeded'), ('running', 'failed'), ('running', 'cancelled');

CREATE TABLE undo_transitions (
  from_status TEXT NOT NULL,
  to_status TEXT NOT NULL,
  PRIMARY KEY (from_status, to_status)
) WITHOUT ROWID;
INSERT INTO undo_transitions (from_status, to_status) VALUES
  ('recorded', 'done'), ('recorded', 'failed');

-- The RAISE message is parsed by the store (connection.ts applyError) into an
-- IllegalTransitionError: 'ILLEGAL_TRANSITION|<machine>|<subject>|<from>|<to>'.
-- AFTER, not BEFORE: RAISE(ABORT) backs the statement out all the same, and SQLite need not
-- re-read the row after the trigger as it must after a BEFORE trigger (measured slightly cheaper).
CREATE TRIGGER commands_status_transition
AFTER UPDATE OF status ON commands
WHEN OLD.status <> NEW.status
  AND NOT EXISTS (SELECT 1 FROM command_transitions WHERE from_status = OLD.status AND to_status = NEW.status)
BEGIN
  SELECT RAISE(ABORT, 'ILLEGAL_TRANSITION|command|' || OLD.id || '|' || OLD.status || '|' || NEW.status);
END;

CREATE TRIGGER commands_compensation_transition
AFTER UPDATE OF compensation ON commands
WHEN OLD.compensation <> NEW.compensation
  AND NOT EXISTS (SELECT 1 FROM compensation_transitions WHERE from_status = OLD.compensation AND to_status = NEW.compensation)
BEGIN
  SELECT RAISE(ABORT, 'ILLEGAL_TRANSITION|compensation|of command ' || OLD.id || '|' || OLD.compensation || '|' || NEW.compensation);
END;

CREATE TRIGGER tasks_status_transition
AFTER UPDATE OF status ON tasks
WHEN OLD.status <> NEW.status
  AND NOT EXISTS (SELECT 1 FROM task_transitions WHERE from_status = OLD.status AND to_status = NEW.status)
BEGIN
  SELECT RAISE(ABORT, 'ILLEGAL_TRANSITION|task|' || OLD.command_id || '/' || OLD.ordinal || '|' || OLD.status || '|' || NEW.status);
END;

CREATE TRIGGER undo_steps_status_transition
AFTER UPDATE OF status ON undo_steps
WHEN OLD.status <> NEW.status
  AND NOT EXISTS (SELECT 1 FROM undo_transitions WHERE from_status = OLD.status AND to_status = NEW.status)
BEGIN
  SELECT RAISE(ABORT, 'ILLEGAL_TRANSITION|undo|' || OLD.command_id || '/' || OLD.ordinal || '|' || OLD.status || '|' || NEW.status);
END;
