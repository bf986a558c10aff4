/**
 * The raw-store limit on PostgreSQL: the same row writes coco committed in a run (per command or
 * parent: command inserts, updates and settles, task inserts and updates), applied directly with
 * `PostgresStore.apply` — the store's own set-based statements, node fencing, transition triggers
 * and a WAL flush per COMMIT — `perBatch` commands' (or parents') writes at a time, with no engine
 * in between. Like the SQLite limit (bench/raw.ts), each group of `perBatch` units is three
 * transactions: the inserts, then the updates, then the settles.
 *
 * The node processes of bench/pg.ts each apply their share at once, so with N nodes this is the
 * limit of N connections writing in parallel, as coco's N nodes do.
 */
import type { PostgresStore } from '../src/store/postgres/pg-store.js';
import type { CommandRecord, TaskRecord } from '../src/core/records.js';
import type { ChangeBatch, CommandUpdate } from '../src/store/port.js';
import { emptyBatch } from '../src/store/port.js';
import type { PerUnit } from './pg-common.js';

function commandRow(id: number, now: number): CommandRecord {
  return {
    id,
    type: 'bench.raw',
    paramsVersion: 1,
    params: { i: id },
    status: 'waiting',
    parentId: null,
    rootId: id,
    seq: null,
    originStage: null,
    childMode: 'concurrent',
    failurePolicy: 'wait-all',
    expectedTasks: 1,
    expectedChildren: 0,
    taskCount: 1,
    childCount: 0,
    undoCount: 0,
    journalSeq: 0,
    stage: 0,
    stageDone: true,
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
    createdAt: now,
    updatedAt: now,
    endedAt: null,
    tasksCleared: false,
    owner: null,
    leaseUntil: null,
  };
}

/** The update ending a command (the rest of the record rides along; the store ignores it). */
function commandEnd(id: number, now: number): CommandUpdate {
  return { ...commandRow(id, now), status: 'succeeded', endedAt: now, result: { ok: true } };
}

function taskRow(commandId: number, ordinal: number, agentId: string, now: number): TaskRecord {
  return {
    commandId,
    ordinal,
    origin: 0,
    agentId,
    verb: 'noop',
    args: null,
    status: 'created',
    result: null,
    error: null,
    deadlineAt: null,
    stopRequested: false,
    createdAt: now,
    endedAt: null,
  };
}

/** Command ids the batches of {@link rawBatches} insert. */
export function rawIdsNeeded(perUnit: PerUnit, units: number, perBatch: number): number {
  return Math.ceil(units / perBatch) * Math.max(1, Math.round(perUnit.commandInserts * perBatch));
}

/**
 * The batches for `units` units, `perBatch` at a time, inserting command ids from `firstId` on:
 * per group, one batch of inserts, one of updates, one of settles (built up front, so that the
 * timed loop measures the store, not record building).
 */
export function rawBatches(
  perUnit: PerUnit,
  units: number,
  perBatch: number,
  firstId: number,
  agentId: string,
): ChangeBatch[] {
  const now = Date.now();
  const ci = Math.max(1, Math.round(perUnit.commandInserts * perBatch));
  const ti = Math.round(perUnit.taskInserts * perBatch);
  const tu = Math.round(perUnit.taskUpdates * perBatch);
  const cu = Math.round(perUnit.commandUpdates * perBatch);
  const cs = Math.round(perUnit.commandsSettled * perBatch);
  const batches: ChangeBatch[] = [];
  let nextId = firstId;
  for (let g = 0; g < Math.ceil(units / perBatch); g++) {
    const ids = Array.from({ length: ci }, () => nextId++);
    const tasks = Array.from({ length: ti }, (_, i) =>
      taskRow(ids[i % ci]!, Math.floor(i / ci), agentId, now),
    );
    batches.push({
      ...emptyBatch(),
      commandInserts: ids.map((id) => commandRow(id, now)),
      taskInserts: tasks,
    });
    batches.push({
      ...emptyBatch(),
      // Updates cycle over the inserted tasks (more updates than tasks: some updated twice).
      taskUpdates: Array.from({ length: ti > 0 ? tu : 0 }, (_, i) => ({
        commandId: tasks[i % ti]!.commandId,
        ordinal: tasks[i % ti]!.ordinal,
        status: 'succeeded' as const,
        result: null,
        error: null,
        stopRequested: false,
        endedAt: now,
        deadlineAt: null,
      })),
      commandUpdates: Array.from({ length: cu }, (_, i) => commandEnd(ids[i % ci]!, now)),
    });
    batches.push({
      ...emptyBatch(),
      commandsSettled: Array.from({ length: cs }, (_, i) => ids[i % ci]!),
    });
  }
  return batches;
}

/** Applies the batches one after the other; seconds. */
export async function applyRaw(
  store: PostgresStore,
  batches: readonly ChangeBatch[],
): Promise<number> {
  const t0 = performance.now();
  for (const b of batches) await store.apply(b);
  return (performance.now() - t0) / 1000;
}
