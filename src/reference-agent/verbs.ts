/**
 * Verbs of the reference agent (`coco agent`): what a verb is, the built-in ones, loading
 * plug-in modules, and running one verb for one task.
 *
 * A verb is a plain function of its arguments and an {@link AgentVerbContext}. What it returns
 * (or its promise resolves to) becomes the task's result, what it throws (or rejects with)
 * becomes the task's error. A verb that throws a {@link CocoError} with code `TASK_REJECTED`
 * *synchronously* refuses the start instead (bad arguments): the task then does not exist.
 *
 * The context is a superset of the in-process agent's {@link VerbContext}, so verbs written for
 * `InProcessAgent` (including its built-ins) run here unchanged.
 *
 * @module
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FastifyBaseLogger } from 'fastify';
import { builtinVerbs as sharedBuiltinVerbs } from '../verbs/builtins.js';
import type {
  Verb as ModelVerb,
  VerbContext,
  VerbRegistry as ModelVerbRegistry,
} from '../verbs/model.js';
import type { Logger } from '../core/command-type.js';
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';

export { rejectStart } from '../verbs/model.js';

/** The agent's logger type (pino's interface, as fastify has it); verbs get one bound to their task. */
export type AgentLogger = FastifyBaseLogger;

const LOG_METHODS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function isAgentLogger(logger: Logger | AgentLogger): logger is AgentLogger {
  const l = logger as unknown as Record<string, unknown>;
  return typeof l.child === 'function' && LOG_METHODS.every((m) => typeof l[m] === 'function');
}

/**
 * The logger as the agent needs it: a pino logger (anything with `child`, `level` and every
 * level method, which fastify requires) is used as it is; coco's minimal {@link Logger} is
 * wrapped (`fatal` goes to `error`, `trace` to `debug`, child bindings into each entry).
 */
export function toAgentLogger(logger: Logger | AgentLogger): AgentLogger {
  return isAgentLogger(logger) ? logger : minimalLogger(logger, {});
}

function minimalLogger(target: Logger, bindings: object): AgentLogger {
  const at =
    (method: 'debug' | 'info' | 'warn' | 'error') =>
    (first: unknown, second?: unknown): void => {
      if (typeof first === 'string') target[method]({ ...bindings }, first);
      else {
        const fields = typeof first === 'object' && first !== null ? first : { value: first };
        target[method]({ ...bindings, ...fields }, typeof second === 'string' ? second : undefined);
      }
    };
  return {
    level: 'info',
    fatal: at('error'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('debug'),
    silent: () => undefined,
    child: (more: object) => minimalLogger(target, { ...bindings, ...more }),
  };
}

/** What a running verb gets besides its arguments. */
export interface AgentVerbContext extends VerbContext {
  /** Aborted when the task is stopped (it is already `cancelled` then) or the agent shuts down. */
  readonly signal: AbortSignal;
  /** Reports progress, 0..100 (clamped). Ignored once the task has ended. */
  progress(percent: number): void;
  /** The task's id, as chosen by the engine. */
  readonly taskId: string;
  /** The agent's logger with `taskId` and `verb` bound. */
  readonly log: AgentLogger;
  /** The id of the agent running the task. */
  readonly agentId: string;
  /**
   * The root folder of the agent's storage (`coco agent --storage-root`, or
   * {@link AgentOptions.storageRoot}), absolute; `undefined` when the agent was given none.
   * Plug-in verbs that work on files keep beneath it.
   */
  readonly storageRoot: string | undefined;
}

/** Who runs a verb: the agent's facts a {@link VerbRun} passes on to each verb. */
export interface VerbHost {
  readonly agentId: string;
  readonly storageRoot: string | undefined;
  readonly log: AgentLogger;
}

/**
 * An operation the agent can run (the verb model of verbs/model.ts, with the agent's richer
 * context). Synchronous verbs end their task before the start call answers; asynchronous ones
 * when their promise settles.
 */
export type Verb = ModelVerb<AgentVerbContext>;

/** Verbs by name. */
export type VerbRegistry = ModelVerbRegistry<AgentVerbContext>;

/**
 * The built-in verbs (those of the in-process agent): `noop` (returns its arguments),
 * `echo` (the same, one macrotask later), `sleep` (`{ ms, result? }`: waits, reporting progress;
 * a stop ends it at once) and `fail` (`{ message?, code?, details? }`: fails the task).
 */
export const builtinVerbs: VerbRegistry = Object.freeze({ ...sharedBuiltinVerbs });

/** Longest verb name the protocol carries (`startRequest`'s `verb`). */
const MAX_VERB_NAME = 200;

/** Throws `INVALID_OPTIONS` unless `verbs` maps protocol-valid names to functions. */
export function checkVerbs(verbs: unknown, origin: string): VerbRegistry {
  if (typeof verbs !== 'object' || verbs === null || Array.isArray(verbs)) {
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `${origin}: verbs must be an object of functions`,
    );
  }
  const checked: Record<string, Verb> = {};
  for (const [name, fn] of Object.entries(verbs)) {
    if (name === '' || name.length > MAX_VERB_NAME || typeof fn !== 'function') {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `${origin}: verb "${name}" needs a name of 1..${MAX_VERB_NAME} characters and a function`,
      );
    }
    checked[name] = fn as Verb;
  }
  return checked;
}

/**
 * Imports plug-in modules (paths relative to the working directory, or absolute), each
 * exporting `verbs: Record<string, Verb>`, and merges their verbs. A name exported by two modules
 * is an error (a silent override would run the wrong code); use the `verbs` option of
 * `startAgent` to replace a built-in on purpose.
 *
 * @throws CocoError `INVALID_OPTIONS` when a module cannot be imported or exports no valid verbs.
 */
export async function loadVerbModules(paths: readonly string[]): Promise<VerbRegistry> {
  const merged: Record<string, Verb> = {};
  const origins = new Map<string, string>();
  for (const path of paths) {
    const url = pathToFileURL(resolve(path)).href;
    let module: unknown;
    try {
      module = await import(url);
    } catch (error) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `cannot import verb module ${path}: ${String(error)}`,
        {
          cause: error,
        },
      );
    }
    const exported = (module as { verbs?: unknown }).verbs;
    for (const [name, fn] of Object.entries(checkVerbs(exported, `verb module ${path}`))) {
      const first = origins.get(name);
      if (first !== undefined) {
        throw new CocoError(
          ErrorCode.InvalidOptions,
          `verb "${name}" is exported by both ${first} and ${path}`,
        );
      }
      origins.set(name, path);
      merged[name] = fn;
    }
  }
  return merged;
}

const CANCELLED: ErrorInfo = Object.freeze({
  code: ErrorCode.Cancelled,
  message: 'task stopped by request',
});

/** The error of a task cancelled by a stop request. */
export function cancelledError(): ErrorInfo {
  return CANCELLED;
}

/** How a verb's run ended, in JSON-safe form (what the agent stores and reports). */
export type VerbOutcome =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly error: ErrorInfo };

/** What calling a verb gave at once. */
export type VerbCall =
  /** It threw `TASK_REJECTED` synchronously: the start is refused. */
  | { readonly kind: 'rejected'; readonly error: ErrorInfo }
  /** It returned or threw synchronously: the task has ended already. */
  | { readonly kind: 'ended'; readonly outcome: VerbOutcome }
  /** It returned a promise: the task runs until it settles (never rejects). */
  | { readonly kind: 'pending'; readonly outcome: Promise<VerbOutcome> };

/** A value as it survives JSON (`undefined` → `null`), or `undefined` when it cannot. */
export function jsonSafe(value: unknown): unknown {
  try {
    const text = JSON.stringify(value ?? null) as string | undefined;
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

/** A verb's throw as the task's error: a {@link CocoError} keeps its code, anything else is `TASK_FAILED`. */
export function verbError(error: unknown): ErrorInfo {
  const info: ErrorInfo =
    error instanceof CocoError
      ? error.toInfo()
      : error instanceof Error
        ? { code: ErrorCode.TaskFailed, message: error.message }
        : { code: ErrorCode.TaskFailed, message: describe(error) };
  if (info.details === undefined) return info;
  // Details go over the wire and into the task table: keep them only if they survive JSON.
  const details = jsonSafe(info.details);
  return details === undefined ? { code: info.code, message: info.message } : { ...info, details };
}

function describe(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function outcomeOf(value: unknown): VerbOutcome {
  const result = jsonSafe(value);
  if (result !== undefined) return { ok: true, result };
  const message = 'the verb returned a result that cannot be sent as JSON';
  return { ok: false, error: { code: ErrorCode.TaskFailed, message } };
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * One run of a verb: its context. {@link VerbRun.stop} aborts the signal and calls the stop
 * listeners; progress reports go to `onProgress` until the run is stopped or finished.
 */
export class VerbRun implements AgentVerbContext {
  readonly taskId: string;
  readonly agentId: string;
  readonly storageRoot: string | undefined;
  readonly #verb: string;
  readonly #baseLog: AgentLogger;
  readonly #onProgress: (percent: number) => void;
  #controller: AbortController | undefined;
  #log: AgentLogger | undefined;
  #listeners: (() => void)[] = [];
  #done = false;
  #stopReason: ErrorInfo | undefined;

  constructor(taskId: string, verb: string, host: VerbHost, onProgress: (percent: number) => void) {
    this.taskId = taskId;
    this.agentId = host.agentId;
    this.storageRoot = host.storageRoot;
    this.#verb = verb;
    this.#baseLog = host.log;
    this.#onProgress = onProgress;
  }

  /** Created on first use: most verbs never look at it. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#stopReason !== undefined) this.#controller.abort(fromInfo(this.#stopReason));
    }
    return this.#controller.signal;
  }

  get log(): AgentLogger {
    return (this.#log ??= this.#baseLog.child({ taskId: this.taskId, verb: this.#verb }));
  }

  progress(percent: number): void {
    if (!this.#done && Number.isFinite(percent))
      this.#onProgress(Math.min(100, Math.max(0, percent)));
  }

  onStop(listener: () => void): void {
    if (this.#stopReason !== undefined) listener();
    else if (!this.#done) this.#listeners.push(listener);
  }

  /** Ends the run for good: later progress is ignored, stop listeners are dropped. */
  finish(): void {
    this.#done = true;
    this.#listeners = [];
  }

  /** Aborts the verb (a stop, or the agent shutting down) and ends the run. */
  stop(reason: ErrorInfo): void {
    if (this.#done) return;
    this.#stopReason = reason;
    this.#controller?.abort(fromInfo(reason));
    const listeners = this.#listeners;
    this.finish();
    for (const listener of listeners) {
      try {
        listener();
      } catch (error) {
        // A verb's broken stop hook must not break the agent's stop loop; log it instead.
        this.log.error({ err: error }, 'a stop listener threw');
      }
    }
  }

  /**
   * Calls `verb` with this context. Never throws: a synchronous throw ends (or, with
   * `TASK_REJECTED`, refuses) the task; a promise settles into a {@link VerbOutcome}.
   */
  call(verb: Verb, args: unknown): VerbCall {
    let value: unknown;
    try {
      value = verb(args, this);
    } catch (error) {
      if (error instanceof CocoError && error.code === ErrorCode.TaskRejected) {
        return { kind: 'rejected', error: verbError(error) };
      }
      return { kind: 'ended', outcome: { ok: false, error: verbError(error) } };
    }
    if (!isPromiseLike(value)) return { kind: 'ended', outcome: outcomeOf(value) };
    const outcome = Promise.resolve(value).then(outcomeOf, (error: unknown) => ({
      ok: false as const,
      error: verbError(error),
    }));
    return { kind: 'pending', outcome };
  }
}

function fromInfo(info: ErrorInfo): CocoError {
  return new CocoError(info.code, info.message, { details: info.details });
}
