/**
 * Rebuilding live commands from stored rows, after a restart or when a settled command must be
 * compensated later. Types are found through the registry by their stored name and parameters
 * go through the type's upgraders — never reflection. A command that cannot be loaded never
 * stops the others:
 *
 * - one whose type is unknown here (removed, renamed without an alias), whose parameters were
 *   written by newer code, or whose parameters cannot be upgraded or validated is *held*: loaded
 *   as its rows say, but left untouched — no handler runs, none of its tasks is started,
 *   stopped, polled or cleared — until a cancel ends it (`Coordinator.endHeld`), or a release
 *   that can load it restarts. One that has ended (only its tasks' clears are left) or that a
 *   cancel already asked to end is not held: it goes on with what can run from stored data.
 * - one with a row that cannot be read (its own, a task's, an undo step's, or a child's) is not
 *   loaded at all: it is never run from a partial picture. Its tasks are never taken for
 *   strangers, and it cannot be ended by the engine (the rows must be repaired).
 *
 * @module
 */
import {
  CocoError,
  ErrorCode,
  ParameterVersionError,
  toErrorInfo,
  type ErrorInfo,
} from '../core/errors.js';
import type { CommandType } from '../core/command-type.js';
import { upgradeParams, upgradeParamsSync } from '../core/params.js';
import type { CommandRegistry } from '../core/registry.js';
import { agentTaskId, type CommandRecord } from '../core/records.js';
import type { ActiveSnapshot, Store } from '../store/port.js';
import { BROKEN_PARAMS, ChildState, LiveCommand, LiveTask, LiveUndo } from './live.js';
import { unknownType } from './unloadable.js';

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
}

function group<T extends { commandId: number }>(rows: readonly T[]): Map<number, T[]> {
  const map = new Map<number, T[]>();
  for (const row of rows) {
    const list = map.get(row.commandId);
    if (list) list.push(row);
    else map.set(row.commandId, [row]);
  }
  return map;
}

/**
 * The commands of a snapshot that cannot be rebuilt whole: those with a row that could not be
 * read (their own, a task's or an undo step's), and the parents of command rows that could not
 * be read. Each unreadable row is a failure of its own; a parent left out for its child too.
 */
function unreadable(snapshot: ActiveSnapshot): {
  failures: LoadFailure[];
  unloaded: Map<number, ErrorInfo>;
} {
  const failures: LoadFailure[] = [];
  const unloaded = new Map<number, ErrorInfo>();
  for (const bad of snapshot.corrupt) {
    failures.push({ commandId: bad.commandId, error: bad.error });
    if (bad.commandId !== null && !unloaded.has(bad.commandId))
      unloaded.set(bad.commandId, bad.error);
  }
  const active = new Set(snapshot.commands.map((c) => c.id));
  for (const bad of snapshot.corrupt) {
    const parentId = bad.parentId;
    if (parentId === null || !active.has(parentId) || unloaded.has(parentId)) continue;
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
 * Rebuilds live commands from a snapshot's rows: commands, their tasks and undo steps, and
 * children rows. Commands that cannot be rebuilt whole are left out and reported.
 */
export async function rebuild(
  registry: CommandRegistry,
  storeId: string,
  snapshot: ActiveSnapshot,
): Promise<RebuildResult> {
  const { failures, unloaded } = unreadable(snapshot);
  const tasksBy = group(snapshot.tasks);
  const undoBy = group(snapshot.undo);
  const childrenBy = new Map<number, CommandRecord[]>();
  for (const r of [...snapshot.commands, ...snapshot.endedChildren]) {
    if (r.parentId === null) continue;
    const list = childrenBy.get(r.parentId);
    if (list) list.push(r);
    else childrenBy.set(r.parentId, [r]);
  }
  const out: LiveCommand[] = [];
  for (const r of snapshot.commands) {
    if (unloaded.has(r.id)) continue;
    const code = await loadCode(registry, r);
    const c = fromRecord(r, code.type, code.version, code.raw, code.params);
    if (code.upgraded) c.paramsDirty = true;
    if (code.loadError) {
      failures.push({ commandId: r.id, error: code.loadError });
      c.loadError = code.loadError;
      // Held unless nothing of its code is needed any more (it has ended: only its tasks'
      // clears are left), or a cancel already asked for its end (it goes on ending).
      c.held = !c.settled && !r.cancelRequested;
    }
    for (const t of (tasksBy.get(r.id) ?? []).sort((a, b) => a.ordinal - b.ordinal)) {
      const task = new LiveTask(
        c,
        t.ordinal,
        t.origin,
        t.agentId,
        t.verb,
        t.args,
        agentTaskId(storeId, r.id, t.ordinal),
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
    for (const u of (undoBy.get(r.id) ?? []).sort((a, b) => a.ordinal - b.ordinal)) {
      (c.undo ??= []).push(
        new LiveUndo(c, u.ordinal, u.seq, u.stage, u.name, u.data, u.status, u.error, true),
      );
    }
    for (const ch of (childrenBy.get(r.id) ?? []).sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0))) {
      c.addChild(
        new ChildState(
          ch.id,
          ch.type,
          ch.seq ?? 0,
          ch.originStage ?? 0,
          ch.status,
          ch.result,
          ch.error,
          ch.compensation,
          ch.compensationError,
        ),
      );
    }
    // Counters on the row are informational; the entries are the truth.
    c.journalSeq = Math.max(
      r.journalSeq,
      ...(c.undo ?? []).map((u) => u.seq + 1),
      ...(c.children ?? []).map((ch) => ch.seq + 1),
    );
    out.push(c);
  }
  return { commands: out, failures, unloaded };
}

/** What the code of a stored command is, as far as this engine can load it. */
interface LoadedCode {
  readonly type: CommandType;
  readonly params: unknown;
  readonly raw: unknown;
  readonly version: number;
  /** The parameters were upgraded (to be written back at the current version). */
  readonly upgraded: boolean;
  /** Why the type or the parameters could not be loaded (null: loaded). */
  readonly loadError: ErrorInfo | null;
}

/**
 * Finds a stored command's type by its stored name (the type's own, or a former one) and
 * upgrades its parameters. An unknown type, or parameters written by newer code, give a
 * stand-in type (none of its code runs here); parameters that cannot be upgraded or validated
 * give {@link BROKEN_PARAMS} under the real type.
 */
async function loadCode(registry: CommandRegistry, r: CommandRecord): Promise<LoadedCode> {
  const broken = {
    params: BROKEN_PARAMS,
    raw: r.params,
    version: r.paramsVersion,
    upgraded: false,
  };
  const type = registry.resolve(r.type);
  if (!type) {
    const loadError = new CocoError(
      ErrorCode.UnknownCommandType,
      `command ${r.id} has type "${r.type}", which this engine does not know (by name or alias)`,
      { details: { commandType: r.type, commandId: r.id } },
    ).toInfo();
    return { ...broken, type: unknownType(r.type, r.paramsVersion), loadError };
  }
  try {
    const result =
      upgradeParamsSync(type, r.paramsVersion, r.params, r.id) ??
      (await upgradeParams(type, r.paramsVersion, r.params, r.id));
    return {
      type,
      params: result.params,
      raw: result.raw,
      version: result.upgraded ? type.version : r.paramsVersion,
      upgraded: result.upgraded,
      loadError: null,
    };
  } catch (error) {
    // Written by newer code: this code's handlers may not understand what that code stored.
    if (error instanceof ParameterVersionError)
      return { ...broken, type: unknownType(r.type, r.paramsVersion), loadError: error.toInfo() };
    return { ...broken, type, loadError: toErrorInfo(error, ErrorCode.ParametersInvalid) };
  }
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
