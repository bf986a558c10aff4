-- coco PostgreSQL schema, version 15: the status history (0008) written by plain inserts.
--
-- The history's triggers inserted with ON CONFLICT DO NOTHING, so that a (command, status) row
-- already there (left by hand, or by an older schema's backfill) never fails a batch. The engine
-- never writes one twice — a command never returns to a status (the transition tables have no
-- cycles), and a new command has no history — yet every row paid for the possibility: a probe of
-- the primary key before the insert, and the speculative insertion's lock and confirmation
-- after it. That was ~6 % of the apply backend's CPU on one-task batches (perf, BENCHMARKS.md,
-- issue 15). Each trigger now inserts plainly; only if that meets a duplicate (unique_violation,
-- in a subtransaction of its own: one per batch statement, not per row) does it insert again
-- with ON CONFLICT DO NOTHING, as before. The rows written are the same in both ways.
--
-- CREATE OR REPLACE drops a function's SET clauses: the update function keeps 0014's.
CREATE OR REPLACE FUNCTION :COCO_SCHEMA.commands_history_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    INSERT INTO :COCO_SCHEMA.command_status_history (command_id, status, at)
      SELECT id, status, updated_at FROM new_rows;
  EXCEPTION WHEN unique_violation THEN
    INSERT INTO :COCO_SCHEMA.command_status_history (command_id, status, at)
      SELECT id, status, updated_at FROM new_rows
      ON CONFLICT DO NOTHING;
  END;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION :COCO_SCHEMA.commands_history_updated() RETURNS trigger LANGUAGE plpgsql
SET enable_hashjoin = on SET enable_mergejoin = on AS $$
BEGIN
  BEGIN
    INSERT INTO :COCO_SCHEMA.command_status_history (command_id, status, at)
      SELECT n.id, n.status, n.updated_at FROM new_rows n JOIN old_rows o ON o.id = n.id
      WHERE o.status <> n.status;
  EXCEPTION WHEN unique_violation THEN
    INSERT INTO :COCO_SCHEMA.command_status_history (command_id, status, at)
      SELECT n.id, n.status, n.updated_at FROM new_rows n JOIN old_rows o ON o.id = n.id
      WHERE o.status <> n.status
      ON CONFLICT DO NOTHING;
  END;
  RETURN NULL;
END
$$;
