/**
 * Conversions between the monitor's tree nodes and the job store's records.
 *
 * @module
 */
import type { ErrorInfo } from '../core/errors.js';
import type { CommandNode, JobState, TaskNode } from './nodes.js';
import { commandStepKey, jobStatusOf, taskStepKey, type Job, type Step } from './port.js';

/** Whether two errors say the same thing. */
export function sameError(a: ErrorInfo | null, b: ErrorInfo | null): boolean {
  return a === b || (a !== null && b !== null && a.code === b.code && a.message === b.message);
}

/** The step record of a command node. */
export function commandStep(node: CommandNode): Step {
  return {
    jobId: node.job.id,
    key: commandStepKey(node.id),
    parentKey: node.parentId === null ? null : commandStepKey(node.parentId),
    kind: 'command',
    name: node.type,
    commandId: node.id,
    taskOrdinal: null,
    status: node.status,
    compensation: node.compensation,
    progress: node.progress / 10,
    expectedTasks: node.expectedTasks,
    expectedChildren: node.expectedChildren,
    undo: false,
    error: node.error,
    startedAt: node.startedAt,
    endedAt: node.endedAt,
    updatedAt: node.updatedAt === -Infinity ? node.startedAt : node.updatedAt,
  };
}

/** The step record of a task node. */
export function taskStep(task: TaskNode): Step {
  return {
    jobId: task.command.job.id,
    key: taskStepKey(task.command.id, task.ordinal),
    parentKey: commandStepKey(task.command.id),
    kind: 'task',
    name: task.name,
    commandId: task.command.id,
    taskOrdinal: task.ordinal,
    status: task.status,
    compensation: 'none',
    progress: task.progress / 10,
    expectedTasks: 0,
    expectedChildren: 0,
    undo: task.undo,
    error: task.error,
    startedAt: task.startedAt,
    endedAt: task.endedAt,
    updatedAt: task.endedAt ?? task.startedAt,
  };
}

/** The job record of a job whose root is known. */
export function jobRecord(job: JobState, root: CommandNode, now: number): Job {
  return {
    id: job.id,
    type: root.type,
    status: jobStatusOf(root.status),
    compensation: root.compensation,
    progress: root.progress / 10,
    error: root.error,
    startedAt: root.startedAt,
    updatedAt: now,
    endedAt: root.endedAt,
  };
}
