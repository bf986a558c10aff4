/**
 * What a command should do next: a pure function of its live state and the time. The engine
 * loop calls it whenever something about a command changes and carries out the answer.
 *
 * @module
 */
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { ChildState, LiveCommand, LiveUndo } from './live.js';
import { isUnknownType } from './unloadable.js';

/** The next step of a command. */
export type Action =
  /** Nothing to do until something changes. */
  | { readonly kind: 'none' }
  /** A handler retry is due later. */
  | { readonly kind: 'wait-until'; readonly at: number }
  /** Run the current stage's handler (`execute` for stage 0, else `next`). */
  | { readonly kind: 'run-stage' }
  /** Serial: the stage's work all succeeded; open the next stage. */
  | { readonly kind: 'next-stage' }
  /** All work succeeded: run `onSuccess` and end. */
  | { readonly kind: 'succeed' }
  /** Failure or cancellation decided: stop tasks, cancel children. */
  | { readonly kind: 'abort'; readonly error: ErrorInfo }
  /** Nothing left running: start compensating. */
  | { readonly kind: 'begin-compensation' }
  /** Run this undo step. */
  | { readonly kind: 'undo'; readonly undo: LiveUndo }
  /** Ask this succeeded child to compensate itself. */
  | { readonly kind: 'compensate-child'; readonly child: ChildState }
  /** Compensation finished (with the error that stopped it, if any). */
  | { readonly kind: 'compensation-done'; readonly error: ErrorInfo | null }
  /** Run `onFailure` and end as failed or cancelled. */
  | { readonly kind: 'finish-failure' };

const NONE: Action = { kind: 'none' };
const RUN_STAGE: Action = { kind: 'run-stage' };
const NEXT_STAGE: Action = { kind: 'next-stage' };
const SUCCEED: Action = { kind: 'succeed' };
const BEGIN_COMPENSATION: Action = { kind: 'begin-compensation' };
const FINISH_FAILURE: Action = { kind: 'finish-failure' };

/** The error of a cancelled command. */
export function cancelledError(): ErrorInfo {
  return new CocoError(ErrorCode.Cancelled, 'the command was cancelled').toInfo();
}

function workFailure(c: LiveCommand): ErrorInfo {
  const first = c.firstWorkError;
  const failedChild = c.children?.find((ch) => ch.ended && ch.status !== 'succeeded');
  const failedTask = c.tasks.find((t) => t.isWork && t.ended && t.status !== 'succeeded');
  if (failedTask && (!failedChild || first === failedTask.error)) {
    return {
      code: failedTask.error?.code ?? ErrorCode.TaskFailed,
      message: `task ${failedTask.agentTaskId} (${failedTask.verb} on ${failedTask.agentId}) ${failedTask.status}: ${
        failedTask.error?.message ?? 'no reason given'
      }`,
      details: {
        taskId: failedTask.agentTaskId,
        ordinal: failedTask.ordinal,
        cause: failedTask.error,
      },
    };
  }
  if (failedChild) {
    return {
      code: ErrorCode.ChildFailed,
      message: `child ${failedChild.id} (${failedChild.type}) ${failedChild.status}: ${failedChild.error?.message ?? 'no reason given'}`,
      details: { childId: failedChild.id, cause: failedChild.error },
    };
  }
  return first ?? { code: ErrorCode.HandlerFailed, message: 'work failed' };
}

/**
 * Whether the command has compensation to do or to report: undo steps or succeeded children left
 * to compensate, or a child whose own compensation failed (a failed child compensates itself
 * before it ends; its parent's compensation must not then say all was undone).
 */
export function hasCompensationWork(c: LiveCommand): boolean {
  if (c.undo?.some((u) => u.status === 'recorded')) return true;
  return (
    c.children?.some(
      (ch) =>
        (ch.status === 'succeeded' && ch.compensation === 'none') ||
        (ch.ended && ch.compensation === 'failed'),
    ) ?? false
  );
}

function nextCompensation(c: LiveCommand): Action {
  // Entries run in reverse journal order; the first one (from the end) not yet done decides.
  let bestSeq = -1;
  let bestUndo: LiveUndo | null = null;
  let bestChild: ChildState | null = null;
  for (const u of c.undo ?? []) {
    if (u.status !== 'done' && u.seq > bestSeq) {
      bestSeq = u.seq;
      bestUndo = u;
      bestChild = null;
    }
  }
  for (const ch of c.children ?? []) {
    // Succeeded children are compensated by their parent; any ended child whose compensation
    // failed (its own, as it failed, or the one its parent asked for) stops the parent's there.
    const pending = ch.status === 'succeeded' && ch.compensation !== 'compensated';
    if ((pending || (ch.ended && ch.compensation === 'failed')) && ch.seq > bestSeq) {
      bestSeq = ch.seq;
      bestChild = ch;
      bestUndo = null;
    }
  }
  if (bestUndo) {
    if (bestUndo.status === 'failed')
      return {
        kind: 'compensation-done',
        error: compensationError(c, bestUndo.error, `undo step "${bestUndo.name}"`),
      };
    if (isUnknownType(c.type)) {
      // No code of its type runs here: the step cannot run, and compensation stops at it.
      return {
        kind: 'compensation-done',
        error: compensationError(
          c,
          {
            code: ErrorCode.CommandUnloadable,
            message: `not run: no code of command type "${c.type.name}" runs here (${c.loadError?.message ?? 'unknown type'})`,
          },
          `undo step "${bestUndo.name}"`,
        ),
      };
    }
    return { kind: 'undo', undo: bestUndo };
  }
  if (bestChild) {
    if (bestChild.compensation === 'none') return { kind: 'compensate-child', child: bestChild };
    if (bestChild.compensation === 'failed') {
      return {
        kind: 'compensation-done',
        error: compensationError(
          c,
          bestChild.compensationError ?? bestChild.error,
          `child ${bestChild.id} (${bestChild.type}), whose compensation failed`,
        ),
      };
    }
    return NONE; // the child is compensating
  }
  return { kind: 'compensation-done', error: null };
}

function compensationError(c: LiveCommand, cause: ErrorInfo | null, what: string): ErrorInfo {
  return {
    code: ErrorCode.CompensationFailed,
    message: `compensation of command ${c.id} stopped at ${what}: ${cause?.message ?? 'failed'}`,
    details: { cause },
  };
}

function compensationStep(c: LiveCommand, now: number): Action {
  const action = nextCompensation(c);
  if (action.kind === 'undo' && c.nextAttemptAt !== null && c.nextAttemptAt > now)
    return { kind: 'wait-until', at: c.nextAttemptAt };
  return action;
}

/**
 * Decides the next step of a command. Pure: reads `c` and `now`, changes nothing. `now` is
 * compared only with `c.deadlineAt` and `c.nextAttemptAt`: when both are null any value will do
 * (the coordinator then reads no clock).
 */
export function decide(c: LiveCommand, now: number): Action {
  // A held command (it could not be loaded) does nothing until a cancel ends it.
  if (c.busy || c.held) return NONE;
  if (c.terminal) return c.compensation === 'compensating' ? compensationStep(c, now) : NONE;
  switch (c.status) {
    case 'pending':
    case 'waiting': {
      if (c.cancelRequested) return { kind: 'abort', error: cancelledError() };
      if (c.deadlineAt !== null && now >= c.deadlineAt) {
        return {
          kind: 'abort',
          error: new CocoError(
            ErrorCode.CommandTimeout,
            `command ${c.id} ran past its lifetime`,
          ).toInfo(),
        };
      }
      if (c.failedWork > 0 && c.failurePolicy === 'fail-fast')
        return { kind: 'abort', error: workFailure(c) };
      if (!c.stageDone) {
        if (c.nextAttemptAt !== null && c.nextAttemptAt > now)
          return { kind: 'wait-until', at: c.nextAttemptAt };
        return RUN_STAGE;
      }
      if (c.openTasks + c.openChildren > 0) return NONE;
      if (c.failedWork > 0) return { kind: 'abort', error: workFailure(c) };
      if (c.childMode === 'serial' && !c.chainDone) {
        // Stage k is the (k+1)-th: opening one more would pass the type's limit.
        if (c.stage + 1 >= c.type.maxStages) {
          return {
            kind: 'abort',
            error: new CocoError(
              ErrorCode.StageLimitExceeded,
              `command ${c.id} (${c.type.name}) ran ${c.stage + 1} stages, its limit ` +
                `(maxStages): does its next handler ever create nothing?`,
            ).toInfo(),
          };
        }
        return NEXT_STAGE;
      }
      const tasks = c.workTaskCount();
      if (tasks < c.expectedTasks || c.childCount < c.expectedChildren) {
        return {
          kind: 'abort',
          error: new CocoError(
            ErrorCode.ExpectedCountUnmet,
            `command ${c.id} declared ${c.expectedTasks} task(s) and ${c.expectedChildren} child(ren) ` +
              `but its stages created ${tasks} and ${c.childCount}`,
          ).toInfo(),
        };
      }
      if (c.nextAttemptAt !== null && c.nextAttemptAt > now)
        return { kind: 'wait-until', at: c.nextAttemptAt };
      return SUCCEED;
    }
    case 'aborting':
      if (c.openTasks + c.openChildren + c.openUndoTasks > 0) return NONE;
      if (hasCompensationWork(c)) return BEGIN_COMPENSATION;
      if (c.nextAttemptAt !== null && c.nextAttemptAt > now)
        return { kind: 'wait-until', at: c.nextAttemptAt };
      return FINISH_FAILURE;
    case 'compensating':
      if (c.compensation === 'compensating') return compensationStep(c, now);
      if (c.nextAttemptAt !== null && c.nextAttemptAt > now)
        return { kind: 'wait-until', at: c.nextAttemptAt };
      return FINISH_FAILURE;
    default:
      return NONE;
  }
}
