/**
 * What makes the PostgreSQL store shared ({@link SharedStore} in src/store/shared-port.ts): node leases
 * (register, renew, fence), claims of orphaned trees, agent leases, the foreign tasks of held
 * agents, and the relay of task reports. Each operation is one statement or one short
 * transaction; times are the database's (`clock_timestamp()`), never this process's.
 *
 * Lock order, which keeps these free of deadlocks: a transaction locks node rows (`coco_nodes`)
 * before command rows; fencing takes node rows `FOR UPDATE SKIP LOCKED` in id order (a node in
 * the middle of a batch or a claim is skipped, and fenced at a later claim); agent leases and
 * reports are written in key order.
 *
 * @module
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { OwnerInfo } from '../port.js';
import type {
  ForeignTask,
  KnownType,
  ReportKey,
  TaskKey,
  TaskReportRecord,
} from '../shared-port.js';
import { leaseLost } from './connection.js';
import { channelOf, signalPayload } from './listen.js';
import { parseReportRow } from './rows.js';
import type { SharedSql } from './shared-sql.js';
import { jsonText } from './statements.js';

export { NODE_ROW_KEEP_MS, buildSharedSql, type SharedSql } from './shared-sql.js';

/** How the shared operations reach the database (the store's helpers). */
export interface SharedDb {
  readonly sql: SharedSql;
  readonly schema: string;
  readonly leaseMs: number;
  /** One statement on a pooled connection; `idempotent` ones are tried again on connection errors. */
  query(text: string, values: unknown[], idempotent: boolean): Promise<pg.QueryResult>;
  /**
   * A transaction on a pooled connection; tried again on connection errors that happened before
   * COMMIT was sent (`fn` must be safe to run again).
   */
  transaction<T>(what: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T>;
}

/** The node a store instance registered, as its statements identify it. */
export interface RegisteredNode {
  readonly nodeId: string;
  readonly epoch: number;
  readonly lastBatch: number;
  /** Number of the node's last claim (the claim ledger); the next claim takes the next one. */
  lastClaim: number;
}

function num(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}

/**
 * Registers `nodeId` with a fresh lease, for the store instance `instance` (a random id). A live row of the same id (unexpired, unfenced) means
 * the node runs elsewhere: `STORE_IN_USE` naming it. An expired or fenced row is replaced with a
 * new epoch (its earlier process, if it still runs, is fenced out by the epoch).
 */
export async function registerNode(
  db: SharedDb,
  nodeId: string,
  instance: string,
): Promise<RegisteredNode> {
  const r = await db.query(
    db.sql.registerNode,
    [nodeId, db.leaseMs, process.pid, hostname(), instance],
    true,
  );
  const row = r.rows[0] as { epoch: unknown; last_batch: unknown; last_claim: unknown } | undefined;
  if (row !== undefined) {
    return {
      nodeId,
      epoch: num(row.epoch),
      lastBatch: num(row.last_batch),
      lastClaim: num(row.last_claim),
    };
  }
  const info = await db.query(db.sql.nodeInfo, [nodeId], true);
  const o = info.rows[0] as Record<string, unknown> | undefined;
  const owner: OwnerInfo = {
    nodeId,
    pid: num(o?.pid),
    host: String(o?.host),
    heartbeatAt: num(o?.heartbeat_at),
    since: num(o?.since),
  };
  const until = new Date(num(o?.lease_until)).toISOString();
  throw new CocoError(
    ErrorCode.StoreInUse,
    `node "${nodeId}" is live on schema ${db.schema} (pid ${owner.pid} on host ${owner.host}, ` +
      `since ${new Date(owner.since).toISOString()}, lease until ${until}); give this node another id`,
    { details: { owner } },
  );
}

/**
 * Sets up the ledgers of a node's `count` apply lanes under its epoch (migration 0012) and returns
 * each lane's last committed batch (0 for a new epoch).
 */
export async function openLanes(
  db: SharedDb,
  node: { readonly nodeId: string; readonly epoch: number },
  count: number,
): Promise<number[]> {
  await db.query(db.sql.openLanes, [node.nodeId, node.epoch, count], true);
  const r = await db.query(db.sql.laneBatches, [node.nodeId, node.epoch], true);
  const out = Array.from({ length: count }, () => 0);
  for (const row of r.rows as { lane: unknown; last_batch: unknown }[]) {
    const lane = num(row.lane);
    if (lane < count) out[lane] = num(row.last_batch);
  }
  return out;
}

/** Renews the node's lease; `LEASE_LOST` if it was fenced or replaced. */
export async function renewNode(db: SharedDb, node: RegisteredNode): Promise<void> {
  const r = await db.query(db.sql.renewNode, [node.nodeId, node.epoch, db.leaseMs], true);
  if (r.rowCount === 0) throw leaseLost(node.nodeId, 'heartbeat refused');
}

/** Fences the node (its trees become orphans at once), drops its agent leases, signals the others. */
export async function retireNode(db: SharedDb, node: RegisteredNode): Promise<void> {
  await db.query(
    db.sql.retireNode,
    [node.nodeId, node.epoch, channelOf(db.schema), signalPayload(null, 'orphans')],
    true,
  );
}

/** {@link SharedStore.claimOrphans} for a registered node. */
export async function claimOrphans(
  db: SharedDb,
  node: RegisteredNode,
  known: readonly KnownType[],
  limit: number,
): Promise<number[]> {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `claimOrphans: limit must be a positive integer, not ${limit}`,
    );
  }
  const number = ++node.lastClaim;
  try {
    return await db.transaction('claimOrphans', async (client) => {
      const me = await client.query(db.sql.liveSelf, [node.nodeId, node.epoch]);
      if (me.rowCount === 0) throw leaseLost(node.nodeId, 'claimOrphans refused');
      const fenced = await client.query(db.sql.fenceExpired, [node.nodeId]);
      await client.query(db.sql.purgeNodes);
      const claimed = await client.query({
        text: db.sql.claimTrees,
        values: [node.nodeId, known.map((k) => k.type), known.map((k) => k.version), limit],
        rowMode: 'array',
      });
      const roots = claimed.rows.map((row) => num((row as unknown[])[0]));
      // Only a claim that took trees writes the ledger: one that took none has nothing for a lost
      // answer to recover (the ledger's older number makes it fail, retried at the next claim),
      // and writing the node's row would make the claim wait for this node's batch in flight
      // (which holds the row until its COMMIT) and the node's next batch wait for the claim.
      if (roots.length > 0) {
        await client.query(db.sql.recordClaim, [node.nodeId, node.epoch, number, roots]);
      }
      if ((fenced.rowCount ?? 0) > 0) {
        await client.query(db.sql.notify, [channelOf(db.schema), signalPayload(null, 'orphans')]);
      }
      return roots;
    });
  } catch (error) {
    if (error instanceof CocoError && error.code === ErrorCode.LeaseLost) throw error;
    // Perhaps committed, its answer lost: the ledger says whether this claim took trees.
    const r = await db.query(db.sql.claimState, [node.nodeId], true);
    const row = r.rows[0] as { epoch: unknown; last_claim: unknown; roots: unknown } | undefined;
    if (
      row !== undefined &&
      num(row.epoch) === node.epoch &&
      num(row.last_claim) === number &&
      Array.isArray(row.roots)
    ) {
      return row.roots.map(num);
    }
    throw error;
  }
}

/** {@link SharedStore.claimAgents} for a registered node. */
export async function claimAgents(
  db: SharedDb,
  node: RegisteredNode,
  agentIds: readonly string[],
): Promise<string[]> {
  // Sorted and without repeats: leases are locked in one order by every node (no deadlock), and
  // an upsert may not touch a row twice.
  const ids = [...new Set(agentIds)].sort();
  const r = await db.query(db.sql.claimAgents, [node.nodeId, node.epoch, ids, db.leaseMs], true);
  const row = r.rows[0] as { live: unknown; agents: unknown } | undefined;
  if (num(row?.live) === 0) throw leaseLost(node.nodeId, 'claimAgents refused');
  return Array.isArray(row?.agents) ? row.agents.map(String) : [];
}

/** {@link SharedStore.releaseAgents}. */
export async function releaseAgents(
  db: SharedDb,
  nodeId: string,
  agentIds?: readonly string[],
): Promise<void> {
  await db.query(
    db.sql.releaseAgents,
    [nodeId, agentIds === undefined ? null : [...agentIds]],
    true,
  );
}

/** {@link SharedStore.foreignTasks}. */
export async function foreignTasks(
  db: SharedDb,
  nodeId: string,
  agentIds: readonly string[],
): Promise<ForeignTask[]> {
  if (agentIds.length === 0) return [];
  const r = await db.query(db.sql.foreignTasks, [nodeId, [...agentIds]], true);
  return r.rows.map((row: Record<string, unknown>) => ({
    commandId: num(row.command_id),
    ordinal: num(row.ordinal),
    agentId: String(row.agent_id),
    owner: String(row.owner),
  }));
}

/** {@link SharedStore.strangerTasks}. */
export async function strangerTasks(db: SharedDb, keys: readonly TaskKey[]): Promise<TaskKey[]> {
  if (keys.length === 0) return [];
  const r = await db.query(
    db.sql.strangerTasks,
    [keys.map((k) => k.commandId), keys.map((k) => k.ordinal)],
    true,
  );
  return r.rows.map((row: Record<string, unknown>) => ({
    commandId: num(row.command_id),
    ordinal: num(row.ordinal),
  }));
}

/** {@link SharedStore.postReports}. */
export async function postReports(
  db: SharedDb,
  reports: readonly TaskReportRecord[],
): Promise<void> {
  if (reports.length === 0) return;
  // One report per task (the last one), in key order (see the module's lock order).
  const last = new Map<string, TaskReportRecord>();
  for (const r of reports) last.set(`${r.commandId}/${r.ordinal}`, r);
  const rows = [...last.values()].sort(
    (a, b) => a.commandId - b.commandId || a.ordinal - b.ordinal,
  );
  await db.query(
    db.sql.postReports,
    [
      channelOf(db.schema),
      rows.map((r) => r.commandId),
      rows.map((r) => r.ordinal),
      rows.map((r) => r.status),
      rows.map((r) => jsonText(r.result)),
      rows.map((r) => jsonText(r.error)),
      rows.map((r) => r.progress),
      rows.map((r) => r.at),
    ],
    true,
  );
}

/** {@link SharedStore.takeReports}. */
export async function takeReports(
  db: SharedDb,
  nodeId: string,
  limit: number,
): Promise<TaskReportRecord[]> {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `takeReports: limit must be a positive integer, not ${limit}`,
    );
  }
  const r = await db.query(db.sql.takeReports, [nodeId, limit], true);
  return r.rows.map(parseReportRow);
}

/** {@link SharedStore.dropReports}. */
export async function dropReports(db: SharedDb, keys: readonly ReportKey[]): Promise<void> {
  if (keys.length === 0) return;
  const sorted = [...keys].sort((a, b) => a.commandId - b.commandId || a.ordinal - b.ordinal);
  const exact = (k: ReportKey) => k.at !== undefined && k.status !== undefined;
  await db.query(
    db.sql.dropReports,
    [
      sorted.map((k) => k.commandId),
      sorted.map((k) => k.ordinal),
      sorted.map((k) => (exact(k) ? k.at : null)),
      sorted.map((k) => (exact(k) ? k.status : null)),
    ],
    true,
  );
}
