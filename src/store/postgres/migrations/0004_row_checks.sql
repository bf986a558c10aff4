-- coco PostgreSQL schema, version 4: row-count checks inside the server.
--
-- A batch's statements are sent to the server all at once, BEGIN to COMMIT, without waiting for
-- each answer (pipelining: the apply connection is the store's bottleneck, and a round trip per
-- statement left it idle for a third of a batch). The checks the client made between statements
-- — the node's fencing row was locked, every updated row existed — are therefore made by the
-- statements themselves: each ends in coco_expect, which raises SQLSTATE CO002 (a code of our
-- own) when its count is not the expected one. The error aborts the transaction, so the
-- statements after it fail and the COMMIT behind them rolls back: nothing of the batch is stored.
-- The message, 'ROW_COUNT|<label>|<actual>|<expected>', names the statement (the label is a
-- parameter of each statement), so the store can say which row was missing
-- (src/store/postgres/batch-steps.ts).
CREATE FUNCTION :COCO_SCHEMA.coco_expect(actual bigint, expected bigint, label text)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  IF actual IS DISTINCT FROM expected THEN
    RAISE EXCEPTION USING ERRCODE = 'CO002',
      MESSAGE = format('ROW_COUNT|%s|%s|%s', label, actual, expected);
  END IF;
  RETURN actual;
END
$$;
