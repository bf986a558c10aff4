-- coco SQLite schema, version 10: command types paused by an operator.
--
-- A paused type's new roots are stored and wait, queued, until it is resumed (its roots already
-- running go on, and children of every type run: engine/root-admission.ts). The pause outlives a
-- restart: the engine reads this table at its start.
--
-- One row per paused type (its registered name): when it was paused (ms since the epoch), who
-- paused it (the API caller's name, or NULL) and why (the operator's words, or NULL). A resume
-- deletes the row.
CREATE TABLE paused_types (
  type TEXT PRIMARY KEY,
  paused_at INTEGER NOT NULL,
  paused_by TEXT,
  reason TEXT
);
