/**
 * The PostgreSQL store: one schema shared by many coordinator nodes ({@link SharedStore}).
 *
 * - `apply` runs each batch in one transaction, in call order, on a connection held for it,
 *   with a few set-based statements per batch; it is fenced by the node's lease and applied
 *   exactly once across lost connections (applier.ts).
 * - The database refuses illegal status transitions (PL/pgSQL triggers over transition tables).
 * - Nodes hold leases on the database's clock, claim the trees of dead nodes, share agents and
 *   relay task reports (shared.ts); LISTEN/NOTIFY makes that prompt (listen.ts).
 * - Migrations are numbered `.sql` files (migrations/), applied in one transaction under an
 *   advisory lock keyed on the schema (connection.ts).
 *
 * @example
 * ```ts
 * const store = postgresStore({ url: 'postgres://coco@db/coco', schema: 'coco' });
 * const { storeId } = await store.open('node-1');
 * ```
 * @module
 */
import { z } from 'zod';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { raceUntil, whenAborted } from '../../core/clock.js';
import { CocoError, ErrorCode } from '../../core/errors.js';
import type {
  AgentRecord,
  CommandRecord,
  EntityRecord,
  TaskRecord,
  UndoRecord,
} from '../../core/records.js';
import type {
  ActiveSnapshot,
  ChangeBatch,
  CloseOptions,
  CommandPage,
  StatusChange,
  CommandQuery,
  HeldTree,
  PausedType,
  RerunLinks,
  HoldRequest,
  MigrationReport,
  PoolFigures,
  PruneBatch,
  PruneOptions,
  StoreIdentity,
} from '../port.js';
import { checkPruneOptions } from '../port.js';
import type {
  ClusterQueuePosition,
  ForeignTask,
  KnownType,
  ReportKey,
  SharedStore,
  SlotGrant,
  SlotHolder,
  SlotLimits,
  StoreSignal,
  TaskKey,
  TaskReportRecord,
} from '../shared-port.js';
import { Applier } from './applier.js';
import { LaneApplier } from './lanes.js';
import { PoolAccess } from './pool-access.js';
import { TYPES, createPool, leaseLost, migrateSchema } from './connection.js';
import { destroyConnections, endPool, poolFigures, storeFailed } from '../../db/postgres.js';
import { Listener, channelOf, signalPayload } from './listen.js';
import {
  compileOptions,
  type CompiledPostgresOptions,
  type PostgresStoreOptions,
} from './options.js';
import {
  activeSnapshot,
  commandPage,
  heldTrees,
  pausedTypes,
  statusHistory,
  parseAgentRow,
  parseCommandRow,
  parseEntityRow,
  parseOrThrow,
  parseTaskRow,
  parseUndoRow,
} from './rows.js';
import * as cancels from './cancels.js';
import * as slots from './admission-slots.js';
import { buildRetentionSql, pruneQuery, pruneResult, type RetentionSql } from './retention.js';
import * as shared from './shared.js';
import {
  buildSql,
  commandInsertParams,
  jsonText,
  listCommandsQuery,
  type Sql,
} from './statements.js';

export type { PostgresStoreOptions } from './options.js';
export { DEFAULT_LEASE_MS, DEFAULT_POOL_SIZE, DEFAULT_STATEMENT_TIMEOUT_MS } from './options.js';

/** Default page size of {@link Store.listCommands}. */
export const DEFAULT_LIST_LIMIT = 100;
/** Largest page of {@link Store.listCommands}; bigger limits are capped to it. */
export const MAX_LIST_LIMIT = 1_000;

/** A {@link SharedStore} on one PostgreSQL schema. */
export class PostgresStore implements SharedStore {
  readonly dialect = 'postgres';
  readonly shared = true;
  /** Length of a node's lease and of an agent lease, in ms. */
  readonly leaseMs: number;
  /** The schema holding the store's tables. */
  readonly schema: string;
  readonly #o: CompiledPostgresOptions;
  readonly #pool: pg.Pool;
  readonly #ownsPool: boolean;
  readonly #sql: Sql;
  readonly #db: shared.SharedDb;
  readonly #cancelSql: ReturnType<typeof cancels.buildCancelSql>;
  readonly #slotSql: slots.SlotSql;
  readonly #retentionSql: RetentionSql;
  readonly #access: PoolAccess;
  readonly #applier: Applier | LaneApplier;
  readonly #listeners = new Set<Listener>();
  /** The store id, once migrated. */
  #storeId: string | undefined;
  #migrating: Promise<string> | null = null;
  #closed = false;
  /** Random id of this instance, recorded with its node (see shared.registerNode). */
  readonly #instance = randomBytes(8).toString('hex');
  /** The node this instance registered (open), if any. */
  #node: shared.RegisteredNode | null = null;

  constructor(options: PostgresStoreOptions) {
    this.#o = compileOptions(options);
    this.leaseMs = this.#o.leaseMs;
    this.schema = this.#o.schema;
    const { pool, owned } = createPool(this.#o);
    this.#pool = pool;
    this.#ownsPool = owned;
    this.#sql = buildSql(this.schema);
    const isOpen = (): boolean => !this.#closed;
    this.#access = new PoolAccess(pool, isOpen);
    const applierHost = {
      pool,
      sql: this.#sql,
      schema: this.schema,
      statementTimeoutMs: this.#o.statementTimeoutMs,
      isOpen,
    };
    this.#applier =
      this.#o.applyConnections > 1
        ? new LaneApplier(applierHost, this.#o.applyConnections)
        : new Applier(applierHost);
    this.#cancelSql = cancels.buildCancelSql(this.#o.schema);
    this.#slotSql = slots.buildSlotSql(this.#o.schema);
    this.#retentionSql = buildRetentionSql(this.#o.schema);
    this.#db = {
      sql: shared.buildSharedSql(this.schema),
      schema: this.schema,
      leaseMs: this.leaseMs,
      query: (text, values, idempotent) => this.#access.query(text, values, { idempotent }),
      transaction: (what, fn) => this.#access.transaction(what, fn),
    };
  }

  #checkOpen(): void {
    if (this.#closed)
      throw new CocoError(ErrorCode.StoreFailed, `the store (schema ${this.schema}) is closed`);
  }

  /** The store id, migrating first if this instance has not yet. */
  async #ready(): Promise<string> {
    this.#checkOpen();
    if (this.#storeId !== undefined) return this.#storeId;
    this.#migrating ??= this.#migrate()
      .then((r) => r.storeId)
      .finally(() => (this.#migrating = null));
    return this.#migrating;
  }

  async #migrate(): Promise<MigrationReport & { storeId: string }> {
    this.#checkOpen();
    // A server restarting while a node starts: the migration is tried again.
    const report = await this.#access.withClientAgain('migration failed', (client) =>
      migrateSchema(client, this.schema),
    );
    this.#storeId = report.storeId;
    return report;
  }

  async migrate(): Promise<MigrationReport> {
    const { applied, current } = await this.#migrate();
    return { applied, current };
  }

  /** The store's identity (migrating first), without registering a node: for tools and checks. */
  async identity(): Promise<StoreIdentity> {
    return { storeId: await this.#ready() };
  }

  async open(nodeId: string): Promise<StoreIdentity> {
    const storeId = await this.#ready();
    if (this.#node !== null) {
      if (this.#node.nodeId !== nodeId) {
        throw new CocoError(
          ErrorCode.StoreInUse,
          `this store instance is open for node "${this.#node.nodeId}", not "${nodeId}"`,
        );
      }
      await shared.renewNode(this.#db, this.#node);
      return { storeId };
    }
    const node = await shared.registerNode(this.#db, nodeId, this.#instance);
    const identity = { nodeId, epoch: node.epoch };
    if (this.#applier instanceof LaneApplier) {
      const lanes = await shared.openLanes(this.#db, identity, this.#applier.size);
      this.#applier.setNode(identity, lanes);
    } else this.#applier.setNode(identity, node.lastBatch);
    this.#node = node;
    return { storeId };
  }

  /** The node this instance registered as `nodeId`, or `LEASE_LOST`. */
  #registered(nodeId: string, what: string): shared.RegisteredNode {
    this.#checkOpen();
    const node = this.#node;
    if (node === null || node.nodeId !== nodeId) {
      throw new CocoError(
        ErrorCode.LeaseLost,
        `${what}: node "${nodeId}" was not opened on this store instance`,
        { details: { nodeId } },
      );
    }
    return node;
  }

  async heartbeat(nodeId: string): Promise<void> {
    await this.#ready();
    await shared.renewNode(this.#db, this.#registered(nodeId, 'heartbeat refused'));
  }

  async reserveIds(count: number): Promise<number> {
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `reserveIds: count must be a positive integer, not ${count}`,
      );
    }
    await this.#ready();
    // Idempotent enough: a retried reservation only skips a block of ids.
    const r = await this.#access.query(this.#sql.reserveIds, [count], { idempotent: true });
    return Number((r.rows[0] as { first: unknown } | undefined)?.first);
  }

  apply(batch: ChangeBatch): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError());
    // Queued at once (not after an await), so that batches keep their call order.
    if (this.#storeId !== undefined) return this.#applier.apply(batch);
    return this.#ready().then(() => this.#applier.apply(batch));
  }

  #closedError(): CocoError {
    return new CocoError(ErrorCode.StoreFailed, `the store (schema ${this.schema}) is closed`);
  }

  loadActive(): Promise<ActiveSnapshot> {
    return this.#load(null);
  }

  loadRoots(rootIds: readonly number[]): Promise<ActiveSnapshot> {
    return this.#load([...rootIds]);
  }

  /** The active snapshot (of the opened node's trees; of these roots), read in one snapshot. */
  async #load(roots: number[] | null): Promise<ActiveSnapshot> {
    await this.#ready();
    const values = [this.#node?.nodeId ?? null, roots];
    const sql = this.#sql;
    return this.#access.transaction(
      'loadActive',
      async (client) => {
        const read = async (text: string): Promise<unknown[]> =>
          (await client.query({ text, values, rowMode: 'array', types: TYPES })).rows;
        return activeSnapshot({
          commands: await read(sql.activeCommands),
          tasks: await read(sql.activeTasks),
          undo: await read(sql.activeUndo),
          endedChildren: await read(sql.endedChildren),
        });
      },
      true,
    );
  }

  /**
   * Retention (see the port, and retention.ts): one statement per call, safe beside nodes that
   * write and claim trees and beside other pruners. Needs no registered node. Tried again on a
   * lost connection (a repeat deletes only what is still prunable); the counts of a run whose
   * answer was lost are then missing from the result.
   */
  async prune(options: PruneOptions): Promise<PruneBatch> {
    checkPruneOptions(options);
    await this.#ready();
    const { text, values } = pruneQuery(this.#retentionSql, options);
    const r = await this.#access.query(text, values, { idempotent: true });
    return pruneResult(r.rows[0] as Record<string, unknown> | undefined);
  }

  async getCommand(id: number): Promise<CommandRecord | null> {
    const rows = await this.#rows(this.#sql.getCommand, [id]);
    return rows[0] === undefined ? null : parseOrThrow(parseCommandRow, rows[0]);
  }

  /** {@inheritDoc SharedStore.insertKeyedRoot} */
  async insertKeyedRoot(nodeId: string, root: CommandRecord): Promise<boolean> {
    await this.#ready();
    const node = this.#registered(nodeId, 'insertKeyedRoot refused');
    if (root.idempotencyKey === null || root.parentId !== null)
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `insertKeyedRoot: command ${root.id} is not a root with an idempotency key`,
      );
    // Safe to repeat: a try whose answer was lost left the row, and the next finds its key taken.
    const r = await this.#access.query(
      this.#sql.insertKeyedRoot,
      [...commandInsertParams([root], node.nodeId), node.epoch],
      { idempotent: true },
    );
    const row = r.rows[0] as { live: number; inserted: number } | undefined;
    if (row?.live !== 1) throw leaseLost(nodeId, 'insertKeyedRoot refused, nothing was stored');
    return row.inserted === 1;
  }

  async getCommandByKey(idempotencyKey: string): Promise<CommandRecord | null> {
    const rows = await this.#rows(this.#sql.getCommandByKey, [idempotencyKey]);
    return rows[0] === undefined ? null : parseOrThrow(parseCommandRow, rows[0]);
  }

  async listCommands(query: CommandQuery = {}): Promise<CommandPage> {
    const limit = query.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `listCommands: limit must be a positive integer, not ${limit}`,
      );
    }
    const { text, values } = listCommandsQuery(this.#sql, {
      ...query,
      limit: Math.min(limit, MAX_LIST_LIMIT),
    });
    const rows = await this.#rows(text, values);
    return commandPage(rows, Math.min(limit, MAX_LIST_LIMIT));
  }

  async getTasks(commandId: number): Promise<TaskRecord[]> {
    const rows = await this.#rows(this.#sql.getTasks, [commandId]);
    return rows.map((row) => parseOrThrow(parseTaskRow, row));
  }

  async getStatusHistory(commandId: number): Promise<StatusChange[]> {
    return statusHistory(await this.#rows(this.#sql.getStatusHistory, [commandId]), commandId);
  }

  async getUndo(commandId: number): Promise<UndoRecord[]> {
    const rows = await this.#rows(this.#sql.getUndo, [commandId]);
    return rows.map((row) => parseOrThrow(parseUndoRow, row));
  }

  async getEntity(kind: string, id: string): Promise<EntityRecord | null> {
    const rows = await this.#rows(this.#sql.getEntity, [kind, id]);
    return rows[0] === undefined ? null : parseOrThrow(parseEntityRow, rows[0]);
  }

  async saveAgent(r: AgentRecord): Promise<void> {
    await this.#ready();
    await this.#access.query(
      this.#sql.saveAgent,
      [r.id, r.address, r.state, r.bootId, r.lastSeenAt, jsonText(r.lastError), r.updatedAt],
      { idempotent: true },
    );
  }

  /** {@inheritDoc Store.saveAgents} One statement (`unnest` of the columns) for every row. */
  async saveAgents(records: readonly AgentRecord[]): Promise<void> {
    const latest = new Map<string, AgentRecord>();
    for (const r of records) {
      latest.delete(r.id);
      latest.set(r.id, r);
    }
    if (latest.size === 0) return;
    if (latest.size === 1) return this.saveAgent([...latest.values()][0]!);
    const rows = [...latest.values()];
    await this.#ready();
    await this.#access.query(
      this.#sql.saveAgents,
      [
        rows.map((r) => r.id),
        rows.map((r) => r.address),
        rows.map((r) => r.state),
        rows.map((r) => r.bootId),
        rows.map((r) => r.lastSeenAt),
        rows.map((r) => jsonText(r.lastError)),
        rows.map((r) => r.updatedAt),
      ],
      { idempotent: true },
    );
  }

  /** {@inheritDoc Store.deleteAgent} */
  async deleteAgent(id: string): Promise<boolean> {
    await this.#ready();
    const r = await this.#access.query(this.#sql.deleteAgent, [id], { idempotent: true });
    return (r.rowCount ?? 0) > 0;
  }

  /** {@inheritDoc Store.holdTrees} */
  async holdTrees(nodeId: string, trees: readonly HoldRequest[], at: number): Promise<void> {
    if (trees.length === 0) return;
    await this.#ready();
    const node = this.#registered(nodeId, 'holdTrees refused');
    // Not repeated on a lost connection: a try whose answer was lost counted its refusal.
    const r = await this.#access.query(
      this.#sql.holdTrees,
      [
        trees.map((t) => t.rootId),
        trees.map((t) => JSON.stringify(t.error)),
        node.nodeId,
        node.epoch,
        at,
      ],
      { idempotent: false },
    );
    if ((r.rows[0] as { live: number } | undefined)?.live !== 1)
      throw leaseLost(nodeId, 'holdTrees refused, nothing was marked');
  }

  /** {@inheritDoc Store.releaseTree} */
  async releaseTree(rootId: number): Promise<boolean> {
    await this.#ready();
    const r = await this.#access.query(this.#sql.releaseTree, [rootId], { idempotent: true });
    return (r.rowCount ?? 0) > 0;
  }

  /** {@inheritDoc Store.heldTrees} */
  async heldTrees(): Promise<HeldTree[]> {
    return heldTrees(await this.#rows(this.#sql.listHeld, []));
  }

  /** {@inheritDoc Store.pauseType} */
  async pauseType(pause: PausedType): Promise<PausedType> {
    const rows = await this.#rows(this.#sql.pauseType, [
      pause.type,
      pause.pausedAt,
      pause.by,
      pause.reason,
      channelOf(this.schema),
      signalPayload(null, 'pauses'),
    ]);
    return pausedTypes(withoutLast(rows))[0] ?? pause;
  }

  /** {@inheritDoc Store.resumeType} */
  async resumeType(type: string): Promise<PausedType | null> {
    const rows = await this.#rows(this.#sql.resumeType, [
      type,
      channelOf(this.schema),
      signalPayload(null, 'pauses'),
    ]);
    return pausedTypes(withoutLast(rows))[0] ?? null;
  }

  /** {@inheritDoc Store.linkRerun} */
  async linkRerun(rootId: number, rerunOf: number, at: number): Promise<void> {
    await this.#rows(this.#sql.linkRerun, [rootId, rerunOf, at]);
  }

  /** {@inheritDoc Store.rerunLinks} */
  async rerunLinks(id: number): Promise<RerunLinks> {
    const [row] = await this.#rows(this.#sql.rerunLinks, [id]);
    const [of, reruns] = rerunRow.parse(row);
    return { rerunOf: of === null ? null : Number(of), reruns: reruns.map(Number) };
  }

  /** {@inheritDoc Store.pausedTypes} */
  async pausedTypes(): Promise<PausedType[]> {
    return pausedTypes(await this.#rows(this.#sql.listPaused, []));
  }

  async listAgents(): Promise<AgentRecord[]> {
    await this.#ready();
    const r = await this.#access.query(this.#sql.listAgents, [], { idempotent: true });
    return r.rows.map(parseAgentRow);
  }

  // -- SharedStore --

  async claimOrphans(
    nodeId: string,
    known: readonly KnownType[],
    limit: number,
  ): Promise<number[]> {
    await this.#ready();
    return shared.claimOrphans(
      this.#db,
      this.#registered(nodeId, 'claimOrphans refused'),
      known,
      limit,
    );
  }

  async claimAgents(nodeId: string, agentIds: readonly string[]): Promise<string[]> {
    await this.#ready();
    const node = this.#registered(nodeId, 'claimAgents refused');
    return agentIds.length === 0 ? [] : shared.claimAgents(this.#db, node, agentIds);
  }

  async releaseAgents(nodeId: string, agentIds?: readonly string[]): Promise<void> {
    await this.#ready();
    await shared.releaseAgents(this.#db, nodeId, agentIds);
  }

  async foreignTasks(nodeId: string, agentIds: readonly string[]): Promise<ForeignTask[]> {
    await this.#ready();
    return shared.foreignTasks(this.#db, nodeId, agentIds);
  }

  async strangerTasks(keys: readonly TaskKey[]): Promise<TaskKey[]> {
    await this.#ready();
    return shared.strangerTasks(this.#db, keys);
  }

  async postReports(reports: readonly TaskReportRecord[]): Promise<void> {
    await this.#ready();
    await shared.postReports(this.#db, reports);
  }

  async takeReports(nodeId: string, limit: number): Promise<TaskReportRecord[]> {
    await this.#ready();
    return shared.takeReports(this.#db, nodeId, limit);
  }

  async dropReports(keys: readonly ReportKey[]): Promise<void> {
    await this.#ready();
    await shared.dropReports(this.#db, keys);
  }

  async requestCancel(commandId: number): Promise<{ owner: string | null } | null> {
    await this.#ready();
    return cancels.requestCancel(this.#db, this.#cancelSql, commandId, Date.now());
  }

  async takeCancels(nodeId: string, limit: number): Promise<number[]> {
    await this.#ready();
    return cancels.takeCancels(this.#db, this.#cancelSql, nodeId, limit);
  }

  async dropCancels(commandIds: readonly number[]): Promise<void> {
    await this.#ready();
    await cancels.dropCancels(this.#db, this.#cancelSql, commandIds);
  }

  async admitQueued(
    nodeId: string,
    agentId: string,
    limits: SlotLimits | (() => SlotLimits | null),
  ): Promise<SlotGrant[] | null> {
    await this.#ready();
    const node = this.#registered(nodeId, 'admitQueued refused');
    return slots.admitQueued(this.#db, this.#slotSql, node, agentId, limits, Date.now());
  }

  async takeGrants(nodeId: string, limit: number): Promise<TaskKey[]> {
    await this.#ready();
    return slots.takeGrants(this.#db, this.#slotSql, nodeId, limit);
  }

  async holdSlots(holders: readonly SlotHolder[]): Promise<void> {
    await this.#ready();
    await slots.holdSlots(this.#db, this.#slotSql, holders, Date.now());
  }

  async releaseSlots(keys: readonly TaskKey[]): Promise<void> {
    await this.#ready();
    await slots.releaseSlots(this.#db, this.#slotSql, keys);
  }

  async queueAhead(keys: readonly TaskKey[], ageStepMs: number): Promise<ClusterQueuePosition[]> {
    await this.#ready();
    return slots.queueAhead(this.#db, this.#slotSql, keys, ageStepMs);
  }

  async queueChanged(agentIds: readonly string[]): Promise<void> {
    await this.#ready();
    await slots.queueChanged(this.#db, this.#slotSql, agentIds);
  }

  async listen(
    nodeId: string,
    onSignal: (signal: StoreSignal) => void,
  ): Promise<() => Promise<void>> {
    await this.#ready();
    const listener = new Listener(
      { pool: this.#pool, schema: this.schema, isOpen: () => !this.#closed },
      nodeId,
      onSignal,
    );
    await listener.start();
    this.#listeners.add(listener);
    return async () => {
      this.#listeners.delete(listener);
      await listener.stop();
    };
  }

  /** The pool's connections now (a caller's pool too: the one this store uses). */
  connections(): PoolFigures {
    return poolFigures(this.#pool);
  }

  /**
   * Fences this instance's node (its trees become orphans at once; the others are signalled),
   * drops its agent leases, and closes connections (the pool too, if the store created it).
   * Batches already called are applied first. Idempotent; later calls reject.
   *
   * Once `options.signal` aborts, nothing more is waited for: the node is not retired (its lease
   * lapses), and the connections of the store's own pool are destroyed, failing what is in flight
   * on them (a caller's pool keeps its connections: they are the caller's to end).
   */
  async close(nodeId?: string, options: CloseOptions = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const node = this.#node;
    this.#node = null;
    const { signal } = options;
    const drop = (): void => {
      if (this.#ownsPool) destroyConnections(this.#pool);
    };
    // Each wait ends when the signal aborts; what it waited for goes on alone, failing fast on
    // destroyed connections (or, on a caller's pool, at its statements' timeout).
    const abandoned = whenAborted(signal).then(drop);
    let failure: unknown;
    try {
      await raceUntil(this.#applier.close(), abandoned);
      await raceUntil(Promise.all([...this.#listeners].map((l) => l.stop())), abandoned);
      this.#listeners.clear();
      if (
        node !== null &&
        (nodeId === undefined || nodeId === node.nodeId) &&
        signal?.aborted !== true
      ) {
        await raceUntil(shared.retireNode(this.#db, node), abandoned);
      }
    } catch (error) {
      failure = error;
    } finally {
      if (this.#ownsPool)
        await raceUntil(
          endPool(this.#pool).catch(() => undefined),
          abandoned,
        );
    }
    if (failure !== undefined && signal?.aborted !== true)
      throw storeFailed('close failed', failure);
  }

  // -- helpers --

  /** Positional rows of a read (migrating first). */
  async #rows(text: string, values: unknown[]): Promise<unknown[]> {
    await this.#ready();
    const r = await this.#access.query(text, values, { rowMode: 'array', idempotent: true });
    return r.rows as unknown[];
  }
}

/** The row of `rerunLinks`: the root it reran (or null), the roots that reran it (int8 as text). */
const rerunRow = z.tuple([
  z.union([z.string(), z.number()]).nullable(),
  z.array(z.union([z.string(), z.number()])),
]);

/** Rows (arrays) without their last column (a statement's `notified`). */
function withoutLast(rows: readonly unknown[]): unknown[] {
  return rows.map((r) => (Array.isArray(r) ? r.slice(0, -1) : r));
}

/** Creates a PostgreSQL store (validating its options). Nothing connects until the first call. */
export function postgresStore(options: PostgresStoreOptions): PostgresStore {
  return new PostgresStore(options);
}
