/**
 * Record builders for the store conformance suite and the store benchmark.
 *
 * @module
 */
import type { CommandRecord, TaskRecord, UndoRecord } from '../../src/core/records.js';
import type { ChangeBatch, CommandUpdate, TaskUpdate, UndoUpdate } from '../../src/store/port.js';
import { emptyBatch } from '../../src/store/port.js';

/** A fixed instant, so that records compare exactly. */
export const T0 = 1_700_000_000_000;

/** A root command in `pending`, with every optional field empty. */
export function command(id: number, over: Partial<CommandRecord> = {}): CommandRecord {
  return {
    id,
    type: 'test.cmd',
    paramsVersion: 1,
    params: { n: id },
    status: 'pending',
    parentId: null,
    rootId: id,
    seq: null,
    originStage: null,
    childMode: 'concurrent',
    failurePolicy: 'wait-all',
    expectedTasks: 0,
    expectedChildren: 0,
    taskCount: 0,
    childCount: 0,
    undoCount: 0,
    journalSeq: 0,
    stage: 0,
    stageDone: false,
    chainDone: false,
    cancelRequested: false,
    error: null,
    result: null,
    compensation: 'none',
    compensationError: null,
    data: null,
    attempts: 0,
    nextAttemptAt: null,
    lastError: null,
    deadlineAt: null,
    priority: 0,
    queuedSince: null,
    idempotencyKey: null,
    createdAt: T0,
    updatedAt: T0,
    endedAt: null,
    tasksCleared: false,
    owner: null,
    leaseUntil: null,
    traceContext: null,
    ...over,
  };
}

/** A child of `parent` at journal position `seq`. */
export function child(
  id: number,
  parent: CommandRecord,
  seq: number,
  over: Partial<CommandRecord> = {},
): CommandRecord {
  return command(id, { parentId: parent.id, rootId: parent.rootId, seq, originStage: 0, ...over });
}

/** A command with every field set to a non-default value (nested JSON, error details, booleans). */
export function fullCommand(id: number, parentId: number, rootId: number): CommandRecord {
  return command(id, {
    type: 'test.full',
    paramsVersion: 3,
    params: {
      nested: { list: [1, 'two', null, true, { deep: [] }] },
      unicode: 'héllo ✓ "quoted"',
      n: -1.5,
    },
    status: 'aborting',
    parentId,
    rootId,
    seq: 4,
    originStage: 2,
    childMode: 'serial',
    failurePolicy: 'fail-fast',
    expectedTasks: 3,
    expectedChildren: 2,
    taskCount: 5,
    childCount: 1,
    undoCount: 2,
    journalSeq: 7,
    stage: 2,
    stageDone: true,
    chainDone: true,
    cancelRequested: true,
    error: {
      code: 'TASK_FAILED',
      message: 'disk full',
      details: { agent: 'a1', sizes: [1, 2], ok: false },
    },
    result: ['partial', 1],
    compensation: 'compensating',
    compensationError: { code: 'COMPENSATION_FAILED', message: 'undo failed' },
    data: { cursor: 12, seen: ['x', 'y'], flag: false },
    attempts: 2,
    nextAttemptAt: T0 + 5_000,
    lastError: { code: 'HANDLER_FAILED', message: 'boom', details: null },
    deadlineAt: T0 + 60_000,
    idempotencyKey: `key-${id}`,
    createdAt: T0 + 1,
    updatedAt: T0 + 2,
    endedAt: T0 + 3,
    tasksCleared: true,
    owner: 'node-a',
    leaseUntil: T0 + 10_000,
    traceContext: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  });
}

/** A task in `created`. */
export function task(
  commandId: number,
  ordinal: number,
  over: Partial<TaskRecord> = {},
): TaskRecord {
  return {
    commandId,
    ordinal,
    origin: 0,
    agentId: 'agent-1',
    verb: 'volume.copy',
    args: { from: 'a', to: 'b' },
    status: 'created',
    result: null,
    error: null,
    deadlineAt: null,
    stopRequested: false,
    createdAt: T0,
    endedAt: null,
    ...over,
  };
}

/** An undo step in `recorded`. */
export function undo(
  commandId: number,
  ordinal: number,
  over: Partial<UndoRecord> = {},
): UndoRecord {
  return {
    commandId,
    ordinal,
    seq: ordinal,
    stage: 0,
    name: 'release',
    data: { id: `${commandId}-${ordinal}` },
    status: 'recorded',
    error: null,
    ...over,
  };
}

/** The mutable part of a command record. */
export function commandUpdate(r: CommandRecord): CommandUpdate {
  const {
    type: _type,
    paramsVersion: _pv,
    params: _params,
    parentId: _parent,
    rootId: _root,
    seq: _seq,
    originStage: _origin,
    childMode: _mode,
    failurePolicy: _policy,
    idempotencyKey: _key,
    createdAt: _created,
    ...rest
  } = r;
  return rest;
}

/** The mutable part of a task record. */
export function taskUpdate(t: TaskRecord): TaskUpdate {
  return {
    commandId: t.commandId,
    ordinal: t.ordinal,
    status: t.status,
    result: t.result,
    error: t.error,
    stopRequested: t.stopRequested,
    endedAt: t.endedAt,
    deadlineAt: t.deadlineAt,
  };
}

/** The mutable part of an undo record. */
export function undoUpdate(u: UndoRecord): UndoUpdate {
  return { commandId: u.commandId, ordinal: u.ordinal, status: u.status, error: u.error };
}

/** A batch with the given parts, the rest empty. */
export function batch(parts: Partial<ChangeBatch>): ChangeBatch {
  return { ...emptyBatch(), ...parts };
}

/** A command that has ended and whose tasks are cleared: not active. */
export function endedCommand(id: number, over: Partial<CommandRecord> = {}): CommandRecord {
  return command(id, {
    status: 'succeeded',
    endedAt: T0 + 1,
    tasksCleared: true,
    result: { ok: true },
    ...over,
  });
}
