-- coco PostgreSQL schema, version 17: the claim and the read of foreign tasks (every second on
-- every node) planned by their indexes whatever the statistics say.
--
-- Without statistics (a bulk load, a pg_restore, a server without autovacuum) PostgreSQL takes a
-- boolean column to match half the rows: any read through the partial index of the active set
-- (commands_active) looks like half of the commands, and every other estimate scales with the
-- table. At 300,000 stored the index paths of these two reads still won; at 10,000,000 (stop 24)
-- the read of foreign tasks was a parallel bitmap scan of commands and a parallel scan of tasks,
-- JIT-compiled, ~1 s a call, and the claim ~0.6 s (its JIT compilation alone): their estimated
-- costs grow with the table, so some size always crosses jit_above_cost and the scans' costs.
--
-- Each is now a function carrying its own planner settings, which apply while its statement is
-- planned: no sequential, bitmap, hash or merge path (each table is read by an index, each join
-- is a nested loop of index lookups: the plan the statements were written for), no parallel
-- workers, no JIT. A disabled path is still taken where no other exists (the small tables'
-- scans, unnest), so nothing can fail to plan. The statements are those of
-- src/store/postgres/shared-sql.ts before this migration, but for the claim's orphaned commands
-- (owner null, or fenced), read as two index ranges instead of one bitmap OR.
CREATE FUNCTION :COCO_SCHEMA.coco_foreign_tasks(text, text[])
  RETURNS TABLE (command_id bigint, ordinal integer, agent_id text, owner text)
  LANGUAGE sql STABLE
  SET jit = off SET max_parallel_workers_per_gather = 0
  SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
  SET enable_mergejoin = off
AS $$
  SELECT * FROM (
    SELECT t.command_id, t.ordinal, t.agent_id, c.owner FROM :COCO_SCHEMA.tasks t
    JOIN :COCO_SCHEMA.commands c ON c.id = t.command_id
    WHERE t.agent_id = ANY($2) AND t.status IN ('created', 'running')
      AND c.owner IS NOT NULL AND c.owner <> $1
    UNION ALL
    SELECT t.command_id, t.ordinal, t.agent_id, c.owner FROM :COCO_SCHEMA.tasks t
    JOIN :COCO_SCHEMA.commands c ON c.id = t.command_id
    WHERE t.command_id = ANY (ARRAY(SELECT e.id FROM :COCO_SCHEMA.commands e WHERE e.active
      AND e.status IN ('succeeded', 'failed', 'cancelled') AND NOT e.tasks_cleared
      AND e.owner IS NOT NULL AND e.owner <> $1))
      AND t.agent_id = ANY($2) AND t.stop_requested AND t.status IN ('failed', 'cancelled')
  ) f ORDER BY agent_id, command_id, ordinal
$$;

-- $1 the claimer, $2 and $3 the (type, version) pairs it knows, $4 the most trees to claim.
CREATE FUNCTION :COCO_SCHEMA.coco_claim_trees(text, text[], integer[], integer)
  RETURNS SETOF bigint
  LANGUAGE sql VOLATILE
  SET jit = off SET max_parallel_workers_per_gather = 0
  SET enable_seqscan = off SET enable_bitmapscan = off SET enable_hashjoin = off
  SET enable_mergejoin = off
AS $$
  WITH dead AS MATERIALIZED (
    SELECT coalesce(array_agg(node_id), '{}') AS ids FROM :COCO_SCHEMA.coco_nodes WHERE fenced
  ),
  roots AS (
    SELECT r.id FROM :COCO_SCHEMA.commands r
    WHERE r.id = ANY (ARRAY(
      SELECT c.root_id FROM :COCO_SCHEMA.commands c WHERE c.active AND c.owner IS NULL
      UNION ALL
      SELECT c.root_id FROM :COCO_SCHEMA.commands c
      WHERE c.active AND c.owner = ANY ((SELECT ids FROM dead)::text[])))
    AND (r.owner IS NULL OR r.owner = ANY ((SELECT ids FROM dead)::text[]))
    AND NOT EXISTS (SELECT 1 FROM :COCO_SCHEMA.commands c WHERE c.root_id = r.id AND c.active
      AND NOT EXISTS (SELECT 1 FROM unnest($2, $3) AS k(type, version)
        WHERE k.type = c.type AND k.version >= c.params_version))
    ORDER BY r.id LIMIT $4 FOR UPDATE OF r SKIP LOCKED
  ),
  moved AS (
    UPDATE :COCO_SCHEMA.commands c SET owner = $1 FROM roots
    WHERE c.root_id = roots.id AND (c.active OR c.id = roots.id)
  )
  SELECT id FROM roots ORDER BY id
$$;
