/**
 * The contexts handed to handlers. Work a stage creates (tasks, children, undo steps) takes
 * effect at once, so tasks start while the stage still runs; entity writes, scratch data and
 * results are buffered and committed with the state change that completes the handler.
 *
 * A handler may run more than once (a retry after a throw, or a replay after a crash). Each
 * kind of work is matched by position against what earlier attempts of the same stage
 * created, so a replay reuses those tasks and children instead of creating them again.
 *
 * @module
 */
import type {
  ChildOutcome,
  ChildRef,
  CommandInfo,
  CommandType,
  EntityAccess,
  Json,
  Logger,
  StageContext,
  TaskOutcome,
  TaskRef,
  TaskSpec,
  UndoContext,
  EndContext,
  FailureContext,
} from '../core/command-type.js';
import { withFields } from '../core/command-type.js';
import { CocoError, ErrorCode, ValidationError, type ErrorInfo } from '../core/errors.js';
import { assertJson, storableText, UNSTORABLE_TEXT } from '../core/params.js';
import type { EntityWrite } from '../core/records.js';
import type { ChildState, LiveCommand, LiveTask } from './live.js';
import { paramsUnavailable } from './unloadable.js';

/** What contexts need from the engine. */
export interface ContextHost {
  now(): number;
  readonly log: Logger;
  /** Marks a command changed. */
  touch(c: LiveCommand): void;
  createTask(c: LiveCommand, spec: TaskSpec, origin: number): LiveTask;
  createChild(
    parent: LiveCommand,
    type: CommandType,
    params: unknown,
    priority?: number,
  ): ChildState;
  recordUndo(c: LiveCommand, name: string, data: Json | null): void;
  readEntity(kind: string, id: string): Promise<Json | undefined>;
  awaitTask(task: LiveTask): Promise<unknown>;
}

function taskOutcome(t: LiveTask): TaskOutcome {
  return {
    id: t.agentTaskId,
    ordinal: t.ordinal,
    agent: t.agentId,
    verb: t.verb,
    status: t.status,
    result: t.result,
    error: t.error,
  };
}

function childOutcome(ch: ChildState): ChildOutcome {
  return {
    id: ch.id,
    type: ch.type,
    ordinal: ch.seq,
    status: ch.status,
    result: ch.result,
    error: ch.error,
    compensation: ch.compensation,
  };
}

function closedError(): CocoError {
  return new CocoError(
    ErrorCode.CommandState,
    'this handler context was used after its handler returned',
  );
}

/** What a context hands back when it closes: its buffered writes and data. */
export interface ClosedCtx {
  readonly writes: readonly EntityWrite[];
  readonly dataSet: boolean;
  readonly data: Json | undefined;
}

/**
 * What most handlers leave: no entity write, no data set. One shared object instead of one
 * (and an empty array) per handler run.
 */
const NOTHING_BUFFERED: ClosedCtx = Object.freeze({
  writes: Object.freeze([]),
  dataSet: false,
  data: undefined,
});

/**
 * What a handler's context holds only once the handler uses it: data, entity writes, the data
 * and entity accessors, the logger, the abort signal. Most handlers use none of them, and a
 * context is made for every handler run (a chain: 11 per chain): held in the context, these
 * seven fields cost ~56 bytes per run, here one field until the first use.
 */
class CtxExtras {
  dataSet = false;
  data: Json | undefined = undefined;
  writes: Map<string, EntityWrite> | null = null;
  dataApi: { get(): Json | undefined; set(value: Json): void } | null = null;
  entitiesApi: EntityAccess | null = null;
  log: Logger | undefined = undefined;
  signal: AbortSignal | null = null;
}

/** Shared parts: identity, params, data, entities, buffered writes. */
class BaseCtx {
  protected closed = false;
  #x: CtxExtras | null = null;
  protected readonly host: ContextHost;
  protected readonly c: LiveCommand;
  readonly #attempt: number;
  readonly #stage: number;
  #command: CommandInfo | null = null;

  constructor(host: ContextHost, c: LiveCommand, attempt: number) {
    this.host = host;
    this.c = c;
    this.#attempt = attempt;
    this.#stage = c.stage;
  }

  /**
   * The command as the handler sees it, as it was when the context was made; built on first
   * use (most handlers never read it).
   */
  get command(): CommandInfo {
    return (this.#command ??= info(this.c, this.#attempt, this.#stage));
  }

  /** The fields held once used (see {@link CtxExtras}). */
  protected extras(): CtxExtras {
    return (this.#x ??= new CtxExtras());
  }

  /** Per-command scratch state (built on first use: most handlers never touch it). */
  get data(): { get(): Json | undefined; set(value: Json): void } {
    const x = this.extras();
    return (x.dataApi ??= {
      get: () => (x.dataSet ? x.data : ((this.c.data ?? undefined) as Json | undefined)),
      set: (value: Json) => {
        this.#check();
        assertJson(value, `command ${this.c.id}: data`);
        x.dataSet = true;
        x.data = value;
      },
    });
  }

  /** Application records committed with the handler (built on first use). */
  get entities(): EntityAccess {
    const x = this.extras();
    return (x.entitiesApi ??= {
      get: async (kind, id) => {
        const own = x.writes?.get(`${kind}\u0000${id}`);
        if (own) return own.value ?? undefined;
        return this.host.readEntity(kind, id);
      },
      put: (kind, id, value) => this.#write(kind, id, value),
      delete: (kind, id) => this.#write(kind, id, null),
    });
  }

  get params(): unknown {
    // A command ended although its parameters could not be loaded: only stored data is there.
    if (this.c.broken) throw paramsUnavailable(this.c);
    return this.c.params;
  }

  /** The engine's logger, each line carrying the command's id, type and root (built on first use). */
  get log(): Logger {
    const x = this.extras();
    return (x.log ??= withFields(this.host.log, {
      commandId: this.c.id,
      type: this.c.type.name,
      rootId: this.c.rootId,
    }));
  }

  #check(): void {
    if (this.closed) throw closedError();
  }

  #write(kind: string, id: string, value: Json | null): void {
    this.#check();
    if (typeof kind !== 'string' || kind === '' || typeof id !== 'string' || id === '') {
      throw new CocoError(
        ErrorCode.ParametersInvalid,
        'entity kind and id must be non-empty strings',
      );
    }
    if (!storableText(kind) || !storableText(id))
      throw new CocoError(ErrorCode.ParametersInvalid, `entity kind and id ${UNSTORABLE_TEXT}`);
    if (value !== null) assertJson(value, `command ${this.c.id}: entity ${kind}/${id}`);
    const x = this.extras();
    (x.writes ??= new Map()).set(`${kind}\u0000${id}`, {
      kind,
      id,
      value,
      commandId: this.c.id,
      at: this.host.now(),
    });
  }

  protected check(): void {
    this.#check();
  }

  /** Ends the context; returns its buffered writes. */
  close(): ClosedCtx {
    this.closed = true;
    const x = this.#x;
    if (x === null || (x.writes === null && !x.dataSet)) return NOTHING_BUFFERED;
    return {
      writes: x.writes ? [...x.writes.values()] : [],
      dataSet: x.dataSet,
      data: x.data,
    };
  }
}

function info(c: LiveCommand, attempt: number, stage: number): CommandInfo {
  return {
    id: c.id,
    type: c.type.name,
    parentId: c.parentId,
    rootId: c.rootId,
    attempt,
    stage,
  };
}

/** Context of `execute` and `next`. */
export class StageCtx extends BaseCtx implements StageContext<unknown> {
  #tasks = 0;
  #children = 0;
  #undo = 0;

  constructor(host: ContextHost, c: LiveCommand, attempt: number) {
    super(host, c, attempt);
  }

  /** Tasks and children this attempt created or reused. */
  get createdWork(): number {
    return this.#tasks + this.#children;
  }

  get signal(): AbortSignal {
    const x = this.extras();
    if (!x.signal) x.signal = (this.c.abort ??= new AbortController()).signal;
    return x.signal;
  }

  get tasks(): readonly TaskOutcome[] {
    const stage = this.c.stage;
    return this.c.tasks.filter((t) => t.origin >= 0 && t.origin < stage).map(taskOutcome);
  }

  get children(): readonly ChildOutcome[] {
    const stage = this.c.stage;
    return (this.c.children ?? []).filter((ch) => ch.originStage < stage).map(childOutcome);
  }

  expect(counts: { readonly tasks?: number; readonly children?: number }): void {
    this.check();
    // for-in over own keys: as Object.entries, without an array per key (every stage calls this).
    for (const key in counts) {
      if (!Object.hasOwn(counts, key)) continue;
      const value = counts[key as keyof typeof counts];
      // A safe integer: a count past one (1e300 is an integer to JavaScript) was stored, then read
      // back as a corrupt row (CORRUPT_ROW), and the job view keeps counts as 64-bit integers.
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
        throw new CocoError(
          ErrorCode.ParametersInvalid,
          `expect(): ${key} must be a non-negative safe integer, got ${String(value)}`,
        );
      }
    }
    if (this.c.expect(counts.tasks ?? 0, counts.children ?? 0)) this.host.touch(this.c);
  }

  startTask(spec: TaskSpec): TaskRef {
    this.check();
    const i = this.#tasks++;
    const existing = nthOfOrigin(this.c.tasks, this.c.stage, i);
    if (existing) {
      if (existing.agentId !== spec.agent || existing.verb !== spec.verb) {
        throw nondeterministic(
          this.c,
          `task #${i} of stage ${this.c.stage} was ${existing.verb}@${existing.agentId}, now ${spec.verb}@${spec.agent}`,
        );
      }
      return {
        id: existing.agentTaskId,
        ordinal: existing.ordinal,
        agent: existing.agentId,
        verb: existing.verb,
      };
    }
    const t = this.host.createTask(this.c, spec, this.c.stage);
    return { id: t.agentTaskId, ordinal: t.ordinal, agent: t.agentId, verb: t.verb };
  }

  addChild<Q, QI>(
    type: CommandType<Q, QI>,
    params: NoInfer<QI>,
    options?: { readonly priority?: number },
  ): ChildRef {
    this.check();
    const priority = options?.priority;
    if (
      priority !== undefined &&
      !(Number.isSafeInteger(priority) && Math.abs(priority) <= 1_000_000)
    )
      throw new ValidationError(`invalid child options for command ${this.c.id}`, [
        { path: 'priority', message: 'must be an integer between -1000000 and 1000000' },
      ]);
    const i = this.#children++;
    let n = 0;
    // Indexed, and no empty array for a command without children (as nthOfOrigin).
    const children = this.c.children;
    const count = children === null ? 0 : children.length;
    for (let k = 0; k < count; k++) {
      const ch = children![k]!;
      if (ch.originStage !== this.c.stage) continue;
      if (n++ === i) {
        if (ch.type !== type.name)
          throw nondeterministic(
            this.c,
            `child #${i} of stage ${this.c.stage} was ${ch.type}, now ${type.name}`,
          );
        return { id: ch.id, type: ch.type };
      }
    }
    const ch = this.host.createChild(this.c, type, params, priority);
    return { id: ch.id, type: ch.type };
  }

  addUndo(name: string, data?: Json): void {
    this.check();
    if (!Object.hasOwn(this.c.type.handlers.undo, name)) {
      throw new CocoError(
        ErrorCode.InvalidDefinition,
        `command type "${this.c.type.name}" has no undo handler named "${name}"`,
      );
    }
    const i = this.#undo++;
    let n = 0;
    for (const u of this.c.undo ?? []) {
      if (u.stage !== this.c.stage) continue;
      if (n++ === i) {
        if (u.name !== name)
          throw nondeterministic(
            this.c,
            `undo step #${i} of stage ${this.c.stage} was "${u.name}", now "${name}"`,
          );
        return;
      }
    }
    if (data !== undefined) assertJson(data, `command ${this.c.id}: undo data for "${name}"`);
    this.host.recordUndo(this.c, name, data ?? null);
  }
}

/**
 * The `n`-th task of `origin` (among those `usable` accepts, all without it), in creation order.
 * An indexed loop and no default predicate: every `startTask` comes here, and an iterator or a
 * closure per call is garbage when the call is not optimized.
 */
function nthOfOrigin(
  tasks: readonly LiveTask[],
  origin: number,
  n: number,
  usable: ((t: LiveTask) => boolean) | null = null,
): LiveTask | undefined {
  let k = 0;
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i]!;
    if (t.origin === origin && (usable === null || usable(t)) && k++ === n) return t;
  }
  return undefined;
}

function nondeterministic(c: LiveCommand, what: string): CocoError {
  return new CocoError(
    ErrorCode.HandlerNondeterministic,
    `command ${c.id} (${c.type.name}): a retried handler did different work: ${what}`,
  );
}

/** Context of `onSuccess`. */
export class EndCtx extends BaseCtx implements EndContext<unknown> {
  constructor(host: ContextHost, c: LiveCommand, attempt: number) {
    super(host, c, attempt);
  }
  get tasks(): readonly TaskOutcome[] {
    return this.c.tasks.filter((t) => t.origin >= 0).map(taskOutcome);
  }
  get children(): readonly ChildOutcome[] {
    return (this.c.children ?? []).map(childOutcome);
  }
}

/** Context of `onFailure`. */
export class FailureCtx extends EndCtx implements FailureContext<unknown> {
  readonly error: ErrorInfo;
  readonly cancelled: boolean;
  constructor(
    host: ContextHost,
    c: LiveCommand,
    attempt: number,
    error: ErrorInfo,
    cancelled: boolean,
  ) {
    super(host, c, attempt);
    this.error = error;
    this.cancelled = cancelled;
  }
}

/** Context of an undo step. */
export class UndoCtx extends BaseCtx implements UndoContext<unknown> {
  #tasks = 0;
  private readonly undoOrdinal: number;
  constructor(host: ContextHost, c: LiveCommand, attempt: number, undoOrdinal: number) {
    super(host, c, attempt);
    this.undoOrdinal = undoOrdinal;
  }

  /**
   * Runs a task and resolves with its result. A replay (after a crash) reuses the task of the
   * same position; a task that ended without success is never reused: each retry of the step
   * runs a fresh one (task ids are single-use on agents).
   */
  async runTask(spec: TaskSpec): Promise<unknown> {
    this.check();
    const origin = -1 - this.undoOrdinal;
    const i = this.#tasks++;
    const task =
      nthOfOrigin(this.c.tasks, origin, i, (t) => !t.ended || t.status === 'succeeded') ??
      this.host.createTask(this.c, spec, origin);
    return this.host.awaitTask(task);
  }
}
