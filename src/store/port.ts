/**
 * The store port, in the engine's terms. The engine keeps its live state in memory and hands
 * the store ordered batches of changes ({@link ChangeBatch}); each batch is applied atomically,
 * and batches are applied one after another, so the store always holds a consistent prefix of
 * the engine's history. Every store (SQLite, PostgreSQL) passes the same conformance suite.
 *
 * The records it stores (commands, tasks, undo steps, entities, agents) are the domain's, in
 * `core/records.ts`; what a store shared by many nodes adds ({@link SharedStore}) is declared in
 * `shared-port.ts`.
 *
 * @module
 */
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { CommandStatus } from '../core/states.js';
import type {
  AgentRecord,
  CommandRecord,
  EntityRecord,
  EntityWrite,
  TaskRecord,
  UndoRecord,
} from '../core/records.js';

/** The mutable part of a command row, written on update. */
export type CommandUpdate = Omit<
  CommandRecord,
  | 'type'
  | 'paramsVersion'
  | 'params'
  | 'parentId'
  | 'rootId'
  | 'seq'
  | 'originStage'
  | 'childMode'
  | 'failurePolicy'
  | 'idempotencyKey'
  | 'createdAt'
  | 'traceContext'
> & {
  /**
   * Set by the engine when the command's row, as the batches before this one leave it, differs
   * from this update in its bookkeeping and `updatedAt` only — its `status`, `compensation`,
   * `error`, `result`, `endedAt`, `tasksCleared`, `owner` and `leaseUntil` are already these
   * (a chain's parent moving to its next stage) — and this batch holds no other update of it.
   * A store may then write only what changed (SQLite: the `state` text and `updated_at`, with
   * no transition check to run). Ignoring it (writing the whole update) is always correct.
   */
  readonly stateOnly?: boolean;
};

/** The mutable part of a task row. */
export type TaskUpdate = Pick<
  TaskRecord,
  | 'commandId'
  | 'ordinal'
  | 'status'
  | 'result'
  | 'error'
  | 'stopRequested'
  | 'endedAt'
  | 'deadlineAt'
>;

/** The mutable part of an undo row. */
export type UndoUpdate = Pick<UndoRecord, 'commandId' | 'ordinal' | 'status' | 'error'>;

/**
 * Changes applied atomically, in this order: command, task and undo inserts; command, task and
 * undo updates; settled commands; parameter upgrades; entity writes — each in array order. Updating a row that
 * does not exist fails the whole batch (`STORE_FAILED`).
 */
export interface ChangeBatch {
  readonly commandInserts: readonly CommandRecord[];
  readonly commandUpdates: readonly CommandUpdate[];
  /** Parameters rewritten at the current version after an upgrade on load. */
  readonly paramsUpgrades: readonly {
    readonly id: number;
    readonly paramsVersion: number;
    readonly params: unknown;
  }[];
  readonly taskInserts: readonly TaskRecord[];
  readonly taskUpdates: readonly TaskUpdate[];
  readonly undoInserts: readonly UndoRecord[];
  readonly undoUpdates: readonly UndoUpdate[];
  /**
   * Ended commands whose tasks have all been cleared on their agents (and which are not being
   * compensated): only `tasksCleared` becomes true, so they leave the active set. Applied after
   * the other command updates.
   */
  readonly commandsSettled: readonly number[];
  readonly entityWrites: readonly EntityWrite[];
}

/**
 * A row the store could not parse; reported, never thrown, so one bad row cannot stop a load or
 * a list.
 */
export interface CorruptRow {
  readonly table: 'commands' | 'tasks' | 'undo';
  /** The command the row belongs to, when it could be read. */
  readonly commandId: number | null;
  /**
   * For a `commands` row: its parent's id, when that could be read (null for a root, for other
   * tables, or when unreadable). A command whose child cannot be read is not whole either.
   */
  readonly parentId: number | null;
  readonly error: ErrorInfo;
}

/** A tree to mark held ({@link Store.holdTrees}): its root, and the store's refusal. */
export interface HoldRequest {
  readonly rootId: number;
  readonly error: ErrorInfo;
}

/** A tree of commands marked held: the store refused its changes ({@link Store.holdTrees}). */
export interface HeldTree {
  readonly rootId: number;
  /** The store's latest refusal of the tree's changes. */
  readonly error: ErrorInfo;
  /** How many times its changes were refused (once per mark). */
  readonly refusals: number;
  /** When it was last marked (ms since the epoch, the engine's clock). */
  readonly heldAt: number;
}

/**
 * A command type paused by an operator ({@link Store.pauseType}): its new roots wait, queued,
 * until it is resumed (engine/root-admission.ts).
 */
export interface PausedType {
  /** The type's registered name. */
  readonly type: string;
  /** When it was paused (ms since the epoch, the pausing node's clock). */
  readonly pausedAt: number;
  /** Who paused it (the API caller's name), when known. */
  readonly by: string | null;
  /** Why, in the operator's words. */
  readonly reason: string | null;
}

/** What a root ran again, and what ran it again ({@link Store.rerunLinks}). */
export interface RerunLinks {
  /** The ended root this one ran again (null: it is no rerun). */
  readonly rerunOf: number | null;
  /** The roots that ran this one again, oldest first. */
  readonly reruns: readonly number[];
}

/** Everything the engine needs to resume after a restart. */
export interface ActiveSnapshot {
  /** Commands not ended, ended with tasks not yet cleared, or being compensated. */
  readonly commands: readonly CommandRecord[];
  /** All tasks of those commands (rows of an unreadable command are left out). */
  readonly tasks: readonly TaskRecord[];
  /** All undo steps of those commands. */
  readonly undo: readonly UndoRecord[];
  /** Ended children of those commands (their live siblings are in `commands`). */
  readonly endedChildren: readonly CommandRecord[];
  readonly corrupt: readonly CorruptRow[];
}

/**
 * Takes the rows of the active snapshot one at a time, as {@link Store.streamActive} reads them:
 * the rows {@link Store.loadActive} would return, without the arrays. A restart builds its live
 * commands as the rows come, so no record outlives its row (a million records held at once cost
 * more to collect than to build).
 *
 * Order: a command comes before its tasks, undo steps and ended children; the tasks and the undo
 * steps of one command come in ordinal order. As in a snapshot, the entries of a command whose
 * own row could not be read are left out. The records passed are the sink's to keep.
 */
export interface ActiveRowSink {
  /** An active command (not ended, ended with tasks not yet cleared, or being compensated). */
  command(r: CommandRecord): void;
  task(t: TaskRecord): void;
  undo(u: UndoRecord): void;
  /** An ended child of an active command (its live siblings come through {@link command}). */
  endedChild(r: CommandRecord): void;
  /** A row that could not be read. */
  corrupt(row: CorruptRow): void;
}

/** A status a command was stored with, and when (its `updatedAt` then). */
export interface StatusChange {
  readonly status: CommandStatus;
  readonly at: number;
}

/** Filters for {@link Store.listCommands}. */
export interface CommandQuery {
  readonly status?: readonly CommandStatus[];
  readonly type?: string;
  readonly parentId?: number;
  readonly rootId?: number;
  /** Only roots (no parent). */
  readonly rootsOnly?: boolean;
  /** Keyset pagination: ids below this one (newest first). */
  readonly beforeId?: number;
  /** Created at or after this time (ms since the epoch). */
  readonly createdAfter?: number;
  /** Created strictly before this time. */
  readonly createdBefore?: number;
  /** Ended at or after this time (only ended commands match). */
  readonly endedAfter?: number;
  /** Ended strictly before this time (only ended commands match). */
  readonly endedBefore?: number;
  /** @default 100 */
  readonly limit?: number;
}

/** A page of {@link Store.listCommands}. */
export interface CommandPage {
  /** The matching commands that could be read, newest first. */
  readonly commands: CommandRecord[];
  /** Matching rows that could not be read: left out of `commands`, each named with why. */
  readonly unreadable: CorruptRow[];
  /**
   * The `beforeId` of the next page: the oldest id this page read, or null when fewer rows than
   * the limit matched (this page was the last). Unreadable rows count toward the limit, so page
   * with this rather than with the last command's id.
   */
  readonly nextBeforeId: number | null;
}

/** Where a walk through prunable trees stands: the last root seen, in (ended at, id) order. */
export interface PruneCursor {
  readonly endedAt: number;
  readonly rootId: number;
}

/** What {@link Store.prune} looks at and does. */
export interface PruneOptions {
  /** Trees whose root ended strictly before this time (ms since the epoch, the engine's clock). */
  readonly endedBefore: number;
  /** At most this many trees (a positive integer): one short transaction whatever the store's size. */
  readonly limit: number;
  /** Count what would be deleted, delete nothing. @default false */
  readonly dryRun?: boolean;
  /** Only trees after this one in (ended at, root id) order; omitted or null: from the oldest. */
  readonly after?: PruneCursor | null;
}

/** What one {@link Store.prune} call deleted (or, dry, would delete). */
export interface PruneBatch {
  /** Root ids of the trees deleted (or that would be), ascending. */
  readonly rootIds: readonly number[];
  /** Trees, and their rows, deleted. */
  readonly trees: number;
  readonly commands: number;
  readonly tasks: number;
  readonly undo: number;
  /** Whether prunable trees remain after {@link PruneBatch.next} (call again from there). */
  readonly more: boolean;
  /** The cursor of the next call: the last tree this call looked at; null when none. */
  readonly next: PruneCursor | null;
}

/** Identity of a store, fixed when it is first migrated. */
export interface StoreIdentity {
  /** Random id of this store; the prefix of task ids on agents, so that tasks of ours are recognised. */
  readonly storeId: string;
}

/** Who holds a single-writer store (the `details.owner` of a `STORE_IN_USE` error). */
export interface OwnerInfo {
  readonly nodeId: string;
  readonly pid: number;
  readonly host: string;
  readonly heartbeatAt: number;
  readonly since: number;
}

/** Outcome of {@link Store.migrate}. */
export interface MigrationReport {
  readonly applied: readonly number[];
  readonly current: number;
}

/**
 * The store port.
 *
 * Guarantees every implementation keeps (checked by the conformance suite):
 * - `apply` is atomic and durable when its promise resolves. Calls may overlap (the engine
 *   pipelines batches): they are applied in call order, and once one fails, the calls made
 *   before that failure was reported fail too without applying anything.
 * - reads see every batch whose `apply` has resolved.
 * - rows that cannot be parsed are reported in {@link ActiveSnapshot.corrupt} and
 *   {@link CommandPage.unreadable}, never thrown by `loadActive` and `listCommands` (the reads
 *   of one record, `get*`, throw `CORRUPT_ROW` naming the row).
 * - command, compensation, task and undo statuses only move along the transition tables
 *   of `core/states.ts` (`ILLEGAL_TRANSITION` otherwise).
 * - `listCommands`: an empty status list matches nothing; limits above 1000 are capped.
 */
export interface Store {
  /** `sqlite` or `postgres`. */
  readonly dialect: string;
  /** Applies pending migrations (serialised against concurrent migrators). */
  migrate(): Promise<MigrationReport>;
  /** Migrates, then takes ownership for a node (single-writer stores refuse a second live owner). */
  open(nodeId: string): Promise<StoreIdentity>;
  /** Renews this node's ownership; rejects with `STORE_IN_USE` once another node took it over. */
  heartbeat(nodeId: string): Promise<void>;
  /**
   * Reserves `count` consecutive command ids and returns the first. Ids reserved but never
   * committed may be handed out again after a reopen.
   */
  reserveIds(count: number): Promise<number>;
  /** Applies a batch atomically. */
  apply(batch: ChangeBatch): Promise<void>;
  /** Loads everything the engine must resume. */
  loadActive(): Promise<ActiveSnapshot>;
  /**
   * Hands the rows of {@link loadActive} to `sink` as they are read (one read transaction);
   * resolves once the last was handed over. Optional: the engine reads a store without it
   * through `loadActive`.
   */
  streamActive?(sink: ActiveRowSink): Promise<void>;
  getCommand(id: number): Promise<CommandRecord | null>;
  getCommandByKey(idempotencyKey: string): Promise<CommandRecord | null>;
  /** Commands matching a query, newest first; rows that cannot be read are reported, not thrown. */
  listCommands(query?: CommandQuery): Promise<CommandPage>;
  getTasks(commandId: number): Promise<TaskRecord[]>;
  /**
   * The statuses a command was stored with, oldest first (one per status: statuses passed
   * through within one batch are not seen). Optional: a store without it shows none.
   */
  getStatusHistory?(commandId: number): Promise<StatusChange[]>;
  getUndo(commandId: number): Promise<UndoRecord[]>;
  getEntity(kind: string, id: string): Promise<EntityRecord | null>;
  /**
   * Retention: deletes whole trees that have ended — the root ended before `endedBefore` and no
   * command of the tree is active (every one ended, its tasks cleared, none being compensated) —
   * with their tasks and undo steps, oldest root first, at most `limit` trees in one short
   * transaction. Nothing else is touched: entities, agents, and every row of a tree with an
   * active command stay. A tree is deleted whole or not at all; one a concurrent writer holds
   * (shared stores) is passed over for a later call. `dryRun` counts and deletes nothing.
   * Like `apply`, it writes: on a single-writer store, call it on the instance the engine opened.
   */
  prune(options: PruneOptions): Promise<PruneBatch>;
  /** Saves what the engine knows of an agent (insert or replace); see {@link Store.saveAgents}. */
  saveAgent(record: AgentRecord): Promise<void>;
  /**
   * Saves what the engine knows of many agents (insert or replace each) in one transaction: all
   * rows or none. Of several records of one id the last wins. Off the engine's event loop where
   * the store can (SQLite: its writer thread; PostgreSQL: one statement). The engine coalesces
   * agents' news (the latest state of each agent) and keeps one such write in flight, so 10,000
   * agents coming up cost a few transactions, not one each.
   */
  saveAgents(records: readonly AgentRecord[]): Promise<void>;
  /** Every agent the engine has seen, by id. */
  listAgents(): Promise<AgentRecord[]>;
  /**
   * Deletes an agent's row (an agent taken out of service: see `Engine.forgetAgent`); whether
   * there was one. Its tasks' rows are not touched: a row saved again later brings it back.
   */
  deleteAgent(id: string): Promise<boolean>;
  /**
   * Marks trees of commands held: the store refused their changes on every try (see
   * engine/committer.ts). A tree already marked counts one refusal more and keeps the latest
   * error; a tree whose root row is not stored is not marked (nothing of it was stored). Off the
   * batch path: one short transaction. A shared store marks nothing for a node that no longer
   * holds its lease (`LEASE_LOST`: its trees are another node's now).
   */
  holdTrees(nodeId: string, trees: readonly HoldRequest[], at: number): Promise<void>;
  /**
   * The trees marked held ({@link Store.holdTrees}), by root id; retention deletes a mark with its
   * tree.
   */
  heldTrees(): Promise<HeldTree[]>;
  /** Deletes a tree's held mark (an operator's release: `Engine.release`); whether there was one. */
  releaseTree(rootId: number): Promise<boolean>;
  /**
   * Pauses a command type for every node of the store (see {@link PausedType}). A type already
   * paused keeps its first pause. Resolves with the pause in force. A shared store signals every
   * node (`pauses`).
   */
  pauseType(pause: PausedType): Promise<PausedType>;
  /**
   * Resumes a paused command type: the pause it ended, or null when the type was not paused. A
   * shared store signals every node (`pauses`).
   */
  resumeType(type: string): Promise<PausedType | null>;
  /** The paused command types, by name. */
  pausedTypes(): Promise<PausedType[]>;
  /**
   * Links a rerun's root to the ended root it ran again (see {@link RerunLinks}); a root linked
   * already keeps its first link, and a root that is not stored is not linked. One short
   * transaction, off the batch path. Retention deletes the link with the rerun's tree.
   */
  linkRerun(rootId: number, rerunOf: number, at: number): Promise<void>;
  /** What root `id` ran again, and the roots that ran it again. */
  rerunLinks(id: number): Promise<RerunLinks>;
  /**
   * The store's connection pool now, for metrics. Optional: a store without a pool (SQLite: one
   * connection and its writer thread) has none.
   */
  connections?(): PoolFigures;
  /**
   * Releases this node's ownership and closes connections, once the batches already called are
   * applied. Idempotent; later calls reject. With `options.signal`, the caller may stop waiting
   * on the database: see {@link CloseOptions}.
   */
  close(nodeId?: string, options?: CloseOptions): Promise<void>;
}

/** A connection pool's state (see {@link Store.connections}). */
export interface PoolFigures {
  /** Connections open: in use or idle. */
  readonly open: number;
  /** Of those, idle in the pool. */
  readonly idle: number;
  /** Calls waiting for a connection (the pool at its size): above 0 for long, it is too small. */
  readonly waiting: number;
  /**
   * Connections the pool has let go of that have not closed yet (ended, waiting for the server's
   * goodbye). A store's own pool only; 0 for a pool given by the caller.
   */
  readonly closing: number;
}

/** How {@link Store.close} may be cut short. */
export interface CloseOptions {
  /**
   * Once aborted (before the call or during it), the store stops waiting on its database and
   * `close` resolves: batches still in flight fail (`STORE_FAILED`) or land unseen, a shared
   * store's node is not retired (others claim its trees once its lease lapses), and the
   * connections of a pool the store created are destroyed rather than ended. What was not stored
   * resumes at the next start, as after a crash. For a database that stopped answering: the
   * engine aborts when `stopTimeoutMs` has passed.
   */
  readonly signal?: AbortSignal;
}

/** An empty batch, to build on. */
export function emptyBatch(): ChangeBatch {
  return {
    commandInserts: [],
    commandUpdates: [],
    paramsUpgrades: [],
    taskInserts: [],
    taskUpdates: [],
    undoInserts: [],
    undoUpdates: [],
    commandsSettled: [],
    entityWrites: [],
  };
}

/** Rows a batch writes: its inserts, updates, settles and entity writes, one each. */
export function batchRows(b: ChangeBatch): number {
  return (
    b.commandInserts.length +
    b.commandUpdates.length +
    b.paramsUpgrades.length +
    b.taskInserts.length +
    b.taskUpdates.length +
    b.undoInserts.length +
    b.undoUpdates.length +
    b.commandsSettled.length +
    b.entityWrites.length
  );
}

/** Largest {@link PruneOptions.limit}: bounds one prune's transaction, whatever is asked. */
export const MAX_PRUNE_LIMIT = 10_000;

/**
 * Checks the options of {@link Store.prune} (every store calls it first): `INVALID_OPTIONS`
 * naming the field that is wrong, before anything is read or written.
 */
export function checkPruneOptions(o: PruneOptions): void {
  const bad = (message: string): CocoError =>
    new CocoError(ErrorCode.InvalidOptions, `prune: ${message}`);
  if (typeof o !== 'object' || o === null) throw bad('options must be an object');
  if (!Number.isSafeInteger(o.endedBefore))
    throw bad(`endedBefore must be a time in ms (an integer), not ${String(o.endedBefore)}`);
  if (!Number.isSafeInteger(o.limit) || o.limit < 1 || o.limit > MAX_PRUNE_LIMIT)
    throw bad(`limit must be an integer from 1 to ${MAX_PRUNE_LIMIT}, not ${String(o.limit)}`);
  if (o.dryRun !== undefined && typeof o.dryRun !== 'boolean')
    throw bad(`dryRun must be a boolean, not ${String(o.dryRun)}`);
  const after = o.after;
  if (
    after != null &&
    (!Number.isSafeInteger(after.endedAt) || !Number.isSafeInteger(after.rootId))
  )
    throw bad('after must be { endedAt, rootId } (integers), as a PruneBatch.next gives it');
}
