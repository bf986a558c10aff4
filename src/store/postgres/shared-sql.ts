/**
 * The SQL of the shared operations (src/store/postgres/shared.ts), for one schema: node leases
 * and fencing, claims and the claim ledger, agent leases, the foreign and stranger tasks of
 * reconciliation, the relay of task reports. Built once per store instance.
 *
 * @module
 */
import { quoteIdent } from '../../db/postgres.js';

/**
 * How long the row of a fenced node is kept once it owns nothing: an hour in which whoever looks
 * into a takeover still finds the departed node (host, pid, since, last heartbeat). Not needed
 * for fencing (epochs never repeat, migration 0006), only for people.
 */
export const NODE_ROW_KEEP_MS = 3_600_000;

/**
 * SQL of the 64-bit key of a node's apply lock, for the node id SQL `nodeId` (a parameter or a
 * column). The lanes of a node applying through several connections (lanes.ts) hold it shared
 * for each batch; whatever fences or replaces a node only ever *tries* to take it exclusively
 * (`pg_try_advisory_xact_lock`): advisory locks queue in order, and a waiting exclusive request
 * would hold up a lane whose later batch, waiting in the client for it, holds the lock shared.
 * A node applying through one connection never takes it (its batches lock the node row instead).
 */
export function nodeApplyKey(schema: string, nodeId: string): string {
  return `hashtextextended('${schema.replaceAll("'", "''")}/apply/' || ${nodeId}, 0)`;
}

/** The shared operations' SQL for one schema. */
export function buildSharedSql(schema: string) {
  const s = quoteIdent(schema);
  const nodes = `${s}.coco_nodes`;
  const lanes = `${s}.coco_apply_lanes`;
  const tryApplyLock = (nodeId: string): string =>
    `pg_try_advisory_xact_lock(${nodeApplyKey(schema, nodeId)})`;
  const commands = `${s}.commands`;
  const leases = `${s}.agent_leases`;
  const reports = `${s}.task_reports`;
  const epochs = `${s}.coco_node_epochs`;
  const ms = (p: string): string => `clock_timestamp() + ${p} * interval '1 millisecond'`;
  const epochMs = (c: string): string => `(extract(epoch FROM ${c}) * 1000)::bigint`;
  return {
    // A live row (unfenced, unexpired) of this id stays, unless this very instance wrote it (a
    // repeated try); any other is replaced, with a new epoch (from the schema's sequence, so no
    // earlier process of this id ever held it, even one whose row was purged: migration 0006).
    registerNode:
      `INSERT INTO ${nodes} AS n (node_id, epoch, lease_until, fenced, last_batch, instance, pid, host, since, heartbeat_at) ` +
      `VALUES ($1, nextval('${epochs}'), ${ms('$2')}, false, 0, $5, $3, $4, clock_timestamp(), clock_timestamp()) ` +
      'ON CONFLICT (node_id) DO UPDATE SET epoch = EXCLUDED.epoch, lease_until = EXCLUDED.lease_until, ' +
      'fenced = false, instance = EXCLUDED.instance, pid = EXCLUDED.pid, host = EXCLUDED.host, ' +
      'since = EXCLUDED.since, heartbeat_at = EXCLUDED.heartbeat_at ' +
      'WHERE (n.fenced OR n.lease_until < clock_timestamp() OR n.instance = EXCLUDED.instance) ' +
      // An earlier process of the id still applying through lanes (migration 0012) keeps it.
      `AND ${tryApplyLock('n.node_id')} ` +
      'RETURNING n.epoch, n.last_batch, n.last_claim',
    nodeInfo:
      `SELECT node_id, pid, host, ${epochMs('heartbeat_at')} AS heartbeat_at, ${epochMs('since')} AS since, ` +
      `${epochMs('lease_until')} AS lease_until FROM ${nodes} WHERE node_id = $1`,
    renewNode:
      `UPDATE ${nodes} SET lease_until = ${ms('$3')}, heartbeat_at = clock_timestamp() ` +
      'WHERE node_id = $1 AND epoch = $2 AND NOT fenced',
    // close: fence the node (its trees are orphans at once), drop its agent leases, tell the others.
    retireNode:
      `WITH f AS (UPDATE ${nodes} SET fenced = true, lease_until = least(lease_until, clock_timestamp()) ` +
      `WHERE node_id = $1 AND epoch = $2 AND NOT fenced AND ${tryApplyLock('node_id')} RETURNING node_id), ` +
      `r AS (DELETE FROM ${leases} WHERE node_id IN (SELECT node_id FROM f)) ` +
      'SELECT pg_notify($3, $4) FROM f',
    // KEY SHARE: does not hold up this node's own batches and heartbeats (which update the row),
    // but makes a fencer (FOR UPDATE SKIP LOCKED) pass this node by.
    liveSelf:
      `SELECT 1 FROM ${nodes} WHERE node_id = $1 AND epoch = $2 AND NOT fenced ` +
      'AND lease_until > clock_timestamp() FOR KEY SHARE',
    // The claim ledger (migration 0005): the last claim's number and roots, written by the claim.
    recordClaim:
      `UPDATE ${nodes} SET last_claim = $3, last_claim_roots = $4::bigint[] ` +
      'WHERE node_id = $1 AND epoch = $2',
    // Lanes (migration 0012): a node applying through several connections numbers each lane's
    // batches from 0 under each epoch; the rows of an earlier epoch are taken over.
    openLanes:
      `INSERT INTO ${lanes} AS l (node_id, lane, epoch, last_batch) ` +
      'SELECT $1, g, $2, 0 FROM generate_series(0, $3::int - 1) AS g ' +
      'ON CONFLICT (node_id, lane) DO UPDATE SET epoch = EXCLUDED.epoch, last_batch = 0 ' +
      'WHERE l.epoch <> EXCLUDED.epoch',
    laneBatches: `SELECT lane, last_batch FROM ${lanes} WHERE node_id = $1 AND epoch = $2 ORDER BY lane`,
    claimState: `SELECT epoch, last_claim, last_claim_roots::text[] AS roots FROM ${nodes} WHERE node_id = $1`,
    // Rows of nodes fenced more than NODE_ROW_KEEP_MS ago that own no active command (none can
    // come back to them: claims only take trees away) go, with their agent leases. SKIP LOCKED:
    // two claimers never wait on each other for this housekeeping.
    purgeNodes:
      `WITH gone AS (DELETE FROM ${nodes} WHERE node_id IN (SELECT n.node_id FROM ${nodes} n ` +
      `WHERE n.fenced AND n.heartbeat_at < clock_timestamp() - ${NODE_ROW_KEEP_MS} * interval '1 millisecond' ` +
      `AND NOT EXISTS (SELECT 1 FROM ${commands} c WHERE c.active AND c.owner = n.node_id) ` +
      'ORDER BY n.node_id FOR UPDATE SKIP LOCKED) RETURNING node_id), ' +
      `dropped AS (DELETE FROM ${leases} l USING gone g WHERE l.node_id = g.node_id), ` +
      `lanes AS (DELETE FROM ${lanes} l USING gone g WHERE l.node_id = g.node_id) ` +
      'SELECT count(*)::int AS n FROM gone',
    fenceExpired:
      `WITH expired AS (SELECT node_id FROM ${nodes} WHERE NOT fenced AND lease_until < clock_timestamp() ` +
      'AND node_id <> $1 ORDER BY node_id FOR UPDATE SKIP LOCKED) ' +
      // A node whose lanes are applying a batch right now is passed by (as SKIP LOCKED passes a
      // node whose one connection is), and fenced by a later claim.
      `UPDATE ${nodes} n SET fenced = true FROM expired e WHERE n.node_id = e.node_id AND ${tryApplyLock('e.node_id')} RETURNING n.node_id`,
    // Roots of trees whose owner is not live (fenced, gone or null) and whose every active command
    // has a known (type, version), oldest first, locked (skipping those another claimer holds),
    // given to $1 with their active commands. The statement is the function coco_claim_trees
    // (migration 0017), planned with its own settings: only index scans and nested loops, no
    // parallel workers, no JIT, whatever the statistics say (this runs every claim interval on
    // every node). Planned freely, a never-analyzed store (a bulk load, a restore, no autovacuum)
    // got a merge join along the primary key over every command at 300,000 stored (930 ms a
    // claim), and a JIT-compiled bitmap plan at 10,000,000 (~0.6 s); by index it reads a few
    // pages when there is nothing to claim (BENCHMARKS.md).
    claimTrees: `SELECT c.id FROM ${s}.coco_claim_trees($1, $2::text[], $3::int[], $4::int) AS c(id) ORDER BY c.id`,
    notify: 'SELECT pg_notify($1, $2)',
    claimAgents:
      `WITH me AS (SELECT node_id FROM ${nodes} WHERE node_id = $1 AND epoch = $2 AND NOT fenced), ` +
      `claimed AS (INSERT INTO ${leases} AS l (agent_id, node_id, lease_until) ` +
      `SELECT a, $1, ${ms('$4')} FROM unnest($3::text[]) AS a WHERE EXISTS (SELECT 1 FROM me) ` +
      'ON CONFLICT (agent_id) DO UPDATE SET node_id = EXCLUDED.node_id, lease_until = EXCLUDED.lease_until ' +
      'WHERE l.node_id = EXCLUDED.node_id OR l.lease_until < clock_timestamp() ' +
      `OR NOT EXISTS (SELECT 1 FROM ${nodes} h WHERE h.node_id = l.node_id AND NOT h.fenced) ` +
      'RETURNING l.agent_id) ' +
      'SELECT (SELECT count(*) FROM me)::int AS live, ' +
      "coalesce((SELECT array_agg(agent_id ORDER BY agent_id) FROM claimed), '{}') AS agents",
    releaseAgents: `DELETE FROM ${leases} WHERE node_id = $1 AND ($2::text[] IS NULL OR agent_id = ANY($2::text[]))`,
    strangerTasks:
      'SELECT k.command_id, k.ordinal FROM unnest($1::bigint[], $2::int[]) AS k(command_id, ordinal) ' +
      `LEFT JOIN ${s}.tasks t ON t.command_id = k.command_id AND t.ordinal = k.ordinal ` +
      `LEFT JOIN ${commands} c ON c.id = k.command_id ` +
      "WHERE t.command_id IS NULL OR (t.status IN ('succeeded', 'failed', 'cancelled') " +
      "AND c.status IN ('succeeded', 'failed', 'cancelled') AND c.tasks_cleared " +
      "AND c.compensation <> 'compensating') ORDER BY k.command_id, k.ordinal",
    // Tasks not ended (by agent: tasks_open), and tasks the engine ended with a stop requested
    // (deadline, cancel) whose command has ended but is not settled: their owner waits for the
    // agent's word before clearing them, and may not poll the agent itself. The function
    // coco_foreign_tasks (migration 0017), planned by its indexes whatever the statistics say
    // (every poll interval while the node holds agents): never analyzed, the free planner took a
    // read of the active set to match half the commands (a boolean column without statistics),
    // and at 10,000,000 stored read it as a parallel, JIT-compiled scan of commands and of tasks,
    // ~1 s a call (3 ms by index, BENCHMARKS.md).
    foreignTasks:
      'SELECT f.command_id, f.ordinal, f.agent_id, f.owner ' +
      `FROM ${s}.coco_foreign_tasks($1, $2::text[]) f ORDER BY f.agent_id, f.command_id, f.ordinal`,
    // Upserts the reports and signals the owner of each command concerned (NOTIFY is sent at
    // COMMIT; identical notifications of one transaction are sent once).
    postReports:
      `WITH up AS (INSERT INTO ${reports} (command_id, ordinal, status, result, error, progress, at) ` +
      'SELECT * FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::bigint[]) ' +
      'ON CONFLICT (command_id, ordinal) DO UPDATE SET status = EXCLUDED.status, result = EXCLUDED.result, ' +
      'error = EXCLUDED.error, progress = EXCLUDED.progress, at = EXCLUDED.at RETURNING command_id) ' +
      `SELECT pg_notify($1, json_build_object('node', o.owner, 'signal', 'reports')::text) FROM (` +
      `SELECT DISTINCT c.owner FROM ${commands} c WHERE c.id IN (SELECT command_id FROM up) AND c.owner IS NOT NULL) o`,
    // The owner by primary key for each report (a subquery per row, never a join the planner may
    // drive from commands: without statistics it read every command of the store each poll).
    takeReports:
      `SELECT r.command_id, r.ordinal, r.status, r.result, r.error, r.progress, r.at FROM ${reports} r ` +
      `WHERE (SELECT c.owner FROM ${commands} c WHERE c.id = r.command_id) = $1 ` +
      'ORDER BY r.at, r.command_id, r.ordinal LIMIT $2',
    dropReports:
      `DELETE FROM ${reports} r USING unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[]) ` +
      'AS u(command_id, ordinal, at, status) WHERE r.command_id = u.command_id AND r.ordinal = u.ordinal ' +
      'AND (u.at IS NULL OR (r.at = u.at AND r.status = u.status))',
  };
}

/** The SQL of the shared operations, see {@link buildSharedSql}. */
export type SharedSql = ReturnType<typeof buildSharedSql>;
