/**
 * The coordinator drives every live command: it asks {@link decide} what to do next, carries
 * it out (running handlers through `handlers.ts`), applies state changes along the transition
 * tables, reacts to task reports from the {@link Dispatcher}, and settles ended commands
 * (clearing their tasks, then letting them go from memory).
 *
 * @module
 */
import type { TaskStatusReport } from '../agents/port.js';
import type { CommandType, Json, Logger, TaskSpec } from '../core/command-type.js';
import { CocoError, ErrorCode, ValidationError, type ErrorInfo } from '../core/errors.js';
import { assertJson, toIssues } from '../core/params.js';
import type { CommandRegistry } from '../core/registry.js';
import { assertTransition, type CommandStatus, type TaskStatus } from '../core/states.js';
import { agentTaskId, type EntityWrite, type Store } from '../store/port.js';
import type { Committer } from './committer.js';
import { decide } from './decide.js';
import type { Dispatcher, DispatcherEvents } from './dispatcher.js';
import type { EngineEvents } from './events.js';
import { runFailure, runStage, runSuccess, runUndo, type HandlerHost } from './handlers.js';
import type { IdAllocator } from './ids.js';
import { ChildState, LiveCommand, LiveTask, LiveUndo } from './live.js';
import type { CompiledEngineOptions } from './options.js';

/** Loads one command (with its entries) from the store into memory; used for compensation. */
export type CommandLoader = (id: number) => Promise<LiveCommand | null>;

/** Drives live commands. */
export class Coordinator implements HandlerHost, DispatcherEvents {
  /** Live commands by id: the command repository. */
  readonly live = new Map<number, LiveCommand>();
  /** Agent task ids of commands that could not be loaded: never stopped by reconciliation. */
  readonly foreignTasks = new Set<string>();
  dispatcher!: Dispatcher;
  loader!: CommandLoader;
  stopped = false;
  readonly log: Logger;
  #ready: LiveCommand[] = [];
  #drainScheduled = false;
  #handlers = 0;
  #idle: (() => void)[] = [];
  readonly #taskWaiters = new Map<LiveTask, { resolve(v: unknown): void; reject(e: unknown): void }[]>();
  readonly #endWaiters = new Map<number, ((c: LiveCommand) => void)[]>();
  readonly #overlay = new Map<string, Json | null>();

  private readonly options: CompiledEngineOptions;
  private readonly store: Store;
  private readonly committer: Committer;
  private readonly events: EngineEvents;
  private readonly ids: IdAllocator;
  private readonly registry: CommandRegistry;
  private readonly storeId: string;
  constructor(
    options: CompiledEngineOptions,
    store: Store,
    committer: Committer,
    events: EngineEvents,
    ids: IdAllocator,
    registry: CommandRegistry,
    storeId: string,
  ) {
    this.options = options;
    this.store = store;
    this.committer = committer;
    this.events = events;
    this.ids = ids;
    this.registry = registry;
    this.storeId = storeId;
    this.log = options.logger;
  }

  now(): number {
    return this.options.clock.now();
  }

  // ---------------------------------------------------------------- the loop

  /** Queues a command to be looked at. */
  wake(c: LiveCommand): void {
    if (c.queued || this.stopped) return;
    c.queued = true;
    this.#ready.push(c);
    if (!this.#drainScheduled) {
      this.#drainScheduled = true;
      queueMicrotask(() => this.#drain());
    }
  }

  #drain(): void {
    this.#drainScheduled = false;
    const ready = this.#ready;
    this.#ready = [];
    for (const c of ready) {
      c.queued = false;
      try {
        this.#step(c);
      } catch (error) {
        this.#internalError(c, error);
      }
    }
  }

  #internalError(c: LiveCommand, error: unknown): void {
    const info = error instanceof CocoError ? error.toInfo() : { code: 'INTERNAL', message: String(error instanceof Error ? error.stack : error) };
    this.log.error({ commandId: c.id, error: info }, 'internal error while advancing a command; it is left as it is');
    this.events.emit('error', { error: info, context: `command ${c.id}` });
  }

  #step(c: LiveCommand): void {
    const action = decide(c, this.now());
    switch (action.kind) {
      case 'none':
        return;
      case 'wait-until':
        c.timer?.cancel();
        c.timer = this.options.clock.setTimer(action.at - this.now(), () => {
          c.timer = null;
          this.wake(c);
        });
        return;
      case 'run-stage':
        void runStage(this, c);
        return;
      case 'next-stage':
        c.stage++;
        c.stageDone = false;
        c.attempts = 0;
        c.lastError = null;
        this.touch(c);
        this.wake(c);
        return;
      case 'succeed':
        void runSuccess(this, c);
        return;
      case 'abort':
        this.abortCommand(c, action.error);
        return;
      case 'begin-compensation':
        this.setStatus(c, 'compensating');
        this.#setCompensation(c, 'compensating', null);
        this.wake(c);
        return;
      case 'undo':
        void runUndo(this, c, action.undo);
        return;
      case 'compensate-child':
        void this.#compensateChild(c, action.child);
        return;
      case 'compensation-done':
        this.#setCompensation(c, action.error ? 'failed' : 'compensated', action.error);
        c.attempts = 0;
        c.nextAttemptAt = null;
        if (c.terminal) {
          this.#notifyParent(c);
          this.settle(c);
        }
        this.wake(c);
        return;
      case 'finish-failure':
        void runFailure(this, c);
        return;
    }
  }

  // ---------------------------------------------------------------- state changes

  /** Marks a command changed. */
  touch(c: LiveCommand): void {
    c.updatedAt = this.now();
    this.committer.command(c);
  }

  touchUndo(u: LiveUndo): void {
    this.committer.undo(u);
  }

  setStatus(c: LiveCommand, to: CommandStatus): void {
    assertTransition('command', c.status, to, `command ${c.id}`);
    c.status = to;
    this.touch(c);
  }

  #setCompensation(c: LiveCommand, to: LiveCommand['compensation'], error: ErrorInfo | null): void {
    assertTransition('compensation', c.compensation, to, `command ${c.id}`);
    c.compensation = to;
    c.compensationError = error;
    this.touch(c);
  }

  /** Failure or cancellation decided: stop the command's tasks and cancel its children. */
  abortCommand(c: LiveCommand, error: ErrorInfo): void {
    this.setStatus(c, 'aborting');
    c.error = error;
    c.attempts = 0;
    c.nextAttemptAt = null;
    c.abort?.abort();
    for (const t of c.tasks) if (!t.ended) this.#stopTask(t);
    for (const ch of c.children ?? []) {
      if (ch.ended) continue;
      const child = this.live.get(ch.id);
      if (child) this.requestCancel(child);
      else this.log.warn({ commandId: c.id, childId: ch.id }, 'cannot cancel a child that is not loaded');
    }
    this.wake(c);
  }

  /** Asks a command to cancel (idempotent). Returns false if it had already ended or is failing. */
  requestCancel(c: LiveCommand): boolean {
    if (c.terminal || c.cancelRequested) return false;
    c.cancelRequested = true;
    c.abort?.abort();
    this.touch(c);
    this.wake(c);
    return true;
  }

  endCommand(c: LiveCommand, status: 'succeeded' | 'failed' | 'cancelled'): void {
    this.setStatus(c, status);
    c.endedAt = this.now();
    c.attempts = 0;
    c.nextAttemptAt = null;
    c.timer?.cancel();
    c.timer = null;
    c.lifetimeTimer?.cancel();
    c.lifetimeTimer = null;
    this.#notifyParent(c);
    this.settle(c);
    const waiters = this.#endWaiters.get(c.id);
    if (waiters) {
      this.#endWaiters.delete(c.id);
      this.committer.afterCommit(() => {
        for (const w of waiters) w(c);
      });
    }
  }

  /** Resolves with the live command once it has ended and that is durable. */
  whenEnded(c: LiveCommand): Promise<LiveCommand> {
    return new Promise((resolve) => {
      const list = this.#endWaiters.get(c.id) ?? [];
      list.push(resolve);
      this.#endWaiters.set(c.id, list);
    });
  }

  #notifyParent(c: LiveCommand): void {
    if (c.parentId === null) return;
    const p = this.live.get(c.parentId);
    if (!p?.children) return;
    const ch = findChild(p.children, c.seq ?? -1);
    if (!ch || ch.id !== c.id) return;
    const wasEnded = ch.ended;
    ch.status = c.status;
    ch.result = c.result;
    ch.error = c.error;
    ch.compensation = c.compensation;
    if (!wasEnded && ch.ended) {
      p.childEnded(ch);
      if (p.failurePolicy === 'fail-fast' && ch.status !== 'succeeded') p.abort?.abort();
    }
    this.wake(p);
  }

  /** Once a command has settled: clear its tasks on their agents, then let it go. */
  settle(c: LiveCommand): void {
    if (!c.settled) return;
    const toClear = c.tasks.filter((t) => !t.cleared);
    if (toClear.length === 0) {
      if (!c.tasksCleared) {
        c.tasksCleared = true;
        this.touch(c);
      }
      this.committer.afterCommit(() => this.#evict(c));
      return;
    }
    // Clearing follows the commit that records the command's outcome.
    this.committer.afterCommit(() => {
      for (const t of toClear) this.dispatcher.clear(t);
    });
  }

  #evict(c: LiveCommand): void {
    if (c.settled && c.tasksCleared && !c.dirty && !c.busy && this.live.get(c.id) === c) {
      this.live.delete(c.id);
      c.timer?.cancel();
    }
  }

  async #compensateChild(c: LiveCommand, ch: ChildState): Promise<void> {
    let child = this.live.get(ch.id) ?? null;
    if (!child) {
      c.busy = true;
      try {
        child = await this.loader(ch.id);
      } catch (error) {
        this.log.error({ commandId: c.id, childId: ch.id, error }, 'could not load a child to compensate it');
      } finally {
        c.busy = false;
      }
      if (this.stopped) return;
      if (!child) {
        ch.compensation = 'failed';
        ch.error = { code: ErrorCode.CompensationFailed, message: `child ${ch.id} could not be loaded to compensate it` };
        this.wake(c);
        return;
      }
      child = this.live.get(ch.id) ?? child;
    }
    if (child.compensation === 'none') {
      this.#setCompensation(child, 'compensating', null);
      this.wake(child);
    }
    ch.compensation = child.compensation;
    this.wake(c);
  }

  // ---------------------------------------------------------------- creation (handler contexts)

  /** Creates a root command (submit). */
  createRoot(type: CommandType, raw: unknown, params: unknown, idempotencyKey: string | null): LiveCommand {
    const id = this.ids.next();
    const now = this.now();
    const c = new LiveCommand(id, type, type.version, raw, params, null, id, null, null, type.childMode, type.failurePolicy, idempotencyKey, now, false);
    this.#adopt(c, type, now);
    return c;
  }

  createChild(parent: LiveCommand, type: CommandType, params: unknown): ChildState {
    if (this.registry.get(type.name) !== type) {
      throw new CocoError(ErrorCode.InvalidDefinition, `child type "${type.name}" is not registered with this engine`);
    }
    const what = `invalid parameters for child command type "${type.name}" (version ${type.version}) of command ${parent.id}`;
    assertJson(params, what);
    const result = type.schema['~standard'].validate(params);
    if (result instanceof Promise) {
      throw new CocoError(ErrorCode.InvalidDefinition, `command type "${type.name}" has an async schema; children need a synchronous one`);
    }
    if (result.issues) throw new ValidationError(what, toIssues(result.issues));
    const id = this.ids.next();
    const now = this.now();
    const seq = parent.journalSeq++;
    const c = new LiveCommand(id, type, type.version, params, result.value, parent.id, parent.rootId, seq, parent.stage, type.childMode, type.failurePolicy, null, now, false);
    const ch = new ChildState(id, type.name, seq, parent.stage, 'pending', null, null, 'none');
    parent.addChild(ch);
    this.touch(parent);
    this.#adopt(c, type, now);
    return ch;
  }

  #adopt(c: LiveCommand, type: CommandType, now: number): void {
    if (type.timeoutMs !== null) c.deadlineAt = now + type.timeoutMs;
    this.live.set(c.id, c);
    this.touch(c);
    this.armLifetime(c);
    this.wake(c);
  }

  /** Arms the lifetime timer of a command that has one. */
  armLifetime(c: LiveCommand): void {
    if (c.deadlineAt === null || c.terminal) return;
    c.lifetimeTimer?.cancel();
    c.lifetimeTimer = this.options.clock.setTimer(c.deadlineAt - this.now(), () => {
      c.lifetimeTimer = null;
      this.wake(c);
    });
  }

  createTask(c: LiveCommand, spec: TaskSpec, origin: number): LiveTask {
    const bad = (message: string): never => {
      throw new ValidationError(`invalid task for command ${c.id} (${c.type.name})`, [{ path: message.split(':')[0] ?? '', message }]);
    };
    if (typeof spec?.agent !== 'string' || spec.agent === '') bad('agent: must be a non-empty string');
    if (typeof spec.verb !== 'string' || spec.verb === '') bad('verb: must be a non-empty string');
    if (spec.deadlineMs !== undefined && !(typeof spec.deadlineMs === 'number' && spec.deadlineMs > 0)) bad('deadlineMs: must be a positive number');
    if (spec.args !== undefined) assertJson(spec.args, `invalid task arguments for command ${c.id} (${c.type.name})`);
    const now = this.now();
    const ordinal = c.tasks.length;
    const deadlineAt = spec.deadlineMs === undefined ? null : now + spec.deadlineMs;
    const t = new LiveTask(c, ordinal, origin, spec.agent, spec.verb, spec.args ?? null, agentTaskId(this.storeId, c.id, ordinal), 'created', null, null, deadlineAt, false, now, null, false);
    c.addTask(t);
    c.tasksCleared = false;
    this.committer.task(t);
    this.touch(c);
    // The intent is durable before the agent hears of the task.
    this.committer.afterCommit(() => {
      if (!t.ended && !t.stopRequested && !this.stopped) this.dispatcher.start(t);
    });
    this.armTaskDeadline(t);
    return t;
  }

  /** Arms the deadline timer of a task that has one. */
  armTaskDeadline(t: LiveTask): void {
    if (t.deadlineAt === null || t.ended) return;
    t.deadlineTimer = this.options.clock.setTimer(t.deadlineAt - this.now(), () => {
      t.deadlineTimer = null;
      if (t.ended) return;
      this.#endTask(t, 'failed', null, {
        code: ErrorCode.TaskDeadlineExceeded,
        message: `task ${t.agentTaskId} (${t.verb} on ${t.agentId}) ran past its deadline and was stopped`,
      });
      this.#stopTask(t);
    });
  }

  recordUndo(c: LiveCommand, name: string, data: Json | null): void {
    const u = new LiveUndo(c, c.undoCount, c.journalSeq++, c.stage, name, data, 'recorded', null, false);
    (c.undo ??= []).push(u);
    this.committer.undo(u);
    this.touch(c);
  }

  async readEntity(kind: string, id: string): Promise<Json | undefined> {
    const key = `${kind}\u0000${id}`;
    if (this.#overlay.has(key)) return this.#overlay.get(key) ?? undefined;
    const record = await this.store.getEntity(kind, id);
    return record?.value;
  }

  applyWrites(c: LiveCommand, out: { writes: EntityWrite[]; dataSet: boolean; data: unknown }): void {
    if (out.dataSet) {
      c.data = out.data ?? null;
      this.touch(c);
    }
    if (out.writes.length === 0) return;
    // Until the batch commits, reads see these writes from memory.
    for (const w of out.writes) this.#overlay.set(`${w.kind}\u0000${w.id}`, w.value);
    this.committer.entities(out.writes);
    this.committer.afterCommit(() => {
      for (const w of out.writes) {
        const key = `${w.kind}\u0000${w.id}`;
        if (this.#overlay.get(key) === w.value) this.#overlay.delete(key);
      }
    });
  }

  awaitTask(t: LiveTask): Promise<unknown> {
    if (t.ended) return t.status === 'succeeded' ? Promise.resolve(t.result) : Promise.reject(taskError(t));
    return new Promise((resolve, reject) => {
      const list = this.#taskWaiters.get(t) ?? [];
      list.push({ resolve, reject });
      this.#taskWaiters.set(t, list);
    });
  }

  handlerStarted(): void {
    this.#handlers++;
  }

  handlerEnded(): void {
    if (--this.#handlers === 0) for (const fn of this.#idle.splice(0)) fn();
  }

  /** Resolves when no handler is running. */
  idle(): Promise<void> {
    return this.#handlers === 0 ? Promise.resolve() : new Promise((resolve) => this.#idle.push(resolve));
  }

  // ---------------------------------------------------------------- tasks

  #stopTask(t: LiveTask): void {
    if (!t.stopRequested) {
      t.stopRequested = true;
      this.committer.task(t);
    }
    this.committer.afterCommit(() => {
      if (!this.stopped) this.dispatcher.stop(t);
    });
  }

  #endTask(t: LiveTask, status: TaskStatus, result: unknown, error: ErrorInfo | null): void {
    if (t.ended) return;
    assertTransition('task', t.status, status, `task ${t.agentTaskId}`);
    t.status = status;
    t.result = status === 'succeeded' ? (result ?? null) : null;
    t.error =
      status === 'succeeded'
        ? null
        : (error ?? (status === 'cancelled' ? { code: ErrorCode.Cancelled, message: 'stopped' } : { code: ErrorCode.TaskFailed, message: 'failed without a reason' }));
    t.endedAt = this.now();
    t.deadlineTimer?.cancel();
    t.deadlineTimer = null;
    this.committer.task(t);
    const c = t.command;
    c.taskEnded(t);
    if (t.isWork && status !== 'succeeded' && c.failurePolicy === 'fail-fast') c.abort?.abort();
    const waiters = this.#taskWaiters.get(t);
    if (waiters) {
      this.#taskWaiters.delete(t);
      for (const w of waiters) {
        if (status === 'succeeded') w.resolve(t.result);
        else w.reject(taskError(t));
      }
    }
    this.touch(c);
    this.wake(c);
  }

  started(t: LiveTask): void {
    if (t.status !== 'created') return;
    assertTransition('task', t.status, 'running', `task ${t.agentTaskId}`);
    t.status = 'running';
    this.committer.task(t);
  }

  rejected(t: LiveTask, error: ErrorInfo): void {
    this.#endTask(t, 'failed', null, { code: ErrorCode.TaskRejected, message: `agent ${t.agentId} refused task ${t.agentTaskId}: ${error.message}`, details: { cause: error } });
  }

  report(t: LiveTask, r: TaskStatusReport): void {
    if (r.state === 'running') {
      if (r.progress !== undefined && r.progress !== t.progress) {
        t.progress = r.progress;
        if (this.events.has('progress')) this.events.emit('progress', { commandId: t.command.id, ordinal: t.ordinal, taskId: t.agentTaskId, progress: r.progress });
      }
      if (t.status === 'created') this.started(t);
      return;
    }
    if (r.state === 'unknown') return;
    this.#endTask(t, r.state, r.result, r.error ?? null);
  }

  vanished(t: LiveTask, unknownSince: number): void {
    if (t.status === 'created') {
      // Never confirmed started and unknown to the agent: it never ran.
      this.#endTask(t, 'cancelled', null, { code: ErrorCode.Cancelled, message: `task ${t.agentTaskId} was stopped before it started` });
      return;
    }
    this.#endTask(t, 'failed', null, {
      code: ErrorCode.TaskVanished,
      message: `agent ${t.agentId} no longer knows task ${t.agentTaskId} (${t.verb}); missing since ${new Date(unknownSince).toISOString()}, beyond the ${this.options.tuning.vanishGraceMs} ms grace period`,
      details: { agentId: t.agentId, taskId: t.agentTaskId, unknownSince },
    });
  }

  cleared(tasks: readonly LiveTask[]): void {
    const commands = new Set<LiveCommand>();
    for (const t of tasks) commands.add(t.command);
    for (const c of commands) {
      if (!c.settled || c.tasksCleared || !c.tasks.every((t) => t.cleared)) continue;
      c.tasksCleared = true;
      this.touch(c);
      this.committer.afterCommit(() => this.#evict(c));
    }
  }

  agentState(agentId: string, up: boolean, error: ErrorInfo | null, failures: number): void {
    if (up) this.log.info({ agentId }, 'agent reachable again');
    else this.log.warn({ agentId, error, failures }, 'agent call failed; backing off');
    this.events.emit('agent', { agentId, up, error, failures });
  }

  isKnown(taskId: string): boolean {
    if (this.foreignTasks.has(taskId)) return true;
    const m = /-(\d+)-(\d+)$/.exec(taskId);
    if (!m) return false;
    const c = this.live.get(Number(m[1]));
    return c?.tasks[Number(m[2])]?.agentTaskId === taskId;
  }
}

function taskError(t: LiveTask): CocoError {
  const e = t.error ?? { code: ErrorCode.TaskFailed, message: `task ${t.agentTaskId} ${t.status}` };
  return new CocoError(e.code, `task ${t.agentTaskId} (${t.verb} on ${t.agentId}) ${t.status}: ${e.message}`, { details: e.details });
}

/** Binary search of a child by journal position (children are kept in creation order). */
function findChild(children: readonly ChildState[], seq: number): ChildState | undefined {
  let lo = 0;
  let hi = children.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const ch = children[mid]!;
    if (ch.seq === seq) return ch;
    if (ch.seq < seq) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}
