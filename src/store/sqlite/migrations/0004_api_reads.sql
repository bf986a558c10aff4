-- coco SQLite schema, version 4: what the API reads (GET /v1/commands, GET /v1/commands/:id).
--
-- Each command's stored statuses, oldest first (the detail's statusHistory). Written by triggers,
-- so that every path that stores a status (batches, recovery, a cancel of a held command) records
-- it without the engine knowing: one row per status a command was STORED with — statuses a
-- command passed through within one batch (pending -> waiting -> succeeded in one commit) are
-- not seen. A command never returns to a status (the transition table has no cycles), hence the
-- key. `at` is the row's updated_at when the status was written.
CREATE TABLE command_status_history (
  command_id INTEGER NOT NULL,
  status TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (command_id, status)
) WITHOUT ROWID;

INSERT OR IGNORE INTO command_status_history (command_id, status, at)
  SELECT id, 'pending', created_at FROM commands;
INSERT OR IGNORE INTO command_status_history (command_id, status, at)
  SELECT id, status, updated_at FROM commands;

CREATE TRIGGER commands_status_history_insert
AFTER INSERT ON commands
BEGIN
  INSERT OR IGNORE INTO command_status_history (command_id, status, at)
    VALUES (NEW.id, NEW.status, NEW.updated_at);
END;

CREATE TRIGGER commands_status_history_update
AFTER UPDATE OF status ON commands
WHEN OLD.status <> NEW.status
BEGIN
  INSERT OR IGNORE INTO command_status_history (command_id, status, at)
    VALUES (NEW.id, NEW.status, NEW.updated_at);
END;

-- Retention deletes a command's history with it.
CREATE TRIGGER commands_status_history_delete
AFTER DELETE ON commands
BEGIN
  DELETE FROM command_status_history WHERE command_id = OLD.id;
END;

-- GET /v1/commands?type=T, newest first by keyset: without it a rare type scans every row.
-- Written once per command (the type never changes), so the engine's updates do not pay for it.
CREATE INDEX commands_type ON commands (type, id);
-- GET /v1/commands?rootsOnly=true (the dashboard's jobs), newest first; same: insert-only.
CREATE INDEX commands_roots ON commands (id) WHERE parent_id IS NULL;
