/**
 * Runs user handlers (stages, end handlers, undo steps) and turns their outcome into state
 * changes: success completes the step together with the handler's buffered writes; a throw is
 * retried with exponential back-off up to the type's limit, then fails the command (or the
 * undo step) with the error kept. An asynchronous run that passes its time limit
 * (`HandlerHost.handlerTimeout`) counts as a throw (`HANDLER_TIMEOUT`); its late end is dropped.
 *
 * @module
 */
import { CocoError, ErrorCode, toErrorInfo, type ErrorInfo } from '../core/errors.js';
import { assertJson } from '../core/params.js';
import type { CommandStatus } from '../core/states.js';
import {
  EndCtx,
  FailureCtx,
  StageCtx,
  UndoCtx,
  type ClosedCtx,
  type ContextHost,
} from './contexts.js';
import type { LiveCommand, LiveUndo } from './live.js';
import type { Tracing } from './tracing.js';
import type { TimerHandle } from '../core/clock.js';
import type { Span } from '@opentelemetry/api';

/** What the handler runner needs from the coordinator. */
export interface HandlerHost extends ContextHost {
  readonly stopped: boolean;
  wake(c: LiveCommand): void;
  setStatus(c: LiveCommand, to: CommandStatus): void;
  abortCommand(c: LiveCommand, error: ErrorInfo): void;
  endCommand(c: LiveCommand, status: 'succeeded' | 'failed' | 'cancelled'): void;
  touchUndo(u: LiveUndo): void;
  applyWrites(c: LiveCommand, out: ClosedCtx): void;
  handlerStarted(): void;
  handlerEnded(): void;
  /** A number in [0, 1) for retry jitter (the engine's injectable source). */
  random(): number;
  /** How long one run of a handler of `c` in `phase` may take (ms), or null for no bound. */
  handlerTimeout(c: LiveCommand, phase: Phase): number | null;
  /** A run of a handler of `c` in `phase` passed its time limit (logged, counted). */
  handlerTimedOut(c: LiveCommand, phase: Phase, limitMs: number): void;
  /** Calls `fn` after `ms` (the engine's clock). */
  setTimer(ms: number, fn: () => void): TimerHandle;
  /** The engine's spans: each handler run is one, active while the handler runs. */
  readonly tracing: Tracing;
}

/** Which handler runs: a stage (`execute`, `next`), `onSuccess`, an undo step, `onFailure`. */
export type Phase = 'stage' | 'success' | 'undo' | 'failure';

function isPromise(value: unknown): value is Promise<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** The outcome of most handlers (they return nothing): one object, not one per run. */
const OK_VOID: Outcome = Object.freeze({ ok: true, value: undefined });

/** What a handler's context hands back when it closes: its buffered writes. */
type Out = ClosedCtx;
interface BaseCtxLike {
  close(): Out;
}

/**
 * What follows a handler's run, given its command, its context, the outcome and the buffered
 * writes. Module functions for the hot phases (a stage, `onSuccess`, `onFailure`), so that a run
 * makes no closure.
 */
type Then<T> = (host: HandlerHost, c: LiveCommand, ctx: T, outcome: Outcome, out: Out) => void;

/**
 * Runs a handler for `c`: marks the command busy while it runs, closes its context, and calls
 * `then` with the outcome and the buffered writes — unless the engine stopped meanwhile (the
 * handler's work is then replayed after the restart).
 */
function run<T extends BaseCtxLike>(
  host: HandlerHost,
  c: LiveCommand,
  phase: Phase,
  ctx: T,
  fn: (ctx: T) => unknown,
  then: Then<T>,
  undoName?: string,
): void {
  c.busy = true;
  host.handlerStarted();
  const span = host.tracing.handler(c, phase, undoName);
  if (span) host.tracing.active(span, () => invoke(host, c, phase, ctx, fn, span, then));
  else invoke(host, c, phase, ctx, fn, null, then);
}

/**
 * Calls `fn(ctx)` and hands the outcome on: at once if the handler is synchronous (no promise
 * and no closure is made: most handlers are, and this is the hot path), else when its promise
 * settles.
 */
function invoke<T extends BaseCtxLike>(
  host: HandlerHost,
  c: LiveCommand,
  phase: Phase,
  ctx: T,
  fn: (ctx: T) => unknown,
  span: Span | null,
  then: Then<T>,
): void {
  let value: unknown;
  try {
    value = fn(ctx);
  } catch (error) {
    finish(host, c, ctx, span, then, { ok: false, error });
    return;
  }
  if (isPromise(value)) {
    const limit = host.handlerTimeout(c, phase);
    // The first of the handler's end and its time limit (if any) decides; the other is dropped.
    let decided = false;
    const timer =
      limit === null
        ? null
        : host.setTimer(limit, () => {
            if (decided) return;
            decided = true;
            const error = handlerTimedOut(c, phase, limit);
            // Its signal tells the late handler to stop; a retry gets a fresh one.
            c.abort?.abort(error);
            c.abort = null;
            host.handlerTimedOut(c, phase, limit);
            finish(host, c, ctx, span, then, { ok: false, error });
          });
    const settle = (outcome: Outcome): void => {
      if (decided) return;
      decided = true;
      timer?.cancel();
      finish(host, c, ctx, span, then, outcome);
    };
    value.then(
      (v) => settle({ ok: true, value: v }),
      (error: unknown) => settle({ ok: false, error }),
    );
  } else finish(host, c, ctx, span, then, value === undefined ? OK_VOID : { ok: true, value });
}

/** The failure of a handler's run that passed its time limit (`HANDLER_TIMEOUT`, retryable). */
function handlerTimedOut(c: LiveCommand, phase: Phase, limitMs: number): CocoError {
  return new CocoError(
    ErrorCode.HandlerTimeout,
    `${PHASE_NAMES[phase]} of command ${c.id} (${c.type.name}) did not end within ${limitMs} ms ` +
      '(handlerTimeoutMs): its signal was aborted, and what it does from now on is dropped',
    { retryable: true, details: { commandId: c.id, phase, limitMs } },
  );
}

/** A handler's run ended with `outcome`: its span ends, its context closes, `then` follows. */
function finish<T extends BaseCtxLike>(
  host: HandlerHost,
  c: LiveCommand,
  ctx: T,
  span: Span | null,
  then: Then<T>,
  outcome: Outcome,
): void {
  if (span) host.tracing.handlerEnded(span, outcome);
  const out = ctx.close();
  c.busy = false;
  host.handlerEnded();
  if (!host.stopped) then(host, c, ctx, outcome, out);
}

/** A stage without a handler (a serial command's `next` left out) does nothing. */
function noHandler(): undefined {
  return undefined;
}

/** Runs the current stage's handler (`execute` or `next`). */
export function runStage(host: HandlerHost, c: LiveCommand): void {
  const handler = c.stage === 0 ? c.type.handlers.execute : c.type.handlers.next;
  const ctx = new StageCtx(host, c, c.attempts + 1);
  run(host, c, 'stage', ctx, handler ?? noHandler, stageRan);
}

/** A stage's handler ran: the stage completes (with its writes), or the failure is handled. */
function stageRan(
  host: HandlerHost,
  c: LiveCommand,
  ctx: StageCtx,
  outcome: Outcome,
  out: Out,
): void {
  if (outcome.ok) {
    host.applyWrites(c, out);
    c.stageCompleted(ctx.createdWork);
    // setStatus marks the command changed too (one clock reading instead of two)
    if (c.status === 'pending') host.setStatus(c, 'waiting');
    else host.touch(c);
  } else {
    failed(host, c, outcome.error, 'stage', null);
  }
  host.wake(c);
}

/** Runs `onSuccess` (if any) and ends the command as succeeded. */
export function runSuccess(host: HandlerHost, c: LiveCommand): void {
  const handler = c.type.handlers.onSuccess;
  if (!handler) {
    host.endCommand(c, 'succeeded');
    return;
  }
  const ctx = new EndCtx(host, c, c.attempts + 1);
  run(host, c, 'success', ctx, handler, successRan);
}

/** `onSuccess` ran: the command ends succeeded with its result, or the failure is handled. */
function successRan(
  host: HandlerHost,
  c: LiveCommand,
  _ctx: EndCtx,
  result: Outcome,
  out: Out,
): void {
  let outcome = result;
  if (outcome.ok && outcome.value !== undefined) {
    try {
      assertJson(outcome.value, `command ${c.id} (${c.type.name}): the result of onSuccess`);
    } catch (error) {
      outcome = { ok: false, error };
    }
  }
  if (outcome.ok) {
    host.applyWrites(c, out);
    c.setResult(outcome.value ?? null);
    host.endCommand(c, 'succeeded');
  } else {
    failed(host, c, outcome.error, 'success', null);
    host.wake(c);
  }
}

/** Runs one undo step. */
export function runUndo(host: HandlerHost, c: LiveCommand, u: LiveUndo): void {
  const handler = c.type.handlers.undo[u.name];
  const ctx = new UndoCtx(host, c, c.attempts + 1, u.ordinal);
  const fn = handler
    ? (x: UndoCtx) => handler(x, u.data ?? undefined)
    : () => {
        throw new CocoError(
          ErrorCode.InvalidDefinition,
          `command type "${c.type.name}" has no undo handler "${u.name}" any more`,
        );
      };
  const then = (
    _h: HandlerHost,
    _c: LiveCommand,
    _ctx: UndoCtx,
    outcome: Outcome,
    out: Out,
  ): void => {
    if (outcome.ok) {
      host.applyWrites(c, out);
      u.finish('done', null);
      host.touchUndo(u);
      c.resetAttempts();
      host.touch(c);
    } else {
      failed(host, c, outcome.error, 'undo', u);
    }
    host.wake(c);
  };
  run(host, c, 'undo', ctx, fn, then, u.name);
}

/** Runs `onFailure` (if any) and ends the command as failed or cancelled. */
export function runFailure(host: HandlerHost, c: LiveCommand): void {
  const cancelled = c.cancelRequested && c.error?.code === ErrorCode.Cancelled;
  const status = cancelled ? 'cancelled' : 'failed';
  // A command whose parameters could not be loaded runs it too: it gets its stored data, and
  // reading its parameters throws (see contexts.ts).
  const handler = c.type.handlers.onFailure;
  if (!handler) {
    host.endCommand(c, status);
    return;
  }
  const error = c.error ?? { code: ErrorCode.HandlerFailed, message: 'failed' };
  const ctx = new FailureCtx(host, c, c.attempts + 1, error, cancelled);
  run(host, c, 'failure', ctx, handler, failureRan);
}

/** `onFailure` ran: the command ends failed or cancelled, or the failure is handled. */
function failureRan(
  host: HandlerHost,
  c: LiveCommand,
  ctx: FailureCtx,
  outcome: Outcome,
  out: Out,
): void {
  // As decided before the handler ran (the context keeps it).
  const status = ctx.cancelled ? 'cancelled' : 'failed';
  if (outcome.ok) {
    host.applyWrites(c, out);
    host.endCommand(c, status);
  } else if (failed(host, c, outcome.error, 'failure', null)) {
    host.endCommand(c, status);
  } else {
    host.wake(c);
  }
}

const PHASE_NAMES: Record<Phase, string> = {
  stage: 'stage handler',
  success: 'onSuccess',
  undo: 'undo step',
  failure: 'onFailure',
};

/**
 * Records a handler failure: schedules a retry, or gives up. Returns true when it gave up and
 * the caller must finish the step itself (only for `onFailure`, which ends the command anyway).
 */
function failed(
  host: HandlerHost,
  c: LiveCommand,
  error: unknown,
  phase: Phase,
  u: LiveUndo | null,
): boolean {
  const info = toErrorInfo(error);
  const retryable = !(error instanceof CocoError) || error.retryable;
  const attempt = c.attempts + 1;
  const { maxAttempts, backoffMs, maxBackoffMs } = c.type.retry;
  const what =
    phase === 'stage'
      ? `${c.stage === 0 ? 'execute' : `next (stage ${c.stage})`}`
      : phase === 'undo'
        ? `undo step "${u?.name}"`
        : PHASE_NAMES[phase];
  // A stage interrupted by cancellation or a fail-fast failure is not retried: abort takes over.
  if (
    phase === 'stage' &&
    (c.cancelRequested || (c.failedWork > 0 && c.failurePolicy === 'fail-fast'))
  ) {
    c.attemptFailed(info, null);
    host.touch(c);
    return false;
  }
  if (retryable && attempt < maxAttempts) {
    // Small jitter spreads retries of many commands failing on one shared cause.
    const delay =
      Math.min(maxBackoffMs, backoffMs * 2 ** (attempt - 1)) * (0.8 + host.random() * 0.4);
    c.attemptFailed(info, host.now() + Math.round(delay));
    host.touch(c);
    host.log.warn(
      { commandId: c.id, type: c.type.name, attempt, error: info },
      `${what} failed; retrying`,
    );
    return false;
  }
  const final: ErrorInfo = {
    code: error instanceof CocoError ? info.code : ErrorCode.HandlerFailed,
    message: `${what} of command ${c.id} (${c.type.name}) failed after ${attempt} attempt(s): ${info.message}`,
    details: { cause: info, attempts: attempt },
  };
  host.log.error({ commandId: c.id, type: c.type.name, error: final }, `${what} failed for good`);
  // Given up: the failure is kept (lastError), no attempt is due any more.
  c.gaveUp(info);
  host.touch(c);
  switch (phase) {
    case 'stage':
    case 'success':
      host.abortCommand(c, final);
      return false;
    case 'undo':
      if (u) {
        u.finish('failed', final);
        host.touchUndo(u);
      }
      return false;
    case 'failure':
      return true;
  }
}
