/**
 * What one flush of the committer holds, and how it becomes a {@link ChangeBatch}: live objects
 * are snapshotted into store records (inserts for objects not yet stored, updates otherwise).
 *
 * @module
 */
import type { CommandRecord, EntityWrite, TaskRecord, UndoRecord } from '../core/records.js';
import type { ChangeBatch, CommandUpdate, TaskUpdate, UndoUpdate } from '../store/port.js';
import type { LiveCommand, LiveTask, LiveUndo, WriteReceipt } from './live.js';

/** A callback run after a commit, with its argument (see `Committer.afterCommitWith`). */
export type AfterFn = (arg: never) => void;

/** A callback to run after a commit; a barrier waits for everything marked before it. */
export interface AfterCommit {
  readonly fn: AfterFn;
  readonly arg: unknown;
  readonly barrier: boolean;
  /** The command whose changes it waits for (already durable or in flight), or null. */
  readonly cause: LiveCommand | null;
}

/** Runs callbacks kept as triples (cause, function, argument: {@link Flight.after}), in order. */
export function runAfter(after: readonly unknown[]): void {
  for (let i = 0; i < after.length; i += 3) (after[i + 1] as (arg: unknown) => void)(after[i + 2]);
}

/** {@link runAfter}, but not the callbacks without a cause (barriers) or whose cause `skip` names. */
export function runAfterExcept(
  after: readonly unknown[],
  skip: (cause: LiveCommand) => boolean,
): void {
  for (let i = 0; i < after.length; i += 3) {
    const cause = after[i] as LiveCommand | null;
    if (cause !== null && !skip(cause)) (after[i + 1] as (arg: unknown) => void)(after[i + 2]);
  }
}

/** What one flush sent, kept until it settles. */
export interface Flight {
  batch: ChangeBatch;
  readonly commands: LiveCommand[];
  readonly tasks: LiveTask[];
  readonly undo: LiveUndo[];
  readonly entities: EntityWrite[];
  /**
   * Callbacks to run once it commits, in order (their barriers were counted when taken), each as
   * three entries: its cause (null for a barrier), the function and its argument (see
   * `Committer.afterCommitWith`).
   */
  readonly after: unknown[];
  /**
   * Objects this batch inserts (they count as stored from the snapshot on), and its
   * {@link BatchReceipt}: the committer sets each `persisted` once the batch is sent, and clears
   * it again if the batch fails.
   */
  readonly inserted: { persisted: boolean }[];
  /** Commands whose upgraded parameters this batch rewrites. */
  readonly upgraded: LiveCommand[];
  readonly began: number;
  /** When it was taken to be sent (the engine's clock, ms). */
  readonly sentAt: number;
  failed: boolean;
}

/**
 * What the commands a batch writes keep of it ({@link LiveCommand.noteWrite}): whether it was sent
 * and has not failed. The batch's `inserted` list holds it, so it turns stored and back to not
 * stored with the rows the batch inserts; it holds nothing else (a command may keep it long
 * after its batch is gone).
 */
class BatchReceipt implements WriteReceipt {
  persisted = false;
}

/**
 * Snapshots a flight's objects into a batch, noting what it inserts and upgrades. A command
 * whose last row was written by a batch sent and not failed, and which changed only its
 * bookkeeping since, gets a state-only update (`CommandUpdate.stateOnly`): the batches before
 * this one are applied before it, or it fails with them. Indexed loops:
 * it runs a few times per second over thousands of rows, often before it is optimized, and an
 * unoptimized `for...of` makes an iterator result object per row.
 */
export function snapshot(f: Flight): ChangeBatch {
  const commandInserts: CommandRecord[] = [];
  const commandUpdates: CommandUpdate[] = [];
  const commandsSettled: number[] = [];
  const paramsUpgrades: { id: number; paramsVersion: number; params: unknown }[] = [];
  const commands = f.commands;
  const receipt = new BatchReceipt();
  f.inserted.push(receipt);
  for (let i = 0; i < commands.length; i++) {
    const c = commands[i]!;
    if (!c.persisted) {
      commandInserts.push(c.toRecord());
      f.inserted.push(c);
      c.noteWrite(receipt);
    } else if (c.settledOnly) {
      commandsSettled.push(c.id);
      c.noteWrite(null);
    } else {
      // One update per command and batch (the flight holds each command once).
      commandUpdates.push(c.toUpdate(c.noteWrite(receipt)));
      if (c.paramsDirty) {
        paramsUpgrades.push({ id: c.id, paramsVersion: c.paramsVersion, params: c.rawParams });
        f.upgraded.push(c);
      }
    }
  }
  const taskInserts: TaskRecord[] = [];
  const taskUpdates: TaskUpdate[] = [];
  const tasks = f.tasks;
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i]!;
    if (t.persisted) taskUpdates.push(t.toUpdate());
    else {
      taskInserts.push(t.toRecord());
      f.inserted.push(t);
    }
  }
  const undoInserts: UndoRecord[] = [];
  const undoUpdates: UndoUpdate[] = [];
  for (const u of f.undo) {
    if (u.persisted) undoUpdates.push(u.toUpdate());
    else {
      undoInserts.push(u.toRecord());
      f.inserted.push(u);
    }
  }
  return {
    commandInserts,
    commandUpdates,
    paramsUpgrades,
    taskInserts,
    taskUpdates,
    undoInserts,
    undoUpdates,
    commandsSettled,
    entityWrites: f.entities,
  };
}

/**
 * The tree of each command a flight's batch writes a row of (its command, task, undo and entity
 * rows): command id → root id. An entity write's command not among the flight's objects is found
 * with `live` (the command repository), or counts as a tree of its own.
 */
export function rootsOf(
  f: Flight,
  live: (id: number) => LiveCommand | undefined,
): Map<number, number> {
  const roots = new Map<number, number>();
  for (const c of f.commands) roots.set(c.id, c.rootId);
  for (const t of f.tasks) roots.set(t.command.id, t.command.rootId);
  for (const u of f.undo) roots.set(u.command.id, u.command.rootId);
  for (const w of f.entities)
    if (!roots.has(w.commandId)) roots.set(w.commandId, live(w.commandId)?.rootId ?? w.commandId);
  return roots;
}

/**
 * The part of `batch` that writes the rows of the trees `trees` (by root id; `roots` from
 * {@link rootsOf}), each list in its order; null if it writes none.
 */
export function treesPart(
  batch: ChangeBatch,
  roots: ReadonlyMap<number, number>,
  trees: ReadonlySet<number>,
): ChangeBatch | null {
  const has = (commandId: number): boolean => trees.has(roots.get(commandId) ?? commandId);
  const part: ChangeBatch = {
    commandInserts: batch.commandInserts.filter((r) => has(r.id)),
    commandUpdates: batch.commandUpdates.filter((r) => has(r.id)),
    paramsUpgrades: batch.paramsUpgrades.filter((r) => has(r.id)),
    taskInserts: batch.taskInserts.filter((r) => has(r.commandId)),
    taskUpdates: batch.taskUpdates.filter((r) => has(r.commandId)),
    undoInserts: batch.undoInserts.filter((r) => has(r.commandId)),
    undoUpdates: batch.undoUpdates.filter((r) => has(r.commandId)),
    commandsSettled: batch.commandsSettled.filter((id) => has(id)),
    entityWrites: batch.entityWrites.filter((w) => has(w.commandId)),
  };
  return Object.values(part).some((rows: readonly unknown[]) => rows.length > 0) ? part : null;
}
