/**
 * The state machines, as explicit transition tables checked in one function.
 *
 * The engine may make several transitions between two commits, so the store sees only some of
 * them. Each table is therefore closed under composition: if `a -> b` and `b -> c` are legal,
 * so is `a -> c`. A property test checks that closure, and the store refuses anything else.
 *
 * @module
 */
import { IllegalTransitionError } from './errors.js';

/**
 * Lifecycle of a command.
 * - `pending`: stored; its execute stage has not finished.
 * - `waiting`: a stage finished; waiting for its tasks and children (or the next stage).
 * - `aborting`: failure or cancellation decided; stopping its tasks and cancelling its children.
 * - `compensating`: running its undo steps (and its children's) in reverse order.
 * - `succeeded`, `failed`, `cancelled`: ended. A command ends exactly once.
 */
export const COMMAND_STATUSES = [
  'pending',
  'waiting',
  'aborting',
  'compensating',
  'succeeded',
  'failed',
  'cancelled',
] as const;
/** See {@link COMMAND_STATUSES}. */
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

/** Statuses in which a command has ended. */
export const TERMINAL_COMMAND_STATUSES: ReadonlySet<CommandStatus> = new Set([
  'succeeded',
  'failed',
  'cancelled',
]);

/** Whether a command in this status has ended. */
export function isTerminal(status: CommandStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}

const COMMAND_TRANSITIONS: Readonly<Record<CommandStatus, readonly CommandStatus[]>> = {
  pending: ['waiting', 'aborting', 'compensating', 'succeeded', 'failed', 'cancelled'],
  waiting: ['aborting', 'compensating', 'succeeded', 'failed', 'cancelled'],
  aborting: ['compensating', 'failed', 'cancelled'],
  compensating: ['failed', 'cancelled'],
  succeeded: [],
  failed: [],
  cancelled: [],
};

/**
 * Compensation of a command's own work (its undo steps and its succeeded children).
 * A succeeded command keeps its status when a later failure of an ancestor compensates it.
 */
export const COMPENSATION_STATUSES = ['none', 'compensating', 'compensated', 'failed'] as const;
/** See {@link COMPENSATION_STATUSES}. */
export type CompensationStatus = (typeof COMPENSATION_STATUSES)[number];

const COMPENSATION_TRANSITIONS: Readonly<
  Record<CompensationStatus, readonly CompensationStatus[]>
> = {
  none: ['compensating', 'compensated', 'failed'],
  compensating: ['compensated', 'failed'],
  compensated: [],
  failed: [],
};

/**
 * Lifecycle of an async task, as the engine records it.
 * - `queued`: the intent is stored, but its agent (or the agent's limit for its verb) is at its
 *   limit of running tasks: it waits in the engine, not on the agent, until admitted
 *   (engine/admission.ts). A queued task was never sent to its agent.
 * - `created`: the intent is stored (and admitted); the agent has not confirmed the start.
 * - `running`: the agent accepted it.
 * - `succeeded`, `failed`, `cancelled`: ended on the agent (or failed by the engine: vanished,
 *   deadline, rejected). Clearing on the agent is tracked separately.
 */
export const TASK_STATUSES = [
  'queued',
  'created',
  'running',
  'succeeded',
  'failed',
  'cancelled',
] as const;
/** See {@link TASK_STATUSES}. */
export type TaskStatus = (typeof TASK_STATUSES)[number];

const TASK_TRANSITIONS: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  queued: ['created', 'running', 'succeeded', 'failed', 'cancelled'],
  created: ['running', 'succeeded', 'failed', 'cancelled'],
  running: ['succeeded', 'failed', 'cancelled'],
  succeeded: [],
  failed: [],
  cancelled: [],
};

/** Whether a task in this status has ended. */
export function isTaskEnded(status: TaskStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}

/** An undo step: recorded, then done or failed (after its retries). */
export const UNDO_STATUSES = ['recorded', 'done', 'failed'] as const;
/** See {@link UNDO_STATUSES}. */
export type UndoStatus = (typeof UNDO_STATUSES)[number];

const UNDO_TRANSITIONS: Readonly<Record<UndoStatus, readonly UndoStatus[]>> = {
  recorded: ['done', 'failed'],
  done: [],
  failed: [],
};

/** The machines, by name, for checks and for tests that walk every table. */
export const MACHINES = {
  command: COMMAND_TRANSITIONS,
  compensation: COMPENSATION_TRANSITIONS,
  task: TASK_TRANSITIONS,
  undo: UNDO_TRANSITIONS,
} as const;

/** Names of the state machines in {@link MACHINES}. */
export type MachineName = keyof typeof MACHINES;

/** Whether `from -> to` is legal in `machine`. Staying in the same state is always legal. */
export function canTransition(machine: MachineName, from: string, to: string): boolean {
  if (from === to) return true;
  const table = MACHINES[machine] as Readonly<Record<string, readonly string[]>>;
  return table[from]?.includes(to) ?? false;
}

/** Throws {@link IllegalTransitionError} unless `from -> to` is legal in `machine`. */
export function assertTransition(
  machine: MachineName,
  from: string,
  to: string,
  subject: string,
): void {
  if (!canTransition(machine, from, to))
    throw new IllegalTransitionError(machine, from, to, subject);
}
