/**
 * Store records built by hand for unit tests of the parts that read or write them (recovery,
 * the PostgreSQL encoders): every field of the port's shape, overridable.
 */
import type { CommandRecord } from '../../src/core/records.js';

/** A pending root command's record (no tasks, children or undo steps), with `extra` over it. */
export function commandRecord(id: number, extra: Partial<CommandRecord> = {}): CommandRecord {
  return {
    id, type: 'test.command', paramsVersion: 1, params: {}, status: 'pending',
    parentId: null, rootId: id, seq: null, originStage: null, childMode: 'concurrent',
    failurePolicy: 'wait-all', expectedTasks: 0, expectedChildren: 0, taskCount: 0, childCount: 0,
    undoCount: 0, journalSeq: 0, stage: 0, stageDone: true, chainDone: false, cancelRequested: false,
    error: null, result: null, compensation: 'none', compensationError: null, data: null, attempts: 0,
    nextAttemptAt: null, lastError: null, deadlineAt: null, priority: 0, queuedSince: null,
    idempotencyKey: null, createdAt: 1, updatedAt: 1, endedAt: null, tasksCleared: false, owner: null,
    leaseUntil: null, ...extra,
  }; // prettier-ignore
}
