-- coco PostgreSQL schema, version 20: the status history of command updates written by a row
-- trigger that fires only for a row whose status changed to one that is neither first nor
-- terminal — as SQLite's (its 0008).
--
-- Since 0018 and 0019 a command's first and terminal statuses are read from its row, so the
-- update trigger (0008, 0014, 0015, 0019) writes a history row only for a status between them
-- (waiting after pending, aborting, compensating). The engine inserts most commands already
-- waiting and ends them in one update: none of the one-task, fan-out and chain benchmarks' commands
-- wrote a history row (first status waiting for every command, no history row, checked after a
-- run of each). Yet the statement-level trigger ran for every `updateCommands` statement: both
-- transition tables captured (every updated row, old and new), a PL/pgSQL call whose SET clauses
-- (0014) are set and reset around it, a subtransaction for 0015's exception block, and the join
-- of the two tables. An AFTER row trigger's WHEN is evaluated by the executor on the old and new
-- rows the update already has, and queues nothing when false (0016); `UPDATE OF status` leaves it
-- out of the statements that do not set the status (`settleCommands`, claims).
--
-- Priced with bench/pg-statements.ts on a private cluster (the shared server's settings, nobody
-- else writing; 4 interleaved rounds, BENCHMARKS.md, issue 15 at stop 29): a one-row
-- `updateCommands` (the end batch of a command at light load) 148 -> 122 µs of the apply
-- backend's CPU (the batch 569 -> 515 µs); one-task batches of 650 + 650 commands
-- `updateCommands` 13.4 -> 12.8 µs per command (the batch -3 %). Where every row of a statement
-- does need its history row (2,500 commands pending -> waiting in one statement), the statement
-- takes 38.5 -> 44.9 ms: +2.5 µs per such row.
--
-- The rows written are the same: one per (command, status) stored, ON CONFLICT DO NOTHING (a row
-- left by hand fails no batch). 0015's plain insert and its exception block are gone with the
-- statement trigger: they saved the speculative insertion over a whole statement's rows, and now
-- the insert runs for the rare row alone — which also leaves no subtransaction per statement
-- (a batch of dozens of update rounds could have passed PostgreSQL's 64 cached ones). Nodes of
-- the previous release beside the one that migrated (rolling upgrades, GUIDE "Upgrade") write
-- through this trigger as through the old one.
--
-- The row trigger does what 0018's insert row trigger does — NEW's status at NEW.updated_at as
-- a history row — so both run one function: 0018's, renamed to say so (a trigger holds its
-- function by identity, not by name).
DROP TRIGGER commands_status_history_update ON :COCO_SCHEMA.commands;
DROP FUNCTION :COCO_SCHEMA.commands_history_updated();

ALTER FUNCTION :COCO_SCHEMA.commands_history_inserted_row() RENAME TO commands_history_row;

CREATE TRIGGER commands_status_history_update_row AFTER UPDATE OF status ON :COCO_SCHEMA.commands
  FOR EACH ROW
  WHEN (OLD.status <> NEW.status AND NEW.status NOT IN ('succeeded', 'failed', 'cancelled'))
  EXECUTE FUNCTION :COCO_SCHEMA.commands_history_row();
