/**
 * Admission across nodes ({@link SharedStore.admitQueued} and the rest; table `admission_slots`,
 * migration 0011): the holder of an agent's lease grants slots of the agent's limit to queued
 * tasks of every node, the owners take their grants and release the slots when the agent is
 * done with the tasks. The limit holds across the cluster because every grant counts the
 * agent's slot rows under a lock of its lease row (`FOR UPDATE`): a node taking the lease over
 * waits for the grant to commit, and then counts it.
 *
 * Lock order: the lease row, then task rows `FOR UPDATE SKIP LOCKED` (a task a batch is writing
 * is passed over until the next admission: the grant never waits for a writer, so never
 * deadlocks with one), then slot rows (inserted; a batch never touches them).
 *
 * @module
 */
import { CocoError, ErrorCode } from '../../core/errors.js';
import type {
  ClusterQueuePosition,
  SlotGrant,
  SlotHolder,
  SlotLimits,
  TaskKey,
} from '../shared-port.js';
import type { RegisteredNode, SharedDb } from './shared.js';
import { quoteIdent } from '../../db/postgres.js';
import { channelOf } from './listen.js';

/**
 * Queued tasks read per admission beyond the free slots. Verbs already at their limit are not
 * read at all; a verb that fills up during the round is passed over, so a few more than the
 * room are read — a head longer than this of one verb that just filled delays the others by one
 * admission round (the next one leaves that verb out).
 */
const CANDIDATES_BEYOND_ROOM = 200;

/** The state array's index of the command's priority (store/rows/columns.ts). */
const PRIORITY_INDEX = 16;

/** The admission SQL for one schema. */
export function buildSlotSql(schema: string) {
  const s = quoteIdent(schema);
  const notify = (node: string): string =>
    `pg_notify($1, json_build_object('node', ${node}, 'signal', 'admissions')::text)`;
  return {
    // The caller's live lease on the agent, locked until the transaction ends.
    lockLease:
      `SELECT 1 FROM ${s}.agent_leases l WHERE l.agent_id = $1 AND l.node_id = $2 ` +
      `AND l.lease_until > clock_timestamp() AND EXISTS (SELECT 1 FROM ${s}.coco_nodes n ` +
      'WHERE n.node_id = $2 AND n.epoch = $3 AND NOT n.fenced) FOR UPDATE OF l',
    // Slots of commands gone (pruned) or inactive (ended, tasks cleared) hold nothing.
    dropStale:
      `DELETE FROM ${s}.admission_slots a WHERE a.agent_id = $1 AND NOT EXISTS ` +
      `(SELECT 1 FROM ${s}.commands c WHERE c.id = a.command_id AND c.active)`,
    held: `SELECT verb, count(*)::int AS n FROM ${s}.admission_slots WHERE agent_id = $1 GROUP BY verb`,
    candidates:
      `SELECT t.command_id, t.ordinal, t.verb, c.owner FROM ${s}.tasks t ` +
      `JOIN ${s}.commands c ON c.id = t.command_id ` +
      // Only tasks of live nodes: an orphan's queued task is granted once its tree is claimed.
      `JOIN ${s}.coco_nodes n ON n.node_id = c.owner AND NOT n.fenced ` +
      "WHERE t.agent_id = $1 AND t.status = 'queued' AND t.verb <> ALL($4::text[]) AND NOT EXISTS " +
      `(SELECT 1 FROM ${s}.admission_slots a WHERE a.command_id = t.command_id AND a.ordinal = t.ordinal) ` +
      `ORDER BY t.created_at - coalesce((c.state::jsonb ->> ${PRIORITY_INDEX})::bigint, 0) * $2, ` +
      'c.root_id, t.command_id, t.ordinal LIMIT $3 FOR UPDATE OF t SKIP LOCKED',
    grant:
      `WITH g AS (INSERT INTO ${s}.admission_slots (command_id, ordinal, agent_id, verb, granted_at) ` +
      'SELECT k.command_id, k.ordinal, $2, k.verb, $3 ' +
      'FROM unnest($4::bigint[], $5::int[], $6::text[]) AS k(command_id, ordinal, verb) ' +
      'ON CONFLICT DO NOTHING RETURNING command_id) ' +
      `SELECT ${notify('o.owner')} FROM (SELECT DISTINCT c.owner FROM g ` +
      `JOIN ${s}.commands c ON c.id = g.command_id WHERE c.owner IS NOT NULL) o`,
    take:
      `SELECT a.command_id, a.ordinal FROM ${s}.admission_slots a ` +
      `JOIN ${s}.commands c ON c.id = a.command_id ` +
      `JOIN ${s}.tasks t ON t.command_id = a.command_id AND t.ordinal = a.ordinal ` +
      "WHERE c.owner = $1 AND t.status = 'queued' ORDER BY a.granted_at, a.command_id, a.ordinal LIMIT $2",
    hold:
      `INSERT INTO ${s}.admission_slots (command_id, ordinal, agent_id, verb, granted_at) ` +
      'SELECT k.command_id, k.ordinal, k.agent_id, k.verb, $5 ' +
      'FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[]) AS k(command_id, ordinal, agent_id, verb) ' +
      'ON CONFLICT DO NOTHING',
    release:
      `WITH d AS (DELETE FROM ${s}.admission_slots a WHERE (a.command_id, a.ordinal) IN ` +
      '(SELECT * FROM unnest($2::bigint[], $3::int[])) RETURNING a.agent_id) ' +
      `SELECT ${notify('l.node_id')} FROM (SELECT DISTINCT agent_id FROM d) x ` +
      `JOIN ${s}.agent_leases l ON l.agent_id = x.agent_id`,
    // Row comparison: the same order as `candidates`.
    ahead:
      'SELECT t.command_id, t.ordinal, t.agent_id, t.verb, ' +
      `(SELECT count(*) FROM ${s}.tasks q JOIN ${s}.commands qc ON qc.id = q.command_id ` +
      "WHERE q.agent_id = t.agent_id AND q.status = 'queued' AND NOT EXISTS " +
      `(SELECT 1 FROM ${s}.admission_slots a WHERE a.command_id = q.command_id AND a.ordinal = q.ordinal) ` +
      `AND (q.created_at - coalesce((qc.state::jsonb ->> ${PRIORITY_INDEX})::bigint, 0) * $3, qc.root_id, q.command_id, q.ordinal) ` +
      `< (t.created_at - coalesce((c.state::jsonb ->> ${PRIORITY_INDEX})::bigint, 0) * $3, c.root_id, t.command_id, t.ordinal))::int AS ahead, ` +
      `(SELECT count(*) FROM ${s}.admission_slots a WHERE a.agent_id = t.agent_id)::int AS held, ` +
      `(SELECT count(*) FROM ${s}.admission_slots a WHERE a.agent_id = t.agent_id AND a.verb = t.verb)::int AS verb_held ` +
      'FROM unnest($1::bigint[], $2::int[]) AS k(command_id, ordinal) ' +
      `JOIN ${s}.tasks t ON t.command_id = k.command_id AND t.ordinal = k.ordinal ` +
      `JOIN ${s}.commands c ON c.id = t.command_id ` +
      "WHERE t.status = 'queued' AND NOT EXISTS " +
      `(SELECT 1 FROM ${s}.admission_slots a WHERE a.command_id = t.command_id AND a.ordinal = t.ordinal) ` +
      'ORDER BY t.command_id, t.ordinal',
    queueChanged: `SELECT ${notify('l.node_id')} FROM ${s}.agent_leases l WHERE l.agent_id = ANY($2::text[])`,
  };
}

/** The SQL of {@link buildSlotSql}. */
export type SlotSql = ReturnType<typeof buildSlotSql>;

function key(row: { command_id: unknown; ordinal: unknown }): TaskKey {
  const commandId = Number(row.command_id);
  const ordinal = Number(row.ordinal);
  if (!Number.isSafeInteger(commandId) || !Number.isSafeInteger(ordinal))
    throw new CocoError(
      ErrorCode.CorruptRow,
      `admission_slots: bad task key ${String(row.command_id)}/${String(row.ordinal)}`,
    );
  return { commandId, ordinal };
}

/** {@link SharedStore.admitQueued}. */
export async function admitQueued(
  db: SharedDb,
  sql: SlotSql,
  node: RegisteredNode,
  agentId: string,
  limitsOf: SlotLimits | (() => SlotLimits | null),
  now: number,
): Promise<SlotGrant[] | null> {
  return db.transaction('admitting queued tasks', async (client) => {
    const lease = await client.query(sql.lockLease, [agentId, node.nodeId, node.epoch]);
    if (lease.rowCount === 0) return null;
    await client.query(sql.dropStale, [agentId]);
    const byVerb = new Map<string, number>();
    let total = 0;
    for (const row of (await client.query(sql.held, [agentId])).rows as {
      verb: string;
      n: number;
    }[]) {
      byVerb.set(row.verb, row.n);
      total += row.n;
    }
    // Read now, after the count: a limit lowered before a slot counted free here is in force.
    const limits = typeof limitsOf === 'function' ? limitsOf() : limitsOf;
    if (limits === null) return [];
    const room = limits.maxRunning === null ? Infinity : limits.maxRunning - total;
    if (room <= 0) return [];
    const read = Number.isFinite(room) ? room + CANDIDATES_BEYOND_ROOM : 10_000;
    // Verbs at their limit are left out of the read: their queue cannot hold the others back.
    const full = Object.entries(limits.byVerb)
      .filter(([verb, limit]) => (byVerb.get(verb) ?? 0) >= limit)
      .map(([verb]) => verb);
    const rows = (await client.query(sql.candidates, [agentId, limits.ageStepMs, read, full]))
      .rows as {
      command_id: unknown;
      ordinal: unknown;
      verb: string;
      owner: string | null;
    }[];
    const grants: (SlotGrant & { verb: string })[] = [];
    for (const row of rows) {
      if (grants.length >= room) break;
      const verbLimit = limits.byVerb[row.verb];
      const n = byVerb.get(row.verb) ?? 0;
      if (verbLimit !== undefined && n >= verbLimit) continue;
      byVerb.set(row.verb, n + 1);
      grants.push({ ...key(row), owner: row.owner, verb: row.verb });
    }
    if (grants.length === 0) return [];
    await client.query(sql.grant, [
      channelOf(db.schema),
      agentId,
      now,
      grants.map((g) => g.commandId),
      grants.map((g) => g.ordinal),
      grants.map((g) => g.verb),
    ]);
    return grants.map(({ commandId, ordinal, owner }) => ({ commandId, ordinal, owner }));
  });
}

/** {@link SharedStore.takeGrants}. */
export async function takeGrants(
  db: SharedDb,
  sql: SlotSql,
  nodeId: string,
  limit: number,
): Promise<TaskKey[]> {
  const r = await db.query(sql.take, [nodeId, limit], true);
  return (r.rows as { command_id: unknown; ordinal: unknown }[]).map(key);
}

/** {@link SharedStore.holdSlots}. */
export async function holdSlots(
  db: SharedDb,
  sql: SlotSql,
  holders: readonly SlotHolder[],
  now: number,
): Promise<void> {
  if (holders.length === 0) return;
  const sorted = [...holders].sort((a, b) => a.commandId - b.commandId || a.ordinal - b.ordinal);
  await db.query(
    sql.hold,
    [
      sorted.map((h) => h.commandId),
      sorted.map((h) => h.ordinal),
      sorted.map((h) => h.agentId),
      sorted.map((h) => h.verb),
      now,
    ],
    true,
  );
}

/** {@link SharedStore.releaseSlots}. */
export async function releaseSlots(
  db: SharedDb,
  sql: SlotSql,
  keys: readonly TaskKey[],
): Promise<void> {
  if (keys.length === 0) return;
  const sorted = [...keys].sort((a, b) => a.commandId - b.commandId || a.ordinal - b.ordinal);
  await db.query(
    sql.release,
    [channelOf(db.schema), sorted.map((k) => k.commandId), sorted.map((k) => k.ordinal)],
    true,
  );
}

/** {@link SharedStore.queueAhead}. */
export async function queueAhead(
  db: SharedDb,
  sql: SlotSql,
  keys: readonly TaskKey[],
  ageStepMs: number,
): Promise<ClusterQueuePosition[]> {
  if (keys.length === 0) return [];
  const r = await db.query(
    sql.ahead,
    [keys.map((k) => k.commandId), keys.map((k) => k.ordinal), ageStepMs],
    true,
  );
  return (
    r.rows as {
      command_id: unknown;
      ordinal: unknown;
      agent_id: string;
      verb: string;
      ahead: number;
      held: number;
      verb_held: number;
    }[]
  ).map((row) => ({
    ...key(row),
    agentId: row.agent_id,
    verb: row.verb,
    ahead: row.ahead,
    held: row.held,
    verbHeld: row.verb_held,
  }));
}

/** {@link SharedStore.queueChanged}. */
export async function queueChanged(
  db: SharedDb,
  sql: SlotSql,
  agentIds: readonly string[],
): Promise<void> {
  if (agentIds.length === 0) return;
  await db.query(sql.queueChanged, [channelOf(db.schema), [...agentIds]], true);
}
