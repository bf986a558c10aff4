/**
 * Progress roll-up: pure functions from a step's inputs to the percentage shown for it.
 *
 * - A task shows what its agent reported while it runs, and 100 once it succeeded. A task that
 *   failed or was cancelled keeps the value it had.
 * - A command is weighted by its declared counts: (Σ work-task progress + Σ child progress) /
 *   (max(expectedTasks, work tasks created) + max(expectedChildren, children created)), so a
 *   command that declared 4 tasks and has one done shows 25, not 100. Undo tasks (compensation)
 *   do not count. No declared or created work gives 0.
 * - Only success shows 100: anything else is capped at {@link MAX_UNFINISHED}, so a running
 *   command whose work is all done, or a failed one, never reads as complete.
 * - Shown values never go backwards while a step runs (a new child beyond the declared count
 *   grows the denominator; the display holds its value instead of dropping).
 *
 * Values have one decimal, rounded down, so a value is never shown ahead of the work done.
 *
 * @module
 */
import type { CommandStatus, TaskStatus } from '../core/states.js';

/** The highest value shown for a step that has not succeeded. */
export const MAX_UNFINISHED = 99.9;

/**
 * Rounds down to one decimal and clamps to 0..100 (NaN gives 0). The small epsilon absorbs
 * binary floating-point error (29.999999999 is 30, not 29.9).
 */
export function toPercent(value: number): number {
  if (!Number.isFinite(value)) return value === Infinity ? 100 : 0;
  const tenths = Math.floor(value * 10 + 1e-6);
  return Math.min(1000, Math.max(0, tenths)) / 10;
}

/**
 * A task's shown progress.
 * @param previous - the value shown so far (0 for a new task)
 * @param reported - the agent's latest report, if any
 */
export function taskProgress(status: TaskStatus, previous: number, reported?: number): number {
  if (status === 'succeeded') return 100;
  const prev = Math.min(MAX_UNFINISHED, toPercent(previous));
  if (status === 'failed' || status === 'cancelled' || reported === undefined) return prev;
  return Math.max(prev, Math.min(MAX_UNFINISHED, toPercent(reported)));
}

/** What {@link rollUp} needs of a command: its counts and the sums of its parts' progress. */
export interface RollUpInput {
  readonly status: CommandStatus;
  /** The value shown so far (0 for a new command). */
  readonly previous: number;
  readonly expectedTasks: number;
  readonly expectedChildren: number;
  /** Work tasks created (undo tasks excluded). */
  readonly workTasks: number;
  /** Σ of their progress, in percent. */
  readonly workTaskSum: number;
  /** Children created. */
  readonly children: number;
  /** Σ of the children's progress, in percent. */
  readonly childSum: number;
}

/** The weighted progress of a command's work, before monotony and status rules. */
export function weightedProgress(input: Omit<RollUpInput, 'status' | 'previous'>): number {
  const denominator =
    Math.max(input.expectedTasks, input.workTasks) +
    Math.max(input.expectedChildren, input.children);
  if (denominator <= 0) return 0;
  return toPercent((input.workTaskSum + input.childSum) / denominator);
}

/** A command's shown progress. */
export function rollUp(input: RollUpInput): number {
  if (input.status === 'succeeded') return 100;
  const computed = Math.min(MAX_UNFINISHED, weightedProgress(input));
  return Math.max(Math.min(MAX_UNFINISHED, toPercent(input.previous)), computed);
}

/** A task as {@link commandProgress} sees it. */
export interface TaskPart {
  readonly progress: number;
  /** Run by an undo step: does not count. */
  readonly undo: boolean;
}

/**
 * A command's shown progress from the lists of its parts (convenience over {@link rollUp}; the
 * monitor keeps running sums instead, to stay O(1) per change on wide trees).
 */
export function commandProgress(
  status: CommandStatus,
  previous: number,
  expected: { readonly tasks: number; readonly children: number },
  tasks: readonly TaskPart[],
  children: readonly number[],
): number {
  let workTasks = 0;
  let workTaskSum = 0;
  for (const t of tasks) {
    if (t.undo) continue;
    workTasks++;
    workTaskSum += t.progress;
  }
  const childSum = children.reduce((sum, p) => sum + p, 0);
  return rollUp({
    status,
    previous,
    expectedTasks: expected.tasks,
    expectedChildren: expected.children,
    workTasks,
    workTaskSum,
    children: children.length,
    childSum,
  });
}
