/**
 * What a command looks like to an operator (`Engine.inspect`, the API's and dashboard's detail):
 * its stored rows, its status history, and — from this node's memory when it runs the command —
 * where its tasks and root wait for admission and why it is held.
 *
 * @module
 */
import { ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { CommandRecord, TaskRecord, UndoRecord } from '../core/records.js';
import type { CorruptRow, RerunLinks, StatusChange, Store } from '../store/port.js';
import { isSharedStore } from '../store/shared-port.js';
import { queuePosition, type QueuePosition } from './admission.js';
import type { Coordinator } from './coordinator.js';
import type { LiveCommand } from './live.js';
import type { RootQueuePosition } from './root-admission.js';

/** A command with its tasks, undo steps and direct children. */
export interface CommandDetails {
  readonly command: CommandRecord;
  readonly tasks: readonly TaskRecord[];
  readonly undo: readonly UndoRecord[];
  /** Its children that could be read, in creation order. */
  readonly children: readonly CommandRecord[];
  /** Rows of its children that could not be read (left out of `children`), with why. */
  readonly unreadableChildren: readonly CorruptRow[];
  /** The statuses it was stored with, oldest first (empty if the store keeps no history). */
  readonly statusHistory: readonly StatusChange[];
  /**
   * Its tasks waiting `queued` for a slot of their agent, with where they stand (this node's
   * queues: empty for a command another node runs).
   */
  readonly queued: readonly { readonly ordinal: number; readonly position: QueuePosition }[];
  /** Where the command waits, if it is a root waiting for the root limits (else null). */
  readonly rootQueue: RootQueuePosition | null;
  /**
   * Why this engine leaves the command untouched — its rows, type or parameters could not be
   * loaded — or null (it runs it, or another node does). A cancel ends it, unless a row of it
   * cannot be read.
   */
  readonly unloadable: ErrorInfo | null;
  /**
   * Whether it is held because the store refused its tree (`TREE_REFUSED`), so that a release
   * (`Engine.release`) runs the tree on.
   */
  readonly releasable: boolean;
  /** For a root: the ended root it ran again, and the roots that ran it again (reruns). */
  readonly reruns: RerunLinks;
}

/**
 * A command with its tasks, undo steps and children, as stored; with what this node's memory
 * says of it (`coordinator`: where its tasks and root wait, why it is held), when it runs.
 */
export async function inspectCommand(
  store: Store,
  coordinator: Coordinator | undefined,
  id: number,
): Promise<CommandDetails | null> {
  const command = await store.getCommand(id);
  if (!command) return null;
  const [tasks, undo, children, statusHistory, reruns] = await Promise.all([
    store.getTasks(id),
    store.getUndo(id),
    store.listCommands({ parentId: id, limit: 1000 }),
    store.getStatusHistory?.(id) ?? [],
    command.parentId === null ? store.rerunLinks(id) : NO_RERUNS,
  ]);
  const live = coordinator?.live.get(id);
  const queued = await queuePositions(store, coordinator, id, tasks, live);
  return {
    command,
    tasks,
    undo,
    children: children.commands.sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0)),
    unreadableChildren: children.unreadable,
    queued,
    rootQueue: (live && coordinator?.roots.position(live)) ?? null,
    // Every command is created pending: shown even when its first stored status was later.
    statusHistory:
      statusHistory.length === 0 || statusHistory[0]?.status === 'pending'
        ? statusHistory
        : [{ status: 'pending', at: command.createdAt }, ...statusHistory],
    unloadable: (live?.held ? live.loadError : null) ?? coordinator?.unloaded.get(id) ?? null,
    releasable: live?.held === true && live.loadError?.code === ErrorCode.TreeRefused,
    reruns,
  };
}

/** A child's links: only roots run again. */
const NO_RERUNS: RerunLinks = Object.freeze({ rerunOf: null, reruns: [] });

/**
 * Where a command's queued tasks stand. Alone on a store, in this node's queues; on a shared
 * one, in the cluster's (the store's queued tasks of every node and the slots held, by the
 * order the agents' lease holders grant in), whichever node runs the command, with this
 * node's limits.
 */
async function queuePositions(
  store: Store,
  coordinator: Coordinator | undefined,
  id: number,
  tasks: readonly TaskRecord[],
  live: LiveCommand | undefined,
): Promise<{ ordinal: number; position: QueuePosition }[]> {
  const admission = coordinator?.tasks.admission;
  if (!isSharedStore(store)) {
    const queued: { ordinal: number; position: QueuePosition }[] = [];
    for (const t of live?.tasks ?? []) {
      const position = admission?.position(t);
      if (position) queued.push({ ordinal: t.ordinal, position });
    }
    return queued;
  }
  const waiting = tasks.filter((t) => t.status === 'queued');
  if (waiting.length === 0 || !admission) return [];
  const found = await store.queueAhead(
    waiting.map((t) => ({ commandId: id, ordinal: t.ordinal })),
    admission.ageStepMs,
  );
  return found.map((p) => {
    const limits = admission.limitOf(p.agentId);
    return {
      ordinal: p.ordinal,
      position: queuePosition(
        p.agentId,
        p.verb,
        p.ahead,
        limits?.maxRunning ?? null,
        limits?.byVerb[p.verb] ?? null,
        p.held,
      ),
    };
  });
}
