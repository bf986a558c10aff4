-- coco PostgreSQL schema, version 16: the transition checks (0001, 0009) run AFTER each row's
-- update instead of BEFORE it.
--
-- A BEFORE UPDATE row trigger makes PostgreSQL fetch and lock each row before updating it
-- (GetTupleForTrigger: a tuple lock and its WAL record, a copy of the row), whatever the
-- trigger's WHEN clause then decides — for every command and task a batch updates, though the
-- clause only ever fires for an illegal transition. An AFTER row trigger's WHEN clause is
-- evaluated on the old and new rows the update already has, and queues nothing when false.
-- Measured on one-task batches: the apply backend's perf samples -2.8 %, WAL per command
-- 2,229 -> 2,116–2,133 B (BENCHMARKS.md, issue 15).
--
-- What the checks refuse is unchanged: an illegal transition raises CO001 with the same message
-- (illegal_transition reads OLD and NEW as before), at the end of its statement rather than at
-- the row, which aborts the statement, so nothing of the batch is stored. The triggers are
-- recreated from their own definitions (the compiled WHEN clauses), only BEFORE becoming AFTER.
DO $$
DECLARE
  t record;
  n integer := 0;
BEGIN
  FOR t IN
    SELECT tg.tgname, rel.relname, pg_get_triggerdef(tg.oid) AS def
    FROM pg_trigger tg JOIN pg_class rel ON rel.oid = tg.tgrelid
    WHERE rel.relnamespace = ':COCO_SCHEMA'::regnamespace
      AND tg.tgname IN ('commands_status_transition', 'commands_compensation_transition',
                        'tasks_status_transition', 'undo_steps_status_transition')
  LOOP
    IF position(' BEFORE UPDATE OF ' IN t.def) = 0 THEN
      RAISE EXCEPTION 'unexpected definition of trigger %: %', t.tgname, t.def;
    END IF;
    EXECUTE format('DROP TRIGGER %I ON :COCO_SCHEMA.%I', t.tgname, t.relname);
    EXECUTE replace(t.def, ' BEFORE UPDATE OF ', ' AFTER UPDATE OF ');
    n := n + 1;
  END LOOP;
  IF n <> 4 THEN
    RAISE EXCEPTION 'expected 4 transition triggers, found %', n;
  END IF;
END
$$;
