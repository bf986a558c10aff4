-- coco PostgreSQL schema, version 19: a command's terminal status read from its own row, not a
-- history row.
--
-- Since 0018 a command's first status is kept in its row; every later status still wrote a
-- history row through the update trigger (0008, 0014, 0015) — for a one-task command or a
-- fan-out's child, its end alone: a heap row, a primary-key entry and its WAL per command. A
-- terminal status (succeeded, failed, cancelled) is never left (the transition tables have no
-- edge out of one), and the engine stores it with the command's end: the row's `status` at its
-- `ended_at` is that history row. So the trigger no longer writes a history row for a terminal
-- status, and `getStatusHistory` (statements.ts) reads the history rows, the first status of
-- the row (0018) and its terminal status at coalesce(ended_at, updated_at), each of the last two
-- unless a history row of that status is there (commands ended before this migration, rows left
-- by hand). Priced with bench/pg-statements.ts (one-task batches): WAL per command 1,960 ->
-- 1,787 B, the apply backend's CPU per command about -10 % (BENCHMARKS.md, issue 15).
--
-- Nodes of the previous release still running beside the one that migrated (rolling upgrades,
-- GUIDE "Upgrade") write through the same trigger, so what they end is read the same way; they
-- read the history table alone, so their own API shows no terminal entry for a command ended
-- after this migration until they are upgraded — a display gap in the upgrade window, nothing
-- stored is lost (as 0018's first status).
--
-- CREATE OR REPLACE drops a function's SET clauses: 0014's are given again.
CREATE OR REPLACE FUNCTION :COCO_SCHEMA.commands_history_updated() RETURNS trigger LANGUAGE plpgsql
SET enable_hashjoin = on SET enable_mergejoin = on AS $$
BEGIN
  BEGIN
    INSERT INTO :COCO_SCHEMA.command_status_history (command_id, status, at)
      SELECT n.id, n.status, n.updated_at FROM new_rows n JOIN old_rows o ON o.id = n.id
      WHERE o.status <> n.status AND n.status NOT IN ('succeeded', 'failed', 'cancelled');
  EXCEPTION WHEN unique_violation THEN
    INSERT INTO :COCO_SCHEMA.command_status_history (command_id, status, at)
      SELECT n.id, n.status, n.updated_at FROM new_rows n JOIN old_rows o ON o.id = n.id
      WHERE o.status <> n.status AND n.status NOT IN ('succeeded', 'failed', 'cancelled')
      ON CONFLICT DO NOTHING;
  END;
  RETURN NULL;
END
$$;
