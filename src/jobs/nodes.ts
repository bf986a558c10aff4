/**
 * The nodes of the monitor's in-memory step trees (see {@link JobCache} in tree.ts): a command
 * with the running sums of its parts' progress, a task, and one job's tree.
 *
 * @module
 */
import type { ErrorInfo } from '../core/errors.js';
import type { CommandStatus, CompensationStatus, TaskStatus } from '../core/states.js';

const STATUS_RANK: Readonly<Record<CommandStatus, number>> = {
  pending: 0,
  waiting: 1,
  aborting: 2,
  compensating: 3,
  succeeded: 4,
  failed: 4,
  cancelled: 4,
};
const COMPENSATION_RANK: Readonly<Record<CompensationStatus, number>> = {
  none: 0,
  compensating: 1,
  compensated: 2,
  failed: 2,
};
/** How far along a task is (never decreases). */
export const TASK_RANK: Readonly<Record<TaskStatus, number>> = {
  queued: 0,
  created: 0,
  running: 1,
  succeeded: 2,
  failed: 2,
  cancelled: 2,
};

/** How far along a command is: both machines only move forward, so this never decreases. */
export function commandRank(status: CommandStatus, compensation: CompensationStatus): number {
  return STATUS_RANK[status] * 3 + COMPENSATION_RANK[compensation];
}

/** The command fields the view keeps (a full record, or a stored step turned back into one). */
export interface CommandFacts {
  readonly id: number;
  readonly type: string;
  readonly parentId: number | null;
  readonly rootId: number;
  readonly status: CommandStatus;
  readonly compensation: CompensationStatus;
  readonly error: ErrorInfo | null;
  readonly expectedTasks: number;
  readonly expectedChildren: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly endedAt: number | null;
}

/** A task as the view keeps it. */
export class TaskNode {
  status: TaskStatus = 'created';
  error: ErrorInfo | null = null;
  endedAt: number | null = null;
  /** Shown progress, in tenths of a percent. */
  progress = 0;
  readonly command: CommandNode;
  readonly ordinal: number;
  readonly name: string;
  readonly undo: boolean;
  readonly startedAt: number;
  constructor(
    command: CommandNode,
    ordinal: number,
    name: string,
    undo: boolean,
    startedAt: number,
  ) {
    this.command = command;
    this.ordinal = ordinal;
    this.name = name;
    this.undo = undo;
    this.startedAt = startedAt;
  }
}

/** A command as the view keeps it, with the running sums of its parts. */
export class CommandNode {
  status: CommandStatus = 'pending';
  compensation: CompensationStatus = 'none';
  error: ErrorInfo | null = null;
  expectedTasks = 0;
  expectedChildren = 0;
  updatedAt = -Infinity;
  endedAt: number | null = null;
  /** Shown progress, in tenths of a percent. */
  progress = 0;
  readonly tasks = new Map<number, TaskNode>();
  /** Work tasks created, and Σ of their progress (tenths). */
  workTasks = 0;
  workSum = 0;
  /** Children counted here, and Σ of their progress (tenths). */
  children = 0;
  childSum = 0;
  /** Counted in its parent's sums (false until the parent is known). */
  attached = false;
  readonly id: number;
  readonly type: string;
  readonly parentId: number | null;
  readonly job: JobState;
  readonly startedAt: number;
  constructor(job: JobState, facts: CommandFacts) {
    this.job = job;
    this.id = facts.id;
    this.type = facts.type;
    this.parentId = facts.parentId;
    this.startedAt = facts.createdAt;
  }
}

/** One running job's tree. */
export class JobState {
  readonly commands = new Map<number, CommandNode>();
  /** Children whose parent is not known yet, by parent id. */
  readonly waiting = new Map<number, CommandNode[]>();
  readonly id: number;
  constructor(id: number) {
    this.id = id;
  }

  get root(): CommandNode | undefined {
    return this.commands.get(this.id);
  }
}
