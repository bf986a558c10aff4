/**
 * The SQLite store: one file, one writing engine (single-writer ownership), WAL journal.
 *
 * `apply` is the engine's group commit: one `BEGIN IMMEDIATE` transaction per batch, cached
 * prepared statements, and triggers that refuse illegal status transitions inside the database.
 * better-sqlite3 is synchronous: every method does its work at once and returns a settled promise.
 *
 * @example
 * ```ts
 * const store = sqliteStore({ path: './coco.db' });
 * const { storeId } = await store.open('node-1');
 * ```
 * @module
 */
import { hostname } from 'node:os';
import type Database from 'better-sqlite3';
import { systemClock, type Clock } from '../../core/clock.js';
import { CocoError, ErrorCode } from '../../core/errors.js';
import { AGENT_WRITES, agentRows, deleteAgent, listAgents, saveAgents } from './agents.js';
import { HELD_WRITES, LIST_HELD, holdInline, holdRows, releaseInline } from './held.js';
import { GET_PAUSED, LIST_PAUSED, PAUSE_WRITES, pauseRow, pauseWriteInline } from './pauses.js';
import { RERUN_WRITES, linkInline, linkRow, readLinks } from './reruns.js';
import type {
  AgentRecord,
  CommandRecord,
  EntityRecord,
  TaskRecord,
  UndoRecord,
} from '../../core/records.js';
import type {
  ActiveRowSink,
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
  PruneBatch,
  PruneOptions,
  Store,
  StoreIdentity,
} from '../port.js';
import { batchRows, checkPruneOptions } from '../port.js';
import { applyError, migrateDatabase } from './connection.js';
import { connect, storeFailed, type ConnectionSettings } from '../../db/sqlite.js';
import { batchOps, maxInsertedId, writeBatch } from './operations.js';
import { manyActive, readActive, streamActive } from './load.js';
import { ReaderThread, streamInThread } from './reader.js';
import {
  DEFAULT_INLINE_MAX_ROWS,
  DEFAULT_LIST_LIMIT,
  MAX_LIST_LIMIT,
  validateOptions,
  type SqliteStoreOptions,
} from './options.js';
import { ownedInProcess, ownershipLost, takeOwnership } from './ownership.js';
import { SqliteWriter, type ThreadUsage } from './writer.js';
import {
  PRUNE_WRITES,
  countTrees,
  deleted,
  prepareRetention,
  pruneOps,
  readCandidates,
  runInline,
  type RetentionStatements,
} from './retention.js';
import {
  commandPage,
  heldTrees,
  pausedTypes,
  statusHistory,
  parseCommandRow,
  parseEntityRow,
  parseOrThrow,
  parseTaskRow,
  parseUndoRow,
} from '../rows/parse.js';
import {
  MULTI_ROW_SQL,
  MULTI_ROW_UPDATES,
  SQL,
  listCommandsQuery,
  prepareStatements,
  type Statements,
} from './statements.js';

export {
  DEFAULT_INLINE_MAX_ROWS,
  DEFAULT_LIST_LIMIT,
  MAX_LIST_LIMIT,
  type SqliteStoreOptions,
} from './options.js';

/** The statement cache of `listCommands` is dropped past this many query shapes. */
const LIST_CACHE_MAX = 64;

/**
 * When the small batches' commits on the event loop have taken this long on average, the event
 * loop is the worse place for them: a slow or busy disk's sync (or a lock another process holds)
 * holds API requests and agent polls as long, while the writer thread's hand-offs cost ~0.1–0.3
 * ms. A commit here takes ~0.2–0.5 ms on a local disk (BENCHMARKS.md, "Latency at light load").
 */
const INLINE_SLOW_MS = 2;
/**
 * Weight of the latest commit in that average: a lone hiccup of the disk (5–10 ms, seen every few
 * thousand commits on this machine kind, and a commit in the thread would wait for it as long)
 * does not trip it; a disk that stays slow does within a few commits.
 */
const INLINE_AVERAGE_WEIGHT = 1 / 8;
/**
 * How long every batch then goes through the writer thread: a disk that stays slow stalls the
 * event loop for a few commits per pause at most, and one that was busy for a moment gets the
 * fast path back soon.
 */
const INLINE_PAUSE_MS = 10_000;

/**
 * Whether small batches may commit on the event loop (see
 * {@link SqliteStoreOptions.inlineMaxRows}): not for a while after those commits were slow on
 * average. Times are `performance.now()` milliseconds, passed in.
 */
export class InlineCommitGuard {
  #averageMs = 0;
  #pausedUntil = 0;

  /** Whether a small batch may commit on the event loop at `now`. */
  allows(now: number): boolean {
    return now >= this.#pausedUntil;
  }

  /** Takes note of a commit on the event loop that took `ms` and ended at `now`. */
  took(ms: number, now: number): void {
    this.#averageMs += (ms - this.#averageMs) * INLINE_AVERAGE_WEIGHT;
    if (this.#averageMs > INLINE_SLOW_MS) {
      this.#pausedUntil = now + INLINE_PAUSE_MS;
      // Judged afresh after the pause: a disk still slow trips it again within a few commits.
      this.#averageMs = 0;
    }
  }
}

/** What the store holds once migrated. */
interface Ready {
  readonly db: Database.Database;
  readonly q: Statements;
  readonly storeId: string;
  /** The apply transaction (better-sqlite3 wrapper; `.immediate` takes the write lock at BEGIN). */
  readonly applyTx: Database.Transaction<(batch: ChangeBatch) => void>;
  readonly loadTx: Database.Transaction<() => ActiveSnapshot>;
  readonly streamTx: Database.Transaction<(sink: ActiveRowSink) => void>;
  /** Retention's statements (retention.ts): its reads, and its deletes for inline writes. */
  readonly retention: RetentionStatements;
}

/** Runs synchronous work as a promise: its result, or its exception as the rejection. */
function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : storeFailed('store call failed', error));
  }
}

/** A {@link Store} on one SQLite file. */
export class SqliteStore implements Store {
  readonly dialect = 'sqlite';
  readonly #settings: ConnectionSettings;
  readonly #clock: Clock;
  readonly #host = hostname();
  #db: Database.Database | undefined;
  /** Set once the schema is migrated and the statements prepared. */
  #state: Ready | undefined;
  #closed = false;
  /** Node that this instance opened the store for (and owns it), if any. */
  #ownerNode: string | undefined;
  /** Next command id to hand out; seeded from max(commands.id). */
  #nextId: number | undefined;
  readonly #listCache = new Map<string, Database.Statement<unknown[], unknown>>();
  /** An inline apply failed and its rejection has not been handled yet. */
  #poisoned = false;
  /** The writer thread (created with the prepared state), or null for inline writes. */
  #writer: SqliteWriter | null = null;
  readonly #writerThread: boolean;
  /** With the writer thread: batches of at most this many rows may commit on the event loop. */
  readonly #inlineMaxRows: number;
  /** Whether small batches may commit on the event loop now (not after slow ones). */
  readonly #inlineGuard = new InlineCommitGuard();
  /** Batches committed on the event loop while the writer thread was idle (monitoring). */
  #inlineBatches = 0;
  /** A reader thread spawned at open for the restart's read (reader.ts), until it is used. */
  #reader: ReaderThread | null = null;

  constructor(options: SqliteStoreOptions) {
    this.#settings = validateOptions(options);
    this.#clock = options.clock ?? systemClock;
    this.#writerThread = options.writerThread ?? true;
    this.#inlineMaxRows = options.inlineMaxRows ?? DEFAULT_INLINE_MAX_ROWS;
  }

  /** The prepared state, after connecting and migrating on first use. */
  #ready(): Ready {
    return this.#state ?? this.#migrate().state;
  }

  #migrate(): { report: MigrationReport; state: Ready } {
    if (this.#closed) {
      throw new CocoError(ErrorCode.StoreFailed, `store ${this.#settings.path} is closed`);
    }
    const db = (this.#db ??= connect(this.#settings));
    const report = migrateDatabase(db, this.#clock.now(), {
      path: this.#settings.path,
      host: this.#host,
      ownedInProcess,
    });
    if (this.#state === undefined) {
      try {
        const q = prepareStatements(db);
        this.#state = {
          db,
          q,
          storeId: (q.getStoreId.get() as { value: string }).value,
          applyTx: db.transaction((batch: ChangeBatch) => writeBatch(q, batch)),
          // A read transaction: the load's queries see one committed state.
          loadTx: db.transaction(() => readActive(q)),
          streamTx: db.transaction((sink: ActiveRowSink) => streamActive(q, sink)),
          retention: prepareRetention(db),
        };
        if (this.#writerThread)
          this.#writer = new SqliteWriter(
            this.#settings,
            {
              ...SQL,
              ...PRUNE_WRITES,
              ...AGENT_WRITES,
              ...HELD_WRITES,
              ...PAUSE_WRITES,
              ...RERUN_WRITES,
            },
            MULTI_ROW_SQL,
            MULTI_ROW_UPDATES,
          );
      } catch (error) {
        throw storeFailed('cannot prepare statements', error);
      }
    }
    return { report, state: this.#state };
  }

  migrate(): Promise<MigrationReport> {
    return settle(() => this.#migrate().report);
  }

  async open(nodeId: string): Promise<StoreIdentity> {
    const identity = await settle(() => {
      const { db, q, storeId } = this.#ready();
      takeOwnership(db, q, {
        path: this.#settings.path,
        storeId,
        nodeId,
        host: this.#host,
        now: this.#clock.now(),
        holding: this.#ownerNode !== undefined,
      });
      this.#ownerNode = nodeId;
      ownedInProcess.add(storeId);
      this.#seedIds(q);
      // Much to load: the reader thread starts beside the writer thread (streamActive uses it).
      if (this.#writerThread && this.#reader === null && manyActive(q))
        this.#reader = ReaderThread.spawn(this.#settings);
      return { storeId };
    });
    // The writer thread starts now, so the first batch does not pay for a cold start.
    await this.#writer?.start();
    return identity;
  }

  heartbeat(nodeId: string): Promise<void> {
    return settle(() => {
      const { q, storeId } = this.#ready();
      let changes: number;
      try {
        changes = q.heartbeat.run(this.#clock.now(), nodeId, process.pid, this.#host).changes;
      } catch (error) {
        throw storeFailed('heartbeat failed', error);
      }
      if (changes > 0) return;
      // Taken over (a peer judged us dead) or never opened: this node must stop writing.
      if (this.#ownerNode === nodeId) {
        this.#ownerNode = undefined;
        ownedInProcess.delete(storeId);
      }
      throw ownershipLost(q, this.#settings.path, nodeId);
    });
  }

  #seedIds(q: Statements): number {
    if (this.#nextId === undefined) {
      const row = q.maxCommandId.get() as { maxId: number | null };
      this.#nextId = (row.maxId ?? 0) + 1;
    }
    return this.#nextId;
  }

  reserveIds(count: number): Promise<number> {
    return settle(() => {
      if (!Number.isSafeInteger(count) || count < 1) {
        throw new CocoError(
          ErrorCode.InvalidOptions,
          `reserveIds: count must be a positive integer, not ${count}`,
        );
      }
      const first = this.#seedIds(this.#ready().q);
      this.#nextId = first + count;
      return first;
    });
  }

  /**
   * Time the writer thread spent running statements and committing, and the small batches
   * committed on the event loop instead (see {@link SqliteStoreOptions.inlineMaxRows};
   * monitoring). Null without the writer thread.
   */
  writerStats(): {
    statementsMs: number;
    commitMs: number;
    totalRuns: number;
    inlineBatches: number;
  } | null {
    return this.#writer ? { ...this.#writer.stats, inlineBatches: this.#inlineBatches } : null;
  }

  /** The writer thread's CPU time and run-queue wait (Linux; null otherwise), for measurements. */
  writerUsage(): Promise<ThreadUsage | null> {
    return this.#writer ? this.#writer.usage() : Promise.resolve(null);
  }

  apply(batch: ChangeBatch): Promise<void> {
    if (this.#poisoned) {
      return Promise.reject(
        new CocoError(ErrorCode.StoreFailed, 'not applied: an earlier batch failed', {
          retryable: true,
        }),
      );
    }
    const writer = this.#writer;
    if (writer) {
      // A small batch while the thread has nothing queued (so nothing it holds is overtaken)
      // commits here; see SqliteStoreOptions.inlineMaxRows.
      if (
        writer.busy ||
        batchRows(batch) > this.#inlineMaxRows ||
        !this.#inlineGuard.allows(performance.now())
      )
        return this.#applyInThread(writer, batch);
      this.#inlineBatches++;
      const t0 = performance.now();
      const applied = this.#applyInline(batch);
      const t1 = performance.now();
      this.#inlineGuard.took(t1 - t0, t1);
      return applied;
    }
    return this.#applyInline(batch);
  }

  /** Applies the batch on the event loop, in one transaction (the inline path). */
  #applyInline(batch: ChangeBatch): Promise<void> {
    try {
      this.#ready().applyTx.immediate(batch);
    } catch (error) {
      // Batches called before this failure is reported fail too (see the port): the flag is
      // cleared by the first reaction to the rejection, which runs before the caller's.
      this.#poisoned = true;
      const rejected = Promise.reject(applyError(error));
      rejected.catch(() => {
        this.#poisoned = false;
      });
      return rejected;
    }
    this.#noteInserted(batch);
    return Promise.resolve();
  }

  async #applyInThread(writer: SqliteWriter, batch: ChangeBatch): Promise<void> {
    this.#ready();
    try {
      await writer.write(batchOps(batch));
    } catch (error) {
      throw error instanceof CocoError ? error : applyError(error);
    }
    this.#noteInserted(batch);
  }

  /** Ids inserted without reserveIds are never handed out later. */
  #noteInserted(batch: ChangeBatch): void {
    const maxId = maxInsertedId(batch);
    if (this.#nextId !== undefined && maxId >= this.#nextId) this.#nextId = maxId + 1;
  }

  loadActive(): Promise<ActiveSnapshot> {
    return settle(() => this.#read(() => this.#ready().loadTx(), 'loadActive'));
  }

  /**
   * The active set (see the port): on the event loop, or, with the writer thread on and more
   * than one chunk to read, in a reader thread (reader.ts) while the sink builds.
   */
  async streamActive(sink: ActiveRowSink): Promise<void> {
    const spawned = this.#reader;
    this.#reader = null;
    if (spawned) return spawned.stream(sink);
    if (this.#writerThread && this.#read(manyActive, 'loadActive'))
      return streamInThread(this.#settings, sink);
    return settle(() => this.#read(() => this.#ready().streamTx(sink), 'loadActive'));
  }

  /**
   * Retention (see the port, and retention.ts): candidates read here, deleted by the writer that
   * applies the engine's batches — the writer thread, in turn with them, or inline.
   */
  async prune(options: PruneOptions): Promise<PruneBatch> {
    checkPruneOptions(options);
    const { db, retention } = await settle(() => this.#ready());
    const candidates = await settle(() =>
      this.#read(() => readCandidates(retention, options), 'prune'),
    );
    if (options.dryRun === true)
      return settle(() => this.#read(() => countTrees(retention, candidates), 'prune'));
    if (candidates.roots.length === 0) return deleted(candidates, []);
    const ops = pruneOps(candidates, options.endedBefore);
    let changes: number[][];
    try {
      changes = this.#writer
        ? await this.#writer.count(ops)
        : db.transaction(() => runInline(retention, ops)).immediate();
    } catch (error) {
      throw storeFailed('prune failed, nothing was deleted', error);
    }
    return deleted(candidates, changes);
  }

  getCommand(id: number): Promise<CommandRecord | null> {
    return settle(() => {
      const row = this.#read((q) => q.getCommand.get(id));
      return row === undefined ? null : parseOrThrow(parseCommandRow, row);
    });
  }

  getCommandByKey(idempotencyKey: string): Promise<CommandRecord | null> {
    return settle(() => {
      const row = this.#read((q) => q.getCommandByKey.get(idempotencyKey));
      return row === undefined ? null : parseOrThrow(parseCommandRow, row);
    });
  }

  listCommands(query: CommandQuery = {}): Promise<CommandPage> {
    return settle(() => {
      const limit = query.limit ?? DEFAULT_LIST_LIMIT;
      if (!Number.isSafeInteger(limit) || limit < 1) {
        throw new CocoError(
          ErrorCode.InvalidOptions,
          `listCommands: limit must be a positive integer, not ${limit}`,
        );
      }
      const { sql, params } = listCommandsQuery({
        ...query,
        limit: Math.min(limit, MAX_LIST_LIMIT),
      });
      const rows = this.#read(() => {
        let stmt = this.#listCache.get(sql);
        if (stmt === undefined) {
          if (this.#listCache.size >= LIST_CACHE_MAX) this.#listCache.clear();
          stmt = this.#ready().db.prepare<unknown[], unknown>(sql).raw(true);
          this.#listCache.set(sql, stmt);
        }
        return stmt.all(params);
      });
      return commandPage(rows, Math.min(limit, MAX_LIST_LIMIT));
    });
  }

  getTasks(commandId: number): Promise<TaskRecord[]> {
    return settle(() =>
      this.#read((q) => q.getTasks.all(commandId)).map((row) => parseOrThrow(parseTaskRow, row)),
    );
  }

  getStatusHistory(commandId: number): Promise<StatusChange[]> {
    return settle(() =>
      statusHistory(
        this.#read((q) => q.getStatusHistory.all({ id: commandId })),
        commandId,
      ),
    );
  }

  getUndo(commandId: number): Promise<UndoRecord[]> {
    return settle(() =>
      this.#read((q) => q.getUndo.all(commandId)).map((row) => parseOrThrow(parseUndoRow, row)),
    );
  }

  getEntity(kind: string, id: string): Promise<EntityRecord | null> {
    return settle(() => {
      const row = this.#read((q) => q.getEntity.get(kind, id));
      return row === undefined ? null : parseOrThrow(parseEntityRow, row);
    });
  }

  saveAgent(record: AgentRecord): Promise<void> {
    return this.saveAgents([record]);
  }

  /**
   * {@inheritDoc Store.saveAgents}
   *
   * In the writer thread when the store has one (a counted write: in turn with the batches, but
   * not part of their chain), else inline in one transaction.
   */
  async saveAgents(records: readonly AgentRecord[]): Promise<void> {
    const rows = agentRows(records);
    if (rows.length === 0) return;
    const what = () =>
      rows.length === 1
        ? `cannot save agent ${String(rows[0]?.[0])}`
        : `cannot save ${rows.length} agents`;
    const { db } = await settle(() => this.#ready());
    const writer = this.#writer;
    if (writer) {
      try {
        await writer.count([['saveAgent', rows, false]]);
      } catch (error) {
        throw error instanceof CocoError ? error : storeFailed(what(), error);
      }
      return;
    }
    try {
      saveAgents(db, rows);
    } catch (error) {
      throw storeFailed(what(), error);
    }
  }

  /** {@inheritDoc Store.deleteAgent} In the writer thread when the store has one, as saves are. */
  async deleteAgent(id: string): Promise<boolean> {
    const { db } = await settle(() => this.#ready());
    const writer = this.#writer;
    try {
      if (writer) return ((await writer.count([['deleteAgent', [[id]], false]]))[0]?.[0] ?? 0) > 0;
      return deleteAgent(db, id);
    } catch (error) {
      throw error instanceof CocoError ? error : storeFailed(`cannot delete agent ${id}`, error);
    }
  }

  /** {@inheritDoc Store.holdTrees} In the writer thread when the store has one, as agents' rows are. */
  async holdTrees(_nodeId: string, trees: readonly HoldRequest[], at: number): Promise<void> {
    const rows = holdRows(trees, at);
    if (rows.length === 0) return;
    const { db } = await settle(() => this.#ready());
    const writer = this.#writer;
    try {
      if (writer) await writer.count([['holdTree', rows, false]]);
      else holdInline(db, rows);
    } catch (error) {
      throw error instanceof CocoError ? error : storeFailed('cannot mark trees held', error);
    }
  }

  /** {@inheritDoc Store.releaseTree} In the writer thread when the store has one. */
  async releaseTree(rootId: number): Promise<boolean> {
    const { db } = await settle(() => this.#ready());
    const writer = this.#writer;
    try {
      if (writer)
        return ((await writer.count([['releaseTree', [[rootId]], false]]))[0]?.[0] ?? 0) > 0;
      return releaseInline(db, rootId);
    } catch (error) {
      throw error instanceof CocoError
        ? error
        : storeFailed(`cannot release tree ${rootId}`, error);
    }
  }

  /** {@inheritDoc Store.heldTrees} */
  heldTrees(): Promise<HeldTree[]> {
    return settle(() => {
      const { db } = this.#ready();
      try {
        return heldTrees(db.prepare(LIST_HELD).raw(true).all());
      } catch (error) {
        throw storeFailed('cannot list held trees', error);
      }
    });
  }

  /** {@inheritDoc Store.pauseType} In the writer thread when the store has one. */
  async pauseType(pause: PausedType): Promise<PausedType> {
    await this.#pauseWrite('pauseType', pauseRow(pause), `cannot pause type ${pause.type}`);
    return (await this.#paused(pause.type)) ?? pause;
  }

  /** {@inheritDoc Store.resumeType} In the writer thread when the store has one. */
  async resumeType(type: string): Promise<PausedType | null> {
    const pause = await this.#paused(type);
    if (!pause) return null;
    const n = await this.#pauseWrite('resumeType', [type], `cannot resume type ${type}`);
    return n > 0 ? pause : null;
  }

  /** {@inheritDoc Store.pausedTypes} */
  pausedTypes(): Promise<PausedType[]> {
    return settle(() => {
      const { db } = this.#ready();
      try {
        return pausedTypes(db.prepare(LIST_PAUSED).raw(true).all());
      } catch (error) {
        throw storeFailed('cannot list paused types', error);
      }
    });
  }

  /** {@inheritDoc Store.linkRerun} In the writer thread when the store has one. */
  async linkRerun(rootId: number, rerunOf: number, at: number): Promise<void> {
    const values = linkRow(rootId, rerunOf, at);
    const { db } = await settle(() => this.#ready());
    const writer = this.#writer;
    try {
      if (writer) await writer.count([['linkRerun', [values], false]]);
      else linkInline(db, values);
    } catch (error) {
      throw error instanceof CocoError
        ? error
        : storeFailed(`cannot link rerun ${rootId} to ${rerunOf}`, error);
    }
  }

  /** {@inheritDoc Store.rerunLinks} */
  rerunLinks(id: number): Promise<RerunLinks> {
    return settle(() => {
      const { db } = this.#ready();
      try {
        return readLinks(db, id);
      } catch (error) {
        throw storeFailed(`cannot read the reruns of ${id}`, error);
      }
    });
  }

  #paused(type: string): Promise<PausedType | null> {
    return settle(() => {
      const { db } = this.#ready();
      try {
        return pausedTypes(db.prepare(GET_PAUSED).raw(true).all(type))[0] ?? null;
      } catch (error) {
        throw storeFailed(`cannot read the pause of type ${type}`, error);
      }
    });
  }

  async #pauseWrite(
    write: keyof typeof PAUSE_WRITES,
    values: unknown[],
    what: string,
  ): Promise<number> {
    const { db } = await settle(() => this.#ready());
    const writer = this.#writer;
    try {
      if (writer) return (await writer.count([[write, [values], false]]))[0]?.[0] ?? 0;
      return pauseWriteInline(db, write, values);
    } catch (error) {
      throw error instanceof CocoError ? error : storeFailed(what, error);
    }
  }

  listAgents(): Promise<AgentRecord[]> {
    return settle(() => {
      const { db } = this.#ready();
      try {
        return listAgents(db);
      } catch (error) {
        throw storeFailed('cannot list agents', error);
      }
    });
  }

  /** Runs a read, mapping driver errors to `STORE_FAILED`. */
  #read<T>(fn: (q: Statements) => T, what = 'read'): T {
    const { q } = this.#ready();
    try {
      return fn(q);
    } catch (error) {
      throw storeFailed(`${what} failed`, error);
    }
  }

  /**
   * Releases this instance's ownership and closes the file, once the batches already called are
   * written. Once `options.signal` aborts, the writer thread is not waited for: it is terminated
   * (what it was writing rolls back) and the batches still queued fail.
   */
  async close(nodeId?: string, options: CloseOptions = {}): Promise<void> {
    this.#reader?.close();
    this.#reader = null;
    const writer = this.#writer;
    this.#writer = null;
    await writer?.close(options.signal);
    return settle(() => {
      if (this.#closed) return;
      const state = this.#state;
      const node = this.#ownerNode;
      try {
        // Only this instance's ownership is released, and only for the node it was opened for.
        if (
          state !== undefined &&
          node !== undefined &&
          (nodeId === undefined || nodeId === node)
        ) {
          state.q.releaseOwner.run(node, process.pid, this.#host);
        }
      } catch (error) {
        throw storeFailed('cannot release ownership', error);
      } finally {
        if (state !== undefined && node !== undefined) ownedInProcess.delete(state.storeId);
        this.#ownerNode = undefined;
        this.#closed = true;
        this.#state = undefined;
        this.#listCache.clear();
        this.#db?.close();
        this.#db = undefined;
      }
    });
  }
}

/** Creates a SQLite store. Nothing is opened until the first call. */
export function sqliteStore(options: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(options);
}
