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
import type { ErrorInfo } from '../core/errors.js';
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
>;

/** The mutable part of a task row. */
export type TaskUpdate = Pick<
  TaskRecord,
  'commandId' | 'ordinal' | 'status' | 'result' | 'error' | 'stopRequested' | 'endedAt'
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
  getCommand(id: number): Promise<CommandRecord | null>;
  getCommandByKey(idempotencyKey: string): Promise<CommandRecord | null>;
  /** Commands matching a query, newest first; rows that cannot be read are reported, not thrown. */
  listCommands(query?: CommandQuery): Promise<CommandPage>;
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
