-- coco PostgreSQL schema, version 18: a command's first stored status in its own row, not a
-- history row.
--
-- Every command inserted wrote a row into command_status_history (0008's insert trigger): a heap
-- row and a primary-key entry per command, ~8 % of the apply backend's CPU per one-task command
-- and ~175 B of its WAL (bench/pg-statements.ts, BENCHMARKS.md, issue 15). Commands are only
-- ever inserted by the batch statement `insertCommands` (statements.ts), which now also writes
-- the status and updated_at it inserts into first_status and first_at — the values the trigger
-- wrote — and the insert trigger is dropped. The history a command reads (`getStatusHistory`)
-- is its history rows and, unless a history row of the same status is there (one left by hand:
-- the trigger's ON CONFLICT DO NOTHING kept that one), its first status. Commands stored before
-- this migration have no first_status and keep their history rows: read as before.
--
-- The update and delete triggers are unchanged: a command never returns to a status (the
-- transition tables have no cycles), so no history row repeats the first status.
ALTER TABLE :COCO_SCHEMA.commands ADD COLUMN first_status text, ADD COLUMN first_at bigint;

DROP TRIGGER commands_status_history_insert ON :COCO_SCHEMA.commands;
DROP FUNCTION :COCO_SCHEMA.commands_history_inserted();
