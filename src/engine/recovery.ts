/**
 * Rebuilding live commands from stored rows, after a restart or when a settled command must be
 * compensated later. At a restart the rows come as the store reads them (`Store.streamActive`)
 * and each becomes its live object at once: no record outlives its row. Types are found through
 * the registry by their stored name and parameters go through the type's upgraders — never
 * reflection (stored-code.ts). A command that cannot be loaded never stops the others:
 *
 * - one whose type is unknown here (removed, renamed without an alias), whose parameters were
 *   written by newer code, or whose parameters cannot be upgraded or validated is *held*: loaded
 *   as its rows say, but left untouched — no handler runs, none of its tasks is started,
 *   stopped, polled or cleared — until a cancel ends it (`Coordinator.endHeld`), or a release
 *   that can load it restarts. One that has ended (only its tasks' clears are left) or that a
 *   cancel already asked to end is not held: it goes on with what can run from stored data.
 * - the commands of a tree whose changes the store refused (`Store.heldTrees`) are held the same
 *   way, until an operator's release runs them on (`Engine.release`) or a cancel ends them.
 * - one with a row that cannot be read (its own, a task's, an undo step's, or a child's) is not
 *   loaded at all: it is never run from a partial picture. Its tasks are never taken for
 *   strangers, and it cannot be ended by the engine (the rows must be repaired).
 *
 * @module
 */
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { CommandType } from '../core/command-type.js';
import type { CommandRegistry } from '../core/registry.js';
import {
  agentTaskId,
  type CommandRecord,
  type TaskRecord,
  type UndoRecord,
} from '../core/records.js';
import type { ActiveRowSink, ActiveSnapshot, CorruptRow, HeldTree, Store } from '../store/port.js';
import { ChildState, LiveCommand, LiveTask, LiveUndo } from './live.js';
import { loadCode, loadCodeLater, type LoadedCode } from './stored-code.js';

/** A row that could not be read, or a command that could not be loaded, and why. */
export interface LoadFailure {
  readonly commandId: number | null;
  readonly error: ErrorInfo;
}

/** What {@link rebuild} returns. */
export interface RebuildResult {
  readonly commands: LiveCommand[];
  /** Each row that could not be read, and each command that could not be loaded, with why. */
  readonly failures: LoadFailure[];
  /**
   * Commands not loaded because a row of theirs cannot be read, by id, with why: their tasks are
   * not strangers to reconciliation (nothing may stop or clear them while the command is neither
   * run nor ended).
   */
  readonly unloaded: ReadonlyMap<number, ErrorInfo>;
  /**
   * Time until the last row was handed over (ms): the store's read, with the live objects built
   * as the rows came. Zero for a snapshot read beforehand.
   */
  readonly readMs: number;
}

/**
 * Where the rows of a rebuild come from: a snapshot already read, or a reader handing them to a
 * sink as it reads them (see {@link activeRows}).
 */
export type ActiveRows = ActiveSnapshot | ((sink: ActiveRowSink) => Promise<void>);

/**
 * The active set of a store as {@link ActiveRows}: streamed where the store can
 * (`Store.streamActive`), else its snapshot handed over row by row once read.
 */
export function activeRows(store: Store): (sink: ActiveRowSink) => Promise<void> {
  if (store.streamActive) return (sink) => store.streamActive!(sink);
  return async (sink) => feed(await store.loadActive(), sink);
}

/**
 * Hands a snapshot's rows to a sink in the order of the port's stream: commands, then each
 * command's tasks and undo steps in ordinal order, ended children, unreadable rows.
 */
function feed(snapshot: ActiveSnapshot, sink: ActiveRowSink): void {
  const byOrdinal = (a: TaskRecord | UndoRecord, b: TaskRecord | UndoRecord): number =>
    a.commandId - b.commandId || a.ordinal - b.ordinal;
  for (const r of snapshot.commands) sink.command(r);
  for (const t of [...snapshot.tasks].sort(byOrdinal)) sink.task(t);
  for (const u of [...snapshot.undo].sort(byOrdinal)) sink.undo(u);
  for (const r of snapshot.endedChildren) sink.endedChild(r);
  for (const row of snapshot.corrupt) sink.corrupt(row);
}

/**
 * The commands that cannot be rebuilt whole: those with a row that could not be read (their
 * own, a task's or an undo step's), and the parents (among the rows read) of command rows that
 * could not be read. Each unreadable row is a failure of its own; a parent left out for its
 * child too.
 */
function unreadable(
  corrupt: readonly CorruptRow[],
  isRead: (id: number) => boolean,
): { failures: LoadFailure[]; unloaded: Map<number, ErrorInfo> } {
  const failures: LoadFailure[] = [];
  const unloaded = new Map<number, ErrorInfo>();
  for (const bad of corrupt) {
    failures.push({ commandId: bad.commandId, error: bad.error });
    if (bad.commandId !== null && !unloaded.has(bad.commandId))
      unloaded.set(bad.commandId, bad.error);
  }
  for (const bad of corrupt) {
    const parentId = bad.parentId;
    if (parentId === null || !isRead(parentId) || unloaded.has(parentId)) continue;
    const error = new CocoError(
      ErrorCode.CorruptRow,
      `command ${parentId} is not loaded: its child's row cannot be read (${bad.error.message})`,
      { details: { commandId: parentId, childId: bad.commandId, cause: bad.error } },
    ).toInfo();
    unloaded.set(parentId, error);
    failures.push({ commandId: parentId, error });
  }
  return { failures, unloaded };
}

/**
 * Builds live commands from rows as they come (the sink of a store's stream): each command row
 * becomes its live command at once, each task and undo row its live entry on it, so no record
 * outlives its row. What needs every row — children in journal order, commands left out for an
 * unreadable row, parameters whose schema validates asynchronously — is settled by
 * {@link finish}.
 */
class Rebuilder implements ActiveRowSink {
  readonly #registry: CommandRegistry;
  readonly #storeId: string;
  /** Live commands in the order their rows came. */
  readonly #commands: LiveCommand[] = [];
  /** Rows came in ascending id order (a store's stream does): found by binary search. */
  #ascending = true;
  /** By id, built only if rows came out of order. */
  #byId: Map<number, LiveCommand> | null = null;
  /** Index in #commands of the command found last (entries come grouped by command). */
  #hint = 0;
  readonly #corrupt: CorruptRow[] = [];
  /** Child states with their parents' ids, in the order their rows came. */
  readonly #children: [parentId: number, child: ChildState][] = [];
  /** Commands whose parameters validate asynchronously, with what their rows said. */
  readonly #later: [c: LiveCommand, version: number, params: unknown][] = [];
  /**
   * Commands that are or may be held (their code could not be loaded, or is checked later), in
   * the order their rows came: {@link finish} reports those held from this short list, not from
   * a pass over every command (at a restart, each such pass is 100,000s of first touches).
   */
  readonly #mayHold: LiveCommand[] = [];

  /** Trees held because the store refused their changes (`Store.heldTrees`), by root id. */
  readonly #held: ReadonlyMap<number, HeldTree>;

  constructor(registry: CommandRegistry, storeId: string, held: ReadonlyMap<number, HeldTree>) {
    this.#registry = registry;
    this.#storeId = storeId;
    this.#held = held;
  }

  command(r: CommandRecord): void {
    const code = loadCode(this.#registry, r);
    const c = fromRecord(r, code.type, code.version, storedParams(code), code.params);
    if (code.upgraded) c.paramsDirty = true;
    if (code.loadError) hold(c, code.loadError);
    if (code.later) this.#later.push([c, r.paramsVersion, r.params]);
    const refused = this.#held.size === 0 ? undefined : this.#held.get(r.rootId);
    if (refused !== undefined && c.loadError === null) {
      // Refused again while it ended (after a cancel): held all the same, or it would be refused
      // at every start.
      hold(c, refusedError(c, refused), refused.refusals > 1);
    }
    if (code.loadError || code.later || refused !== undefined) this.#mayHold.push(c);
    const list = this.#commands;
    if (list.length > 0 && list[list.length - 1]!.id >= r.id) this.#ascending = false;
    list.push(c);
    this.#byId?.set(c.id, c);
    if (r.parentId !== null) this.#children.push([r.parentId, childState(r)]);
  }

  task(t: TaskRecord): void {
    const c = this.#find(t.commandId);
    if (c === undefined) return;
    const task = new LiveTask(
      c,
      t.ordinal,
      t.origin,
      t.agentId,
      t.verb,
      t.args,
      agentTaskId(this.#storeId, c.id, t.ordinal),
      t.status,
      t.result,
      t.error,
      t.deadlineAt,
      t.stopRequested,
      t.createdAt,
      t.endedAt,
      true,
    );
    if (c.tasksCleared) task.cleared = true;
    c.addTask(task);
  }

  undo(u: UndoRecord): void {
    const c = this.#find(u.commandId);
    if (c === undefined) return;
    (c.undo ??= []).push(
      new LiveUndo(c, u.ordinal, u.seq, u.stage, u.name, u.data, u.status, u.error, true),
    );
    // Counters on the row are informational; the entries are the truth.
    if (u.seq >= c.journalSeq) c.journalSeq = u.seq + 1;
  }

  endedChild(r: CommandRecord): void {
    if (r.parentId !== null) this.#children.push([r.parentId, childState(r)]);
  }

  corrupt(row: CorruptRow): void {
    this.#corrupt.push(row);
  }

  /** The live command of a row already handed over, by id. */
  #find(id: number): LiveCommand | undefined {
    const list = this.#commands;
    const at = this.#hint;
    if (list[at]?.id === id) return list[at];
    if (list[at + 1]?.id === id) return list[(this.#hint = at + 1)];
    if (!this.#ascending) {
      this.#byId ??= new Map(list.map((c) => [c.id, c]));
      return this.#byId.get(id);
    }
    let lo = 0;
    let hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const found = list[mid]!.id;
      if (found === id) return list[(this.#hint = mid)];
      if (found < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** Settles what needs every row: see the class. */
  async finish(readMs: number): Promise<RebuildResult> {
    for (const [c, version, params] of this.#later) {
      const code = await loadCodeLater(c, version, params);
      c.params = code.params;
      c.rawParams = storedParams(code);
      c.paramsVersion = code.version;
      if (code.upgraded) c.paramsDirty = true;
      if (code.loadError) hold(c, code.loadError);
    }
    const { failures, unloaded } = unreadable(this.#corrupt, (id) => !!this.#find(id));
    this.#linkChildren();
    const commands =
      unloaded.size === 0 ? this.#commands : this.#commands.filter((c) => !unloaded.has(c.id));
    for (const c of this.#mayHold)
      if (c.loadError !== null && !unloaded.has(c.id))
        failures.push({ commandId: c.id, error: c.loadError });
    return { commands, failures, unloaded, readMs };
  }

  /** Gives each parent read its children's states, in journal order. */
  #linkChildren(): void {
    const byParent = new Map<LiveCommand, ChildState[]>();
    for (const [parentId, child] of this.#children) {
      const parent = this.#find(parentId);
      if (parent === undefined) continue;
      const list = byParent.get(parent);
      if (list) list.push(child);
      else byParent.set(parent, [child]);
    }
    for (const [parent, children] of byParent) {
      for (const child of children.sort((a, b) => a.seq - b.seq)) {
        parent.addChild(child);
        if (child.seq >= parent.journalSeq) parent.journalSeq = child.seq + 1;
      }
    }
  }
}

/**
 * The parameters a rebuilt command keeps as stored (`LiveCommand.rawParams`): those it must write
 * back (upgraded on load), and those of a command that could not be loaded (kept as read). A
 * command loaded whole never writes its parameters again (a batch writes them with an insert or
 * an upgrade only): it keeps none — at a restart, an object less per command for every
 * scavenge to copy twice.
 */
function storedParams(code: LoadedCode): unknown {
  return code.upgraded || code.loadError !== null ? code.raw : null;
}

/**
 * Marks a command that could not be loaded (see the module), or of a tree the store refused.
 * `evenCancelled`: held even if a cancel asked for its end.
 */
function hold(c: LiveCommand, loadError: ErrorInfo, evenCancelled = false): void {
  c.loadError = loadError;
  // Held unless nothing of its code is needed any more (it has ended: only its tasks' clears
  // are left), or a cancel already asked for its end (it goes on ending).
  c.held = !c.settled && (evenCancelled || !c.cancelRequested);
}

/** Why a command of a tree the store refused is held (`TREE_REFUSED`). */
function refusedError(c: LiveCommand, refused: HeldTree): ErrorInfo {
  const times = refused.refusals === 1 ? 'once' : `${refused.refusals} times`;
  return new CocoError(
    ErrorCode.TreeRefused,
    `the store refused the changes of command ${c.id}'s tree (root ${refused.rootId}) ${times}, ` +
      `last at ${new Date(refused.heldAt).toISOString()} (${refused.error.message}): nothing of it ` +
      'runs until a release runs it on (once the cause is gone) or a cancel ends it',
    { details: { rootId: refused.rootId, refusals: refused.refusals, cause: refused.error } },
  ).toInfo();
}

/** A child as its parent tracks it, from the child's row. */
function childState(r: CommandRecord): ChildState {
  return new ChildState(
    r.id,
    r.type,
    r.seq ?? 0,
    r.originStage ?? 0,
    r.status,
    r.result,
    r.error,
    r.compensation,
    r.compensationError,
  );
}

/**
 * Rebuilds live commands from the active set's rows: commands, their tasks and undo steps, and
 * children rows. Commands that cannot be rebuilt whole are left out and reported.
 */
export async function rebuild(
  registry: CommandRegistry,
  storeId: string,
  rows: ActiveRows,
  held: ReadonlyMap<number, HeldTree> = new Map(),
): Promise<RebuildResult> {
  const sink = new Rebuilder(registry, storeId, held);
  if (typeof rows !== 'function') {
    feed(rows, sink);
    return sink.finish(0);
  }
  const began = performance.now();
  await rows(sink);
  return sink.finish(performance.now() - began);
}

function fromRecord(
  r: CommandRecord,
  type: CommandType,
  version: number,
  raw: unknown,
  params: unknown,
): LiveCommand {
  const c = new LiveCommand({
    id: r.id,
    type,
    paramsVersion: version,
    rawParams: raw,
    params,
    parentId: r.parentId,
    rootId: r.rootId,
    seq: r.seq,
    originStage: r.originStage,
    childMode: r.childMode,
    failurePolicy: r.failurePolicy,
    idempotencyKey: r.idempotencyKey,
    createdAt: r.createdAt,
    persisted: true,
  });
  c.restore(r);
  return c;
}

/** Loads one command with its entries (for compensating a command no longer in memory). */
export async function loadOne(
  store: Store,
  registry: CommandRegistry,
  storeId: string,
  id: number,
): Promise<{ command: LiveCommand | null; failure: LoadFailure | null }> {
  const record = await store.getCommand(id);
  if (!record)
    return {
      command: null,
      failure: {
        commandId: id,
        error: { code: ErrorCode.CommandNotFound, message: `command ${id} does not exist` },
      },
    };
  const [tasks, undo, children] = await Promise.all([
    store.getTasks(id),
    store.getUndo(id),
    store.listCommands({ parentId: id, limit: 1000 }),
  ]);
  const result = await rebuild(registry, storeId, {
    commands: [record],
    tasks,
    undo,
    endedChildren: children.commands,
    corrupt: children.unreadable,
  });
  return { command: result.commands[0] ?? null, failure: result.failures[0] ?? null };
}
