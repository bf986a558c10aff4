/**
 * One task on an in-process agent (`./agent.ts`): its record (which is also its verb's context),
 * the copy of it handed out, what is kept of its history after clears, and how a verb's outcome
 * becomes the task's result or error.
 *
 * @module
 */
import { CocoError, ErrorCode, type ErrorInfo } from '../../core/errors.js';
import type { VerbContext } from '../../verbs/model.js';

/** A state a task ends in. */
export type EndedState = 'succeeded' | 'failed' | 'cancelled';

/** What happened to one task id over the agent's life, kept after clears. */
export interface TaskHistory {
  /**
   * Effective starts: more than 1 only if the agent lost the task (a fault) or forgot its used
   * id (past the bounds), and it was started again.
   */
  readonly starts: number;
  readonly duplicateStarts: number;
  readonly clears: number;
  /** The state its last run ended in, if it ended. */
  readonly endedState?: EndedState;
  /** Whether {@link AgentFaults.vanish} or {@link AgentFaults.forgetAll} dropped it. */
  readonly vanished: boolean;
}

/** A copy of one task's record. */
export interface TaskSnapshot {
  readonly taskId: string;
  readonly verb: string;
  readonly args: unknown;
  readonly state: 'running' | EndedState;
  readonly progress: number;
  readonly result: unknown;
  readonly error: ErrorInfo | undefined;
  /** Clock time of the start. */
  readonly startedAt: number;
  /** Clock time of the end; `undefined` while running. */
  readonly endedAt: number | undefined;
}

const CANCELLED: ErrorInfo = Object.freeze({
  code: ErrorCode.Cancelled,
  message: 'task stopped by request',
});

/** @internal One task. It is also the verb's context, so a start allocates no context object. */
export class TaskRecord implements VerbContext {
  state: 'running' | EndedState = 'running';
  pct = 0;
  result: unknown = undefined;
  error: ErrorInfo | undefined = undefined;
  /**
   * Clock time of the end; -Infinity while running. A double from the start: a small integer
   * replaced by a timestamp later would change every record's map once (V8), deoptimizing the
   * agent's code that had seen one.
   */
  endedAt = -Infinity;
  controller: AbortController | undefined = undefined;
  stopHook: (() => void) | undefined = undefined;

  readonly taskId: string;
  readonly verb: string;
  readonly args: unknown;
  readonly startedAt: number;

  constructor(taskId: string, verb: string, args: unknown, startedAt: number) {
    this.taskId = taskId;
    this.verb = verb;
    this.args = args;
    this.startedAt = startedAt;
  }

  /** Created on first use: most verbs never look at it. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.state === 'cancelled')
        this.controller.abort(new CocoError(CANCELLED.code, CANCELLED.message));
    }
    return this.controller.signal;
  }

  progress(percent: number): void {
    if (this.state === 'running' && Number.isFinite(percent))
      this.pct = Math.min(100, Math.max(0, percent));
  }

  onStop(listener: () => void): void {
    if (this.state === 'cancelled') listener();
    else if (this.state === 'running') {
      const previous = this.stopHook;
      this.stopHook =
        previous === undefined
          ? listener
          : () => {
              previous();
              listener();
            };
    }
  }

  /** Marks the task cancelled (the caller checked it runs), aborts its signal, runs its stop hook. */
  cancel(now: number): void {
    this.state = 'cancelled';
    this.error = CANCELLED;
    this.endedAt = now;
    this.controller?.abort(new CocoError(CANCELLED.code, CANCELLED.message));
    const hook = this.stopHook;
    this.stopHook = undefined;
    try {
      hook?.();
    } catch (error) {
      // A verb's broken stop hook must not break the agent's stop loop; surface it instead.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}

/** @internal The {@link TaskHistory} of one task id, as the agent updates it. */
export class HistoryEntry implements TaskHistory {
  starts = 0;
  duplicateStarts = 0;
  clears = 0;
  endedState: EndedState | undefined = undefined;
  vanished = false;
}

/** @internal Whether a verb returned a promise (or any thenable) rather than its result. */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * @internal A verb's throw as the task's error: a {@link CocoError} keeps its code, anything
 * else is `TASK_FAILED`.
 */
export function verbError(error: unknown): ErrorInfo {
  if (error instanceof CocoError) return error.toInfo();
  if (error instanceof Error) return { code: ErrorCode.TaskFailed, message: error.message };
  const message = typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error));
  return { code: ErrorCode.TaskFailed, message };
}
