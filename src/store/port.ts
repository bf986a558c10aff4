/**
 * The store port, in the engine's terms. The engine keeps its live state in memory and hands
 * the store ordered batches of changes ({@link ChangeBatch}); each batch is applied atomically,
 * and batches are applied one after another, so the store always holds a consistent prefix of
 * the engine's history. Every store (SQLite, PostgreSQL) passes the same conformance suite.
 *
 * What a store shared by many nodes adds ({@link SharedStore}) is declared in `shared-port.ts`
 * and re-exported here, so the whole port is imported from this module.
 *
 * @module
 */
import type { ChildMode, FailurePolicy, Json } from '../core/command-type.js';
import type { ErrorInfo } from '../core/errors.js';
import type { CommandStatus, CompensationStatus, TaskStatus, UndoStatus } from '../core/states.js';

export { isSharedStore } from './shared-port.js';
export type {
  ForeignTask,
  KnownType,
  ReportKey,
  SharedStore,
  StoreSignal,
  TaskKey,
  TaskReportRecord,
} from './shared-port.js';

/** A command row. */
export interface CommandRecord {
  readonly id: number;
  readonly type: string;
  /** Version of `params` as stored. */
  readonly paramsVersion: number;
  /** Parameters as submitted (JSON). */
  readonly params: unknown;
  readonly status: CommandStatus;
  readonly parentId: number | null;
  readonly rootId: number;
  /** Position in the parent's journal (children and undo steps share it); null for roots. */
  readonly seq: number | null;
  /** Stage of the parent that created this child; null for roots. */
  readonly originStage: number | null;
  readonly childMode: ChildMode;
  readonly failurePolicy: FailurePolicy;
  /** Declared number of tasks (work tasks; undo tasks do not count). */
  readonly expectedTasks: number;
  readonly expectedChildren: number;
  /** Tasks created so far (work and undo), children created, undo steps recorded. */
  readonly taskCount: number;
  readonly childCount: number;
  readonly undoCount: number;
  /** Next journal position. */
  readonly journalSeq: number;
  /** Current (or last) stage: 0 is `execute`, k is the k-th `next`. */
  readonly stage: number;
  /** The current stage's handler has completed. */
  readonly stageDone: boolean;
  /** Serial commands: a stage created no work, so no further stage runs. */
  readonly chainDone: boolean;
  readonly cancelRequested: boolean;
  /** The failure being handled (while aborting or compensating) or that ended the command. */
  readonly error: ErrorInfo | null;
  readonly result: unknown;
  readonly compensation: CompensationStatus;
  readonly compensationError: ErrorInfo | null;
  /** Per-command scratch state. */
  readonly data: unknown;
  /** Failed attempts of the handler currently due. */
  readonly attempts: number;
  readonly nextAttemptAt: number | null;
  readonly lastError: ErrorInfo | null;
  /** End of the command's lifetime, if it has one. */
  readonly deadlineAt: number | null;
  readonly idempotencyKey: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly endedAt: number | null;
  /**
   * The command has ended and each of its tasks was cleared on its agent — or, written by an
   * engine alone on its store, is left to be cleared (a crash before the clear leaves the task
   * to the reconciliation of the next start). Either way the engine is done with its tasks.
   */
  readonly tasksCleared: boolean;
  /** Owning node and lease expiry (multi-node stores; unused on SQLite). */
  readonly owner: string | null;
  readonly leaseUntil: number | null;
}

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
>;

/** A task row. The task's id on its agent is derived: see {@link agentTaskId}. */
export interface TaskRecord {
  readonly commandId: number;
  /** Position among the command's tasks, from 0. */
  readonly ordinal: number;
  /** Stage that created it (>= 0), or `-1 - undoOrdinal` for a task run by an undo step. */
  readonly origin: number;
  readonly agentId: string;
  readonly verb: string;
  readonly args: unknown;
  readonly status: TaskStatus;
  readonly result: unknown;
  readonly error: ErrorInfo | null;
  readonly deadlineAt: number | null;
  /** A stop was decided (cancel, fail-fast, deadline); resent after a restart until it ends. */
  readonly stopRequested: boolean;
  readonly createdAt: number;
  readonly endedAt: number | null;
}

/** The mutable part of a task row. */
export type TaskUpdate = Pick<
  TaskRecord,
  'commandId' | 'ordinal' | 'status' | 'result' | 'error' | 'stopRequested' | 'endedAt'
>;

/** An undo step row. */
export interface UndoRecord {
  readonly commandId: number;
  /** Position among the command's undo steps, from 0. */
  readonly ordinal: number;
  /** Position in the command's journal (shared with children): compensation runs by descending seq. */
  readonly seq: number;
  readonly stage: number;
  readonly name: string;
  readonly data: Json | null;
  readonly status: UndoStatus;
  readonly error: ErrorInfo | null;
}

/** The mutable part of an undo row. */
export type UndoUpdate = Pick<UndoRecord, 'commandId' | 'ordinal' | 'status' | 'error'>;

/** An application record written by handlers ({@link EntityAccess}). `value: null` deletes. */
export interface EntityWrite {
  readonly kind: string;
  readonly id: string;
  readonly value: Json | null;
  readonly commandId: number;
  readonly at: number;
}

/** A stored application record. */
export interface EntityRecord {
  readonly kind: string;
  readonly id: string;
  readonly value: Json;
  readonly commandId: number;
  readonly updatedAt: number;
}

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

/** A row the store could not parse; reported, never thrown, so one bad row cannot stop a load. */
export interface CorruptRow {
  readonly table: 'commands' | 'tasks' | 'undo';
  /** The command the row belongs to, when it could be read. */
  readonly commandId: number | null;
  readonly error: ErrorInfo;
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
  /** @default 100 */
  readonly limit?: number;
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

/** An agent as the engine last saw it. */
export interface AgentRecord {
  readonly id: string;
  /** Where it is reached (a URL), if known. */
  readonly address: string | null;
  readonly state: 'up' | 'down';
  /** Its process's boot id; a new one means it restarted. */
  readonly bootId: string | null;
  /** When it last answered. */
  readonly lastSeenAt: number | null;
  /** Why it is down. */
  readonly lastError: ErrorInfo | null;
  readonly updatedAt: number;
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
 * - rows that cannot be parsed are reported in {@link ActiveSnapshot.corrupt}, never thrown.
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
  getCommand(id: number): Promise<CommandRecord | null>;
  getCommandByKey(idempotencyKey: string): Promise<CommandRecord | null>;
  listCommands(query?: CommandQuery): Promise<CommandRecord[]>;
  getTasks(commandId: number): Promise<TaskRecord[]>;
  getUndo(commandId: number): Promise<UndoRecord[]>;
  getEntity(kind: string, id: string): Promise<EntityRecord | null>;
  /** Saves what the engine knows of an agent (insert or replace). */
  saveAgent(record: AgentRecord): Promise<void>;
  /** Every agent the engine has seen, by id. */
  listAgents(): Promise<AgentRecord[]>;
  /** Releases this node's ownership and closes connections. Idempotent; later calls reject. */
  close(nodeId?: string): Promise<void>;
}

/** The id under which a task is known on its agent: `<storeId>-<commandId>-<ordinal>`. */
export function agentTaskId(storeId: string, commandId: number, ordinal: number): string {
  return `${storeId}-${commandId}-${ordinal}`;
}

/** Parses an agent task id of this store; null if it is not ours. */
export function parseAgentTaskId(
  storeId: string,
  taskId: string,
): { commandId: number; ordinal: number } | null {
  const prefix = `${storeId}-`;
  if (!taskId.startsWith(prefix)) return null;
  const m = /^(\d+)-(\d+)$/.exec(taskId.slice(prefix.length));
  if (!m) return null;
  return { commandId: Number(m[1]), ordinal: Number(m[2]) };
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
