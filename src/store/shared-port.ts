/**
 * The shared-store port: what a store that many coordinator nodes share (PostgreSQL) adds to
 * the {@link Store} port — node and agent leases, claims of orphaned trees, task reports relayed
 * between nodes, cancel requests and signals — with the records these carry. Everything here is
 * re-exported by `port.ts`, so importing the port from there keeps working.
 *
 * @module
 */
import type { ErrorInfo } from '../core/errors.js';
import type { CommandRecord } from '../core/records.js';
import type { ActiveSnapshot, Store } from './port.js';

/** A command type and the newest parameter version this code knows of it. */
export interface KnownType {
  readonly type: string;
  readonly version: number;
}

/** A task by its command and position. */
export interface TaskKey {
  readonly commandId: number;
  readonly ordinal: number;
}

/** A task of a command owned by another node, running on an agent this node polls. */
export interface ForeignTask {
  readonly commandId: number;
  readonly ordinal: number;
  readonly agentId: string;
  /** The node that owns the task's command. */
  readonly owner: string;
}

/**
 * What the node polling an agent learned about a task of another node's command: relayed
 * through the store to the command's owner ({@link SharedStore.postReports}).
 * `unknown` means the agent does not know the task (the owner applies its vanish grace).
 */
export interface TaskReportRecord {
  readonly commandId: number;
  readonly ordinal: number;
  readonly status: 'running' | 'succeeded' | 'failed' | 'cancelled' | 'unknown';
  readonly result: unknown;
  readonly error: ErrorInfo | null;
  /** 0..1, when the agent reported progress. */
  readonly progress: number | null;
  readonly at: number;
}

/** Which report {@link SharedStore.dropReports} deletes: a task's, or only as it was read. */
export interface ReportKey {
  readonly commandId: number;
  readonly ordinal: number;
  readonly at?: number;
  readonly status?: TaskReportRecord['status'];
}

/**
 * What wakes a node of a {@link SharedStore}: commands without a live owner, reports for it,
 * cancel requests for its commands, admissions (slots granted to its queued tasks, or a queue
 * or slot change on an agent whose lease it holds), or a command type paused or resumed.
 */
export type StoreSignal = 'orphans' | 'reports' | 'cancels' | 'admissions' | 'pauses';

/** The limits of one agent, as its lease holder admits by them ({@link SharedStore.admitQueued}). */
export interface SlotLimits {
  /** Tasks holding a slot at once, at most (null: only per-verb limits). */
  readonly maxRunning: number | null;
  /** Per verb, at most. */
  readonly byVerb: Readonly<Record<string, number>>;
  /** The ageing step of the order (`createdAt − priority × ageStepMs`). */
  readonly ageStepMs: number;
}

/** A task granted a slot of its agent ({@link SharedStore.admitQueued}). */
export interface SlotGrant {
  readonly commandId: number;
  readonly ordinal: number;
  /** The node owning the task's command (it was signalled), or null for an orphan. */
  readonly owner: string | null;
}

/** Where a queued task stands in its agent's cluster-wide queue ({@link SharedStore.queueAhead}). */
export interface ClusterQueuePosition {
  readonly commandId: number;
  readonly ordinal: number;
  readonly agentId: string;
  readonly verb: string;
  /** Queued tasks of any node on the agent, without a slot, ranked before it. */
  readonly ahead: number;
  /** Slots held on the agent, and by its verb there. */
  readonly held: number;
  readonly verbHeld: number;
}

/** A task that holds a slot of its agent ({@link SharedStore.holdSlots}). */
export interface SlotHolder {
  readonly commandId: number;
  readonly ordinal: number;
  readonly agentId: string;
  readonly verb: string;
}

/**
 * A store that many coordinator nodes share (PostgreSQL). On top of {@link Store}:
 *
 * - **Node leases.** `open(nodeId)` registers the node with a lease (`leaseMs`, measured on the
 *   database's clock) and refuses a node id that is live elsewhere (`STORE_IN_USE`);
 *   `heartbeat` renews it. A node whose lease expired is *fenced* by the first other node that
 *   claims orphans; from then on its `heartbeat` and `apply` reject with `LEASE_LOST`, so a
 *   paused node that wakes up can never write over its successor. `close(nodeId)` fences the
 *   node at once (its work is orphaned for the others to claim).
 * - **Command ownership** is by tree: every command row carries the node that owns its root.
 *   `apply` stamps inserted commands with the opened node; `loadActive` returns only the trees
 *   the opened node owns. `claimOrphans` moves trees whose owner is fenced, gone or null to the
 *   caller (`FOR UPDATE SKIP LOCKED`, so concurrent claimers never take the same tree), but only
 *   trees whose every active command has a type and parameter version the caller knows.
 * - **Agent leases.** Each agent is polled by at most one node at a time: `claimAgents`
 *   renews the caller's leases and takes free or expired ones. The holder polls the tasks of
 *   other nodes on that agent too (`foreignTasks`) and relays what it learns (`postReports`);
 *   the owner reads its reports with `takeReports`. `apply` deletes the report of every task
 *   it ends, and of every command it settles.
 * - **Admission across nodes.** The holder of a limited agent's lease grants slots of its limit
 *   to the queued tasks of every node (`admitQueued`, counted from the slot rows under a lock of
 *   the lease row); owners take their grants (`takeGrants`) and release the slots when the
 *   agent is done with the tasks (`releaseSlots`).
 * - **Signals.** `listen` calls back (LISTEN/NOTIFY) when trees are orphaned (a node closed or
 *   was fenced), reports arrive for the listener's commands, cancels are asked, admissions
 *   change, or a type is paused or resumed. Signals are hints: nodes poll too.
 */
export interface SharedStore extends Store {
  readonly shared: true;
  /** Length of a node's lease and of an agent lease, in ms. */
  readonly leaseMs: number;
  /**
   * Fences every node whose lease has expired, then gives the caller up to `limit` trees without
   * a live owner (oldest root first) whose active commands all have a (type, version) in `known`
   * (a version at or below the known one). Returns their root ids. Rejects with `LEASE_LOST` if
   * the caller's own lease is not live.
   */
  claimOrphans(nodeId: string, known: readonly KnownType[], limit: number): Promise<number[]>;
  /** The active snapshot restricted to these trees (by root id), as {@link Store.loadActive}. */
  loadRoots(rootIds: readonly number[]): Promise<ActiveSnapshot>;
  /**
   * Renews the caller's leases on these agents and takes those that are free, expired or held by
   * a fenced node. Returns the ids the caller holds afterwards (a subset of `agentIds`).
   * Leases on agents not listed are left as they are.
   */
  claimAgents(nodeId: string, agentIds: readonly string[]): Promise<string[]>;
  /** Gives up the caller's leases on these agents (all of them if omitted). */
  releaseAgents(nodeId: string, agentIds?: readonly string[]): Promise<void>;
  /**
   * Tasks not ended (`created` or `running`) on these agents whose command another node owns.
   * `created` ones are included: their owner may have started them and deferred writing
   * `running` (Committer.taskStarted).
   */
  foreignTasks(nodeId: string, agentIds: readonly string[]): Promise<ForeignTask[]>;
  /**
   * Of these tasks (found on agents; unknown to the caller's memory), those to stop and clear:
   * without a row, or ended tasks of commands whose owner is done with them (ended, tasks taken
   * for cleared, not being compensated). One query however many keys.
   */
  strangerTasks(keys: readonly TaskKey[]): Promise<TaskKey[]>;
  /** Stores reports (replacing an earlier one for the same task) and signals their owners. */
  postReports(reports: readonly TaskReportRecord[]): Promise<void>;
  /** Reports for tasks of commands the caller owns, oldest first. Does not delete them. */
  takeReports(nodeId: string, limit: number): Promise<TaskReportRecord[]>;
  /**
   * Deletes reports the caller has no use for (its task had already ended, or the report was
   * applied). A key with `at` and `status` deletes the report only as it was read: one the
   * polling node has replaced since (a newer report of the same task) is kept.
   */
  dropReports(keys: readonly ReportKey[]): Promise<void>;
  /**
   * Optional: stores a root command that has an idempotency key, alone, before its tree runs —
   * unless a command already holds the key: then stores nothing, without an error, and resolves
   * false (the caller looks the key up; a try whose answer was lost left this very row, found
   * under the key with the caller's id). Rejects with `LEASE_LOST` if the caller's node is fenced.
   * Two nodes given one key at once thus make one command, and no batch of either ever meets the
   * other's key. Without it, a keyed root goes in a batch, and the second of two such batches is
   * refused (`IDEMPOTENCY_KEY_TAKEN`): its engine halts.
   */
  insertKeyedRoot?(nodeId: string, root: CommandRecord): Promise<boolean>;
  /**
   * Asks the node owning a running (pending or waiting) command to cancel it, and signals that
   * node. Resolves with the owner, or null when the command does not exist or is not running.
   */
  requestCancel(commandId: number): Promise<{ owner: string | null } | null>;
  /** Ids of commands the caller owns that someone asked to cancel, oldest request first. */
  takeCancels(nodeId: string, limit: number): Promise<number[]>;
  /** Deletes cancel requests once carried out (or found moot). */
  dropCancels(commandIds: readonly number[]): Promise<void>;
  // -- admission across nodes (engine/shared-admission.ts; table admission_slots) --
  /**
   * The admission of an agent by the holder of its lease: in one transaction that locks the
   * agent's lease row (so no other node can take the lease until it commits), only if the caller
   * holds a live lease, counts the slots held on the agent (dropping those of commands gone or
   * inactive), and grants free slots to the agent's queued tasks without one, best first by
   * `createdAt − priority × ageStepMs`, root id, command id, ordinal (skipping per-verb limits
   * that are full, and tasks a writer has locked), signalling their owners (`admissions`).
   * Resolves with the grants, or null when the caller does not hold the agent's lease.
   *
   * `limits` may be a function, read once the agent's slots are counted (null: grant nothing):
   * the caller's limits as they are then, not as they were when the call left — else a limit
   * lowered while the statement was on its way, with a slot freed after the lowering (a task
   * ended), would be exceeded once by a grant counting the freed slot against the old limit.
   */
  admitQueued(
    nodeId: string,
    agentId: string,
    limits: SlotLimits | (() => SlotLimits | null),
  ): Promise<SlotGrant[] | null>;
  /** Tasks of the caller's commands still `queued` in the store that were granted a slot. */
  takeGrants(nodeId: string, limit: number): Promise<TaskKey[]>;
  /** Records that these tasks hold a slot (restart, takeover, a limit set at run time). */
  holdSlots(holders: readonly SlotHolder[]): Promise<void>;
  /** Frees the slots of these tasks (their agent is done with them), signalling the holders. */
  releaseSlots(keys: readonly TaskKey[]): Promise<void>;
  /**
   * Where these tasks stand, cluster-wide, among their agents' queued tasks not yet granted
   * (same order as {@link admitQueued}); only tasks still queued without a grant are answered.
   */
  queueAhead(keys: readonly TaskKey[], ageStepMs: number): Promise<ClusterQueuePosition[]>;
  /** Signals the lease holders of these agents that tasks were queued for them. */
  queueChanged(agentIds: readonly string[]): Promise<void>;
  /** Calls `onSignal` on every signal for this node; resolves with an unsubscribe function. */
  listen(nodeId: string, onSignal: (signal: StoreSignal) => void): Promise<() => Promise<void>>;
}

/** Whether a store is shared by many nodes. */
export function isSharedStore(store: Store): store is SharedStore {
  return (store as Partial<SharedStore>).shared === true;
}
