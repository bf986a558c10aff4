-- coco SQLite schema, version 7: no statement journal for the batch statements.
--
-- SQLite backs a failed statement out by itself ("statement journal": a copy of each page the
-- statement touches, taken before it first writes it) when the statement may write more than
-- one row (a trigger does) and may ABORT (a CHECK, NOT NULL or UNIQUE constraint in its default
-- mode, or RAISE(ABORT)). Every statement of a batch is such a statement: ~14 % of SQLite's work
-- per row (measured, fan-out rows, BENCHMARKS.md). A batch never keeps part of itself: any
-- failure rolls the whole transaction back (writer.ts, operations.ts). So the batch statements
-- say OR ROLLBACK (statements.ts) and the triggers RAISE(ROLLBACK): an illegal transition, a
-- duplicate key or a bad status still refuses the write — the transaction ends there, where the
-- store rolled it back one step later. The refusal and its message are as before.
--
-- An OR clause of the statement that fires a trigger replaces the trigger statements' own, so
-- the status history's OR IGNORE would become OR ROLLBACK: its insert says ON CONFLICT DO
-- NOTHING instead, which the outer clause does not replace.

DROP TRIGGER commands_status_transition;
CREATE TRIGGER commands_status_transition
AFTER UPDATE OF status ON commands
WHEN OLD.status <> NEW.status
  AND NOT EXISTS (SELECT 1 FROM command_transitions WHERE from_status = OLD.status AND to_status = NEW.status)
BEGIN
  SELECT RAISE(ROLLBACK, 'ILLEGAL_TRANSITION|command|' || OLD.id || '|' || OLD.status || '|' || NEW.status);
END;

DROP TRIGGER commands_compensation_transition;
CREATE TRIGGER commands_compensation_transition
AFTER UPDATE OF compensation ON commands
WHEN OLD.compensation <> NEW.compensation
  AND NOT EXISTS (SELECT 1 FROM compensation_transitions WHERE from_status = OLD.compensation AND to_status = NEW.compensation)
BEGIN
  SELECT RAISE(ROLLBACK, 'ILLEGAL_TRANSITION|compensation|of command ' || OLD.id || '|' || OLD.compensation || '|' || NEW.compensation);
END;

DROP TRIGGER tasks_status_transition;
CREATE TRIGGER tasks_status_transition
AFTER UPDATE OF status ON tasks
WHEN OLD.status <> NEW.status
  AND NOT EXISTS (SELECT 1 FROM task_transitions WHERE from_status = OLD.status AND to_status = NEW.status)
BEGIN
  SELECT RAISE(ROLLBACK, 'ILLEGAL_TRANSITION|task|' || OLD.command_id || '/' || OLD.ordinal || '|' || OLD.status || '|' || NEW.status);
END;

DROP TRIGGER undo_steps_status_transition;
CREATE TRIGGER undo_steps_status_transition
AFTER UPDATE OF status ON undo_steps
WHEN OLD.status <> NEW.status
  AND NOT EXISTS (SELECT 1 FROM undo_transitions WHERE from_status = OLD.status AND to_status = NEW.status)
BEGIN
  SELECT RAISE(ROLLBACK, 'ILLEGAL_TRANSITION|undo|' || OLD.command_id || '/' || OLD.ordinal || '|' || OLD.status || '|' || NEW.status);
END;

DROP TRIGGER commands_status_history_insert;
CREATE TRIGGER commands_status_history_insert
AFTER INSERT ON commands
BEGIN
  INSERT INTO command_status_history (command_id, status, at)
    VALUES (NEW.id, NEW.status, NEW.updated_at)
    ON CONFLICT DO NOTHING;
END;

DROP TRIGGER commands_status_history_update;
CREATE TRIGGER commands_status_history_update
AFTER UPDATE OF status ON commands
WHEN OLD.status <> NEW.status
BEGIN
  INSERT INTO command_status_history (command_id, status, at)
    VALUES (NEW.id, NEW.status, NEW.updated_at)
    ON CONFLICT DO NOTHING;
END;
