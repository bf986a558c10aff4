/**
 * The built-in verbs, offered by every agent coco ships (the in-process agents and the
 * reference agent): `noop`, `echo`, `sleep` and `fail` — used by tests, benchmarks and examples.
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, ErrorCode } from '../core/errors.js';
import { parseVerbArgs as parseArgs, type Verb, type VerbRegistry } from './model.js';

function cancelledError(): CocoError {
  return new CocoError(ErrorCode.Cancelled, 'task stopped by request');
}

/** `noop`: returns its arguments (or `null`) at once; the task ends inside `startTasks`. */
const noop: Verb = (args) => args ?? null;

/**
 * `echo`: returns its arguments (or `null`) on the next macrotask: the smallest verb that
 * really runs asynchronously (it ends after `startTasks` has answered).
 */
const echo: Verb = (args, ctx) =>
  new Promise((resolve, reject) => {
    const timer = setImmediate(() => resolve(args ?? null));
    ctx.onStop(() => {
      clearImmediate(timer);
      reject(cancelledError());
    });
  });

const sleepArgs = z.object({
  ms: z.number().finite().nonnegative(),
  result: z.unknown().optional(),
});

/**
 * `sleep` reports progress this many times per task: enough for a poller to see it move, few
 * enough that thousands of sleeping tasks do not flood the timers.
 */
const SLEEP_PROGRESS_STEPS = 10;
/**
 * Shortest progress step: shorter sleeps end before a poll would see a report, so their
 * intermediate wake-ups would be pure overhead.
 */
const SLEEP_MIN_PROGRESS_STEP_MS = 20;
/** Node fires longer timers after 1 ms (the delay overflows 32 bits), so steps stay below. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * `sleep`: `{ ms, result? }`. Waits `ms` milliseconds (real timers, one at a time per task),
 * reporting progress on the way, then returns `result` (or `null`). A stop ends it at once.
 */
const sleep: Verb = (args, ctx) => {
  const { ms, result } = parseArgs('sleep', sleepArgs, args);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const step = Math.min(
      Math.max(ms / SLEEP_PROGRESS_STEPS, SLEEP_MIN_PROGRESS_STEP_MS),
      MAX_TIMER_MS,
    );
    const wake = (): void => {
      const elapsed = Date.now() - started;
      if (elapsed >= ms) return resolve(result ?? null);
      ctx.progress((elapsed / ms) * 100);
      timer = setTimeout(wake, Math.min(step, ms - elapsed));
    };
    let timer = setTimeout(wake, Math.min(step, ms));
    ctx.progress(0);
    ctx.onStop(() => {
      clearTimeout(timer);
      reject(cancelledError());
    });
  });
};

const failArgs = z
  .object({
    message: z.string().optional(),
    code: z.string().min(1).optional(),
    details: z.unknown().optional(),
  })
  .optional();

/**
 * `fail`: `{ message?, code?, details? }`. Fails the task (asynchronously, so even
 * `code: 'TASK_REJECTED'` gives a failed task, not a refused start) with a {@link CocoError}
 * of that code (default `TASK_FAILED`).
 */
const fail: Verb = (args) => {
  const parsed = parseArgs('fail', failArgs, args) ?? {};
  const error = new CocoError(
    parsed.code ?? ErrorCode.TaskFailed,
    parsed.message ?? 'failed on purpose',
    {
      details: parsed.details,
    },
  );
  return Promise.reject(error);
};

/** The built-in verbs: `noop`, `echo`, `sleep` and `fail`. */
export const builtinVerbs: VerbRegistry = Object.freeze({ noop, echo, sleep, fail });
