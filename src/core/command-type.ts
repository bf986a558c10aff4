/**
 * Command types are values: a name, versioned parameters and handlers go in
 * ({@link defineCommand}), a typed {@link CommandType} comes out and is given to the engine.
 *
 * @module
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { CocoError, ErrorCode, type ErrorInfo } from './errors.js';
import type { CommandStatus, CompensationStatus, TaskStatus } from './states.js';
import { isDuration } from './params.js';

/** A JSON value: what parameters, results, task arguments and undo data must be. */
export type Json =
  null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

/** What to do with the rest of a stage when one of its tasks or children fails. */
export type FailurePolicy =
  /** Let the rest of the stage run to its end, then fail (the default: never interrupts work). */
  | 'wait-all'
  /** Stop the stage's other tasks and cancel its other children at once, then fail. */
  | 'fail-fast';

/** How a command's children run: all in one stage, or stage after stage. */
export type ChildMode = 'concurrent' | 'serial';

/** An async task to start on an agent. */
export interface TaskSpec {
  /** Agent id, as the agent broker knows it (without U+0000). */
  readonly agent: string;
  /** The verb the agent runs (for example `volume.copy`; without U+0000). */
  readonly verb: string;
  /** Arguments for the verb; must be JSON. */
  readonly args?: Json;
  /**
   * Fail and stop the task if it has not ended this many milliseconds after it was created (or
   * admitted): a positive number up to 100 years, rounded up to a whole ms.
   */
  readonly deadlineMs?: number;
}

/** A task created by a handler. */
export interface TaskRef {
  /** The task's id on its agent (unique across the store). */
  readonly id: string;
  /** Position among the command's tasks, from 0. */
  readonly ordinal: number;
  readonly agent: string;
  readonly verb: string;
}

/** What a task ended with, as the end handlers and later stages see it. */
export interface TaskOutcome extends TaskRef {
  readonly status: TaskStatus;
  readonly result: unknown;
  readonly error: ErrorInfo | null;
}

/** A child command created by a handler. */
export interface ChildRef {
  readonly id: number;
  readonly type: string;
}

/** What a child command ended with, as its parent sees it. */
export interface ChildOutcome extends ChildRef {
  /** Position in the parent's journal (creation order). */
  readonly ordinal: number;
  readonly status: CommandStatus;
  readonly result: unknown;
  readonly error: ErrorInfo | null;
  readonly compensation: CompensationStatus;
}

/** Identity of the command a handler runs for. */
export interface CommandInfo {
  readonly id: number;
  readonly type: string;
  readonly parentId: number | null;
  readonly rootId: number;
  /** 1 for the first try of this handler, 2 for its first retry, and so on. */
  readonly attempt: number;
  /** 0 for `execute`, k for the k-th call of `next`. */
  readonly stage: number;
}

/**
 * Application records committed atomically with the handler that writes them: writes made by a
 * handler take effect together with the state change it completes, or not at all.
 */
export interface EntityAccess {
  /** Reads a record (including this handler's own uncommitted writes). */
  get(kind: string, id: string): Promise<Json | undefined>;
  /** Writes a record when the handler completes. */
  put(kind: string, id: string, value: Json): void;
  /** Deletes a record when the handler completes. */
  delete(kind: string, id: string): void;
}

/** Minimal structured logger handed to handlers (pino-compatible). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * A logger whose every line carries `fields` (a line's own fields win). A pino logger gives a
 * child logger (its bindings are serialised once); any other is wrapped.
 */
export function withFields(logger: Logger, fields: Readonly<Record<string, unknown>>): Logger {
  const child = (logger as { child?: unknown }).child;
  if (typeof child === 'function') return (child as (b: object) => Logger).call(logger, fields);
  return {
    debug: (obj, msg) => logger.debug({ ...fields, ...obj }, msg),
    info: (obj, msg) => logger.info({ ...fields, ...obj }, msg),
    warn: (obj, msg) => logger.warn({ ...fields, ...obj }, msg),
    error: (obj, msg) => logger.error({ ...fields, ...obj }, msg),
  };
}

/** Context shared by every handler. */
export interface BaseContext<P> {
  readonly command: CommandInfo;
  /** The command's parameters, validated and upgraded to the current version. */
  readonly params: P;
  /** Per-command scratch state, saved when the handler completes. */
  readonly data: { get(): Json | undefined; set(value: Json): void };
  readonly entities: EntityAccess;
  readonly log: Logger;
}

/** Context of `execute` and `next`: the stages that create work. */
export interface StageContext<P, U extends string = string> extends BaseContext<P> {
  /** Aborted when the command is cancelled or fails fast while the stage runs. */
  readonly signal: AbortSignal;
  /** Outcomes of the tasks of earlier stages, in creation order. */
  readonly tasks: readonly TaskOutcome[];
  /** Outcomes of the children of earlier stages, in creation order. */
  readonly children: readonly ChildOutcome[];
  /**
   * Declares how many tasks and children the command will create in all. The command cannot end
   * successfully before that many exist and have ended. Counts only ever rise.
   */
  expect(counts: { readonly tasks?: number; readonly children?: number }): void;
  /** Creates a task. Its intent is stored before the agent is called; it starts at once. */
  startTask(spec: TaskSpec): TaskRef;
  /**
   * Creates a child command with its own parameters. It starts at once. Its tasks' admission
   * priority is this command's unless `options.priority` (an integer) sets its own.
   */
  addChild<Q, QI>(
    type: CommandType<Q, QI>,
    params: NoInfer<QI>,
    options?: { readonly priority?: number },
  ): ChildRef;
  /** Records an undo step, run (in reverse order) if this command or a later step fails. */
  addUndo(name: U, data?: Json): void;
}

/** Context of `onSuccess`. */
export interface EndContext<P> extends BaseContext<P> {
  readonly tasks: readonly TaskOutcome[];
  readonly children: readonly ChildOutcome[];
}

/** Context of `onFailure`. */
export interface FailureContext<P> extends EndContext<P> {
  /** Why the command failed (or `CANCELLED`). */
  readonly error: ErrorInfo;
  readonly cancelled: boolean;
}

/** Context of an undo step. */
export interface UndoContext<P> extends BaseContext<P> {
  /** Runs a task on an agent and waits for its end; throws if it fails. Survives restarts. */
  runTask(spec: TaskSpec): Promise<unknown>;
}

/** Handler retry settings. */
export interface RetryOptions {
  /** Attempts per handler before its command fails. @default 5 */
  readonly maxAttempts?: number;
  /** Delay before the first retry (0, or ms up to 100 years); doubles each time. @default 200 */
  readonly backoffMs?: number;
  /** Upper bound of the retry delay (0, or ms up to 100 years). @default 30_000 */
  readonly maxBackoffMs?: number;
}

/** Upgrades parameters from one version to the next. Declare the input type you stored. */
export type Upgrader = (params: never) => unknown;

/** What {@link defineCommand} takes. */
export interface CommandDefinition<P, I = P, U extends string = never> {
  /** Unique, stable name; stored with each command. */
  readonly name: string;
  /**
   * Former names of this type (after a rename): stored commands of these names load as this
   * type, so commands in flight across the rename resume under it, keeping the name they were
   * stored with (new commands take `name`). Keep the version history too: old rows go through
   * the same upgraders. An alias may not be another registered type's name or alias.
   */
  readonly aliases?: readonly string[];
  /**
   * The type runs only as a child, created by another command's handler (`ctx.addChild`):
   * submitting it on its own is refused with `COMMAND_TYPE_NOT_SUBMITTABLE`. Declare it for
   * the stages of a larger operation, which are only safe as part of it. @default false
   */
  readonly childOnly?: boolean;
  /**
   * The types whose handlers create this child-only type, named in the error of a refused
   * submit (so the caller learns what to submit instead). Only with `childOnly`; not enforced
   * when children are created.
   */
  readonly createdBy?: readonly string[];
  /** Current parameter version (an integer from 1). @default 1 */
  readonly version?: number;
  /** Schema of the current parameter version (zod or any Standard Schema). */
  readonly schema: StandardSchemaV1<I, P>;
  /**
   * Upgraders keyed by the version they upgrade *from*: `{ 1: v1 => v2, 2: v2 => v3 }`.
   * Stored parameters of an older version run through them in order, then the schema.
   */
  readonly upgrades?: Readonly<Record<number, Upgrader>>;
  /** First stage: creates tasks, children and undo steps. */
  readonly execute: (ctx: StageContext<P, U>) => void | Promise<void>;
  /**
   * Makes the children run serially: after stage k's work has all succeeded, `next` runs as
   * stage k+1 and may create more work. A stage that creates nothing ends the chain.
   */
  readonly next?: (ctx: StageContext<P, U>) => void | Promise<void>;
  /** Runs once when all work succeeded; its return value (JSON) is the command's result. */
  readonly onSuccess?: (ctx: EndContext<P>) => unknown;
  /** Runs once after a failure and its compensation. */
  readonly onFailure?: (ctx: FailureContext<P>) => void | Promise<void>;
  /** Undo handlers, by the names `addUndo` records. Must be idempotent. */
  readonly undo?: {
    readonly [K in U]: (ctx: UndoContext<P>, data: Json | undefined) => void | Promise<void>;
  };
  /** @default 'wait-all' */
  readonly failurePolicy?: FailurePolicy;
  /**
   * Fail the command if it has not ended this long after it was created: ms, positive, up to 100
   * years, rounded up to a whole ms.
   */
  readonly timeoutMs?: number;
  /**
   * How long one run of a handler may take: past it, the run counts as failed (`HANDLER_TIMEOUT`,
   * retried under `retry`), its `ctx.signal` is aborted, and what it does afterwards is dropped
   * (its context is closed; what it does outside `ctx` may still happen). Ms, positive, up to 100
   * years; `null` for no limit. By default the engine's `tuning.handlerTimeoutMs` (10 minutes)
   * bounds stages, `onSuccess` and `onFailure`, and nothing bounds undo steps (they may run tasks
   * and wait for them: `ctx.runTask`); set here, it bounds every handler of the type.
   */
  readonly handlerTimeoutMs?: number | null;
  readonly retry?: RetryOptions;
  /**
   * Most stages a serial command runs (`execute` counts as the first): opening one more fails
   * the command with `STAGE_LIMIT_EXCEEDED` (then it compensates as on any failure). Catches a
   * `next` that never returns an empty stage. @default DEFAULT_MAX_STAGES
   */
  readonly maxStages?: number;
}

/**
 * The default {@link CommandDefinition.maxStages}. Real serial chains run a handful of stages
 * (a disk migration runs seven); a chain that goes on for ever — a `next` whose stage check was
 * forgotten ran 5,243 stages in 3 s — stops within a second or so at 1,000, with room for long
 * generated chains (raise it per type when one needs more).
 */
export const DEFAULT_MAX_STAGES = 1_000;

/**
 * A registered-ready command type. Create with {@link defineCommand}. `P` is what handlers see
 * (the schema's output), `I` what submitters pass (the schema's input).
 */
export interface CommandType<P = unknown, I = P> {
  readonly name: string;
  /** Former names: stored rows of these names load as this type (see {@link CommandDefinition.aliases}). */
  readonly aliases: readonly string[];
  /** Submitting it on its own is refused (see {@link CommandDefinition.childOnly}). */
  readonly childOnly: boolean;
  /** The types that create it as a child (see {@link CommandDefinition.createdBy}). */
  readonly createdBy: readonly string[];
  readonly version: number;
  readonly schema: StandardSchemaV1<I, P>;
  readonly upgrades: Readonly<Record<number, Upgrader>>;
  readonly childMode: ChildMode;
  readonly failurePolicy: FailurePolicy;
  readonly timeoutMs: number | null;
  /** A run's time limit (see {@link CommandDefinition.handlerTimeoutMs}); undefined: the engine's. */
  readonly handlerTimeoutMs: number | null | undefined;
  readonly retry: Required<RetryOptions>;
  /** Most stages it runs (see {@link CommandDefinition.maxStages}). */
  readonly maxStages: number;
  /** @internal The handlers, with parameters erased to `unknown` for the engine. */
  readonly handlers: CommandHandlers;
  /** Type-only markers carrying `P` and `I`. */
  readonly __params?: P;
  readonly __input?: I;
}

/** @internal The handlers as the engine calls them. */
export interface CommandHandlers {
  readonly execute: (ctx: StageContext<unknown>) => void | Promise<void>;
  readonly next: ((ctx: StageContext<unknown>) => void | Promise<void>) | null;
  readonly onSuccess: ((ctx: EndContext<unknown>) => unknown) | null;
  readonly onFailure: ((ctx: FailureContext<unknown>) => void | Promise<void>) | null;
  readonly undo: Readonly<
    Record<string, (ctx: UndoContext<unknown>, data: Json | undefined) => void | Promise<void>>
  >;
}

/** The parameters type of a command type. */
export type ParamsOf<T> = T extends CommandType<infer P, infer _I> ? P : never;

/** The input (submit) type of a command type. */
export type InputOf<T> = T extends CommandType<infer _P, infer I> ? I : never;

const NAME = /^[a-zA-Z][a-zA-Z0-9_.:-]{0,127}$/;

/** Defines a command type. Throws `INVALID_DEFINITION` on a malformed definition. */
export function defineCommand<P, I = P, U extends string = never>(
  def: CommandDefinition<P, I, U>,
): CommandType<P, I> {
  const bad = (why: string): never => {
    throw new CocoError(ErrorCode.InvalidDefinition, `command type "${def.name}": ${why}`);
  };
  if (!NAME.test(def.name))
    bad('the name must start with a letter and use letters, digits, _ . : - (max 128)');
  const aliases = def.aliases ?? [];
  if (!Array.isArray(aliases) || !aliases.every((n) => typeof n === 'string' && NAME.test(n)))
    bad('aliases must be a list of command type names');
  if (aliases.includes(def.name)) bad('a type cannot be an alias of itself');
  if (new Set(aliases).size !== aliases.length) bad('an alias is listed twice');
  const childOnly = def.childOnly ?? false;
  if (typeof childOnly !== 'boolean') bad('childOnly must be a boolean');
  const createdBy = def.createdBy ?? [];
  if (!Array.isArray(createdBy) || !createdBy.every((n) => typeof n === 'string' && NAME.test(n)))
    bad('createdBy must be a list of command type names');
  if (createdBy.length > 0 && !childOnly)
    bad('createdBy names the parents of a child-only type: declare childOnly: true with it');
  const version = def.version ?? 1;
  if (!Number.isInteger(version) || version < 1)
    bad(`version must be an integer >= 1, got ${String(version)}`);
  if (typeof def.schema?.['~standard']?.validate !== 'function')
    bad('schema must be a Standard Schema (zod, valibot, ...)');
  const upgrades = def.upgrades ?? {};
  for (let v = 1; v < version; v++) {
    if (typeof upgrades[v] !== 'function')
      bad(`missing the upgrader from version ${v} to ${v + 1}`);
  }
  for (const key of Object.keys(upgrades)) {
    const from = Number(key);
    if (!Number.isInteger(from) || from < 1 || from >= version)
      bad(`upgrader from version ${key} does not lead to version ${version}`);
  }
  const retry = {
    maxAttempts: def.retry?.maxAttempts ?? 5,
    backoffMs: def.retry?.backoffMs ?? 200,
    maxBackoffMs: def.retry?.maxBackoffMs ?? 30_000,
  };
  if (!Number.isInteger(retry.maxAttempts) || retry.maxAttempts < 1)
    bad('retry.maxAttempts must be an integer >= 1');
  if (def.timeoutMs !== undefined && !isDuration(def.timeoutMs))
    bad('timeoutMs must be a positive number of ms, at most 100 years');
  const handlerTimeoutMs = def.handlerTimeoutMs;
  if (handlerTimeoutMs !== undefined && handlerTimeoutMs !== null && !isDuration(handlerTimeoutMs))
    bad('handlerTimeoutMs must be null or a positive number of ms, at most 100 years');
  for (const [name, ms] of [
    ['retry.backoffMs', retry.backoffMs],
    ['retry.maxBackoffMs', retry.maxBackoffMs],
  ] as const)
    if (ms !== 0 && !isDuration(ms))
      bad(`${name} must be 0 or a positive number of ms, at most 100 years`);
  const maxStages = def.maxStages ?? DEFAULT_MAX_STAGES;
  if (!Number.isInteger(maxStages) || maxStages < 1) bad('maxStages must be an integer >= 1');
  const handlers: CommandHandlers = {
    execute: def.execute as CommandHandlers['execute'],
    next: (def.next as CommandHandlers['next'] | undefined) ?? null,
    onSuccess: (def.onSuccess as CommandHandlers['onSuccess'] | undefined) ?? null,
    onFailure: (def.onFailure as CommandHandlers['onFailure'] | undefined) ?? null,
    undo: (def.undo ?? {}) as CommandHandlers['undo'],
  };
  return Object.freeze({
    name: def.name,
    aliases: Object.freeze([...aliases]),
    childOnly,
    createdBy: Object.freeze([...createdBy]),
    version,
    schema: def.schema,
    upgrades: Object.freeze({ ...upgrades }),
    childMode: def.next ? 'serial' : 'concurrent',
    failurePolicy: def.failurePolicy ?? 'wait-all',
    // A whole ms (the stores keep times as integers), never early.
    timeoutMs: def.timeoutMs === undefined ? null : Math.ceil(def.timeoutMs),
    handlerTimeoutMs:
      handlerTimeoutMs === undefined || handlerTimeoutMs === null
        ? handlerTimeoutMs
        : Math.ceil(handlerTimeoutMs),
    retry: Object.freeze(retry),
    maxStages,
    handlers: Object.freeze(handlers),
  });
}
