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

-- A node of an older release keeps running beside the one that migrated (rolling upgrades, GUIDE
-- "Upgrade") and inserts commands without a first status: a row trigger writes their history row
-- as the dropped trigger did. Its WHEN clause is evaluated per row by the executor, without a
-- call, so this code's inserts (first_status always set) queue nothing.
CREATE FUNCTION :COCO_SCHEMA.commands_history_inserted_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO :COCO_SCHEMA.command_status_history (command_id, status, at)
    VALUES (NEW.id, NEW.status, NEW.updated_at)
    ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$;

CREATE TRIGGER commands_status_history_insert_row AFTER INSERT ON :COCO_SCHEMA.commands
  FOR EACH ROW WHEN (NEW.first_status IS NULL)
  EXECUTE FUNCTION :COCO_SCHEMA.commands_history_inserted_row();
