/**
 * A real agent that lives in the engine's process: it runs verbs, keeps a task table in
 * memory and counts every call, so tests can assert exactly what the engine asked of it.
 * Built for volume: a start, a status and a clear cost O(1) per task id, `noop` tasks use no
 * timer and no closure, and a task record is one small object.
 *
 * Task ids are single-use, as on every agent (`../../protocol/used-ids.ts`): a start of an id
 * stopped before its start arrived, or cleared, is refused with `TASK_ID_USED`.
 *
 * @module
 */
import { systemClock, type Clock } from '../../core/clock.js';
import { CocoError, ErrorCode, type ErrorInfo } from '../../core/errors.js';
import type { StartRequest, StartResult, TaskStatusReport } from '../port.js';
import {
  STOPPED_BEFORE_START,
  usedIdError,
  UsedTaskIds,
  type UsedIdsOptions,
} from '../../protocol/used-ids.js';
import { AgentFaults } from './faults.js';
import {
  HistoryEntry,
  isPromiseLike,
  TaskRecord,
  verbError,
  type EndedState,
  type TaskHistory,
  type TaskSnapshot,
} from './task-record.js';
import { builtinVerbs } from '../../verbs/builtins.js';
import type { Verb, VerbRegistry } from '../../verbs/model.js';

export type { AgentMethod } from './faults.js';
export type { EndedState, TaskHistory, TaskSnapshot } from './task-record.js';

/** Options of {@link InProcessAgent}. */
export interface InProcessAgentOptions {
  /** The agent id, as the broker and the engine know it. */
  readonly id: string;
  /** Verbs added to (or replacing) the built-in ones. */
  readonly verbs?: VerbRegistry;
  /** Whether {@link builtinVerbs} are registered. @default true */
  readonly builtins?: boolean;
  /** Source of the `startedAt` / `endedAt` timestamps (verbs use real timers). @default systemClock */
  readonly clock?: Clock;
  /**
   * Whether to keep {@link TaskHistory} per task id, even after clears. It grows with every
   * task ever started; turn it off for long benchmarks. @default true
   */
  readonly history?: boolean;
  /**
   * Bounds of the memory of used task ids (stopped before their start arrived, or cleared),
   * whose starts are refused; their age is read from `clock`.
   * @default MAX_USED_IDS ids, for USED_ID_RETENTION_MS
   */
  readonly usedIds?: UsedIdsOptions;
}

/**
 * Call counters of an agent (see {@link InProcessAgent.counters}). Calls failed by a fault
 * count only in `injectedFailures`.
 * - `startCalls`, `statusCalls`, `stopCalls`, `clearCalls`, `listCalls`: calls of each method.
 * - `starts`: tasks actually started; `duplicateStarts`: starts of ids already held (accepted,
 *   changed nothing); `rejectedStarts`: refused (unknown verb, bad arguments, a used id,
 *   injected).
 * - `statusTasks`: task ids asked about, summed over `getStatuses` calls.
 * - `stops`: running tasks a stop cancelled.
 * - `clears`: ended tasks forgotten; `clearsUnknown`: clears of ids not held (remembered as used);
 *   `clearsOfRunning`: clears of running tasks (ignored).
 * - `injectedFailures`: calls failed or replies dropped by {@link AgentFaults}.
 */
export interface AgentCounters {
  readonly startCalls: number;
  readonly starts: number;
  readonly duplicateStarts: number;
  readonly rejectedStarts: number;
  readonly statusCalls: number;
  readonly statusTasks: number;
  readonly stopCalls: number;
  readonly stops: number;
  readonly clearCalls: number;
  readonly clears: number;
  readonly clearsUnknown: number;
  readonly clearsOfRunning: number;
  readonly listCalls: number;
  readonly injectedFailures: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * An agent in this process. Its calls mirror the broker port minus the agent id; they answer
 * through promises (like a remote agent) and pass through {@link InProcessAgent.faults}.
 */
export class InProcessAgent {
  /** The agent id. */
  readonly id: string;
  /** Fault injection; see {@link AgentFaults}. */
  readonly faults: AgentFaults;
  readonly #verbs = new Map<string, Verb>();
  readonly #tasks = new Map<string, TaskRecord>();
  readonly #used: UsedTaskIds;
  readonly #history: Map<string, HistoryEntry> | undefined;
  readonly #clock: Clock;
  readonly #listeners = new Set<(agentId: string) => void>();
  readonly #counters: Mutable<AgentCounters> = {
    startCalls: 0,
    starts: 0,
    duplicateStarts: 0,
    rejectedStarts: 0,
    statusCalls: 0,
    statusTasks: 0,
    stopCalls: 0,
    stops: 0,
    clearCalls: 0,
    clears: 0,
    clearsUnknown: 0,
    clearsOfRunning: 0,
    listCalls: 0,
    injectedFailures: 0,
  };
  #running = 0;
  #activityScheduled = false;

  constructor(options: InProcessAgentOptions) {
    if (typeof options.id !== 'string' || options.id === '') {
      throw new CocoError(ErrorCode.InvalidOptions, 'an agent needs a non-empty string id');
    }
    this.id = options.id;
    this.#clock = options.clock ?? systemClock;
    this.#history = options.history === false ? undefined : new Map();
    this.#used = new UsedTaskIds(options.usedIds);
    if (options.builtins !== false)
      for (const [name, fn] of Object.entries(builtinVerbs)) this.#verbs.set(name, fn);
    for (const [name, fn] of Object.entries(options.verbs ?? {})) this.registerVerb(name, fn);
    this.faults = new AgentFaults({
      vanish: (taskId) => this.#forget(taskId),
      forgetAll: () => [...this.#tasks.keys()].filter((taskId) => this.#forget(taskId)).length,
      injected: () => void this.#counters.injectedFailures++,
    });
  }

  /** Adds or replaces a verb. */
  registerVerb(name: string, fn: Verb): this {
    if (name === '' || typeof fn !== 'function') {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `verb "${name}" needs a non-empty name and a function`,
      );
    }
    this.#verbs.set(name, fn);
    return this;
  }

  /** Names of the verbs this agent runs, sorted. */
  verbNames(): string[] {
    return [...this.#verbs.keys()].sort();
  }

  /** Starts tasks (see the port's `startTasks`). One result per request, in order. */
  startTasks(requests: readonly StartRequest[]): Promise<StartResult[]> {
    return this.faults.run('startTasks', () => this.#start(requests));
  }

  /**
   * One report per id, in order: `cancelled` for an id stopped before its start arrived,
   * `unknown` for other ids the agent does not hold.
   */
  getStatuses(taskIds: readonly string[]): Promise<TaskStatusReport[]> {
    return this.faults.run('getStatuses', () => this.#statuses(taskIds));
  }

  /**
   * Cancels running tasks at once (their verbs' later ends are ignored) and remembers ids not
   * held as used (a start of one arriving later is refused); ended tasks are left as they are.
   */
  stopTasks(taskIds: readonly string[]): Promise<void> {
    return this.faults.run('stopTasks', () => this.#stop(taskIds));
  }

  /**
   * Forgets ended tasks; running ids are ignored (and counted). Ended and unknown ids are
   * remembered as used: a start of one arriving later is refused.
   */
  clearTasks(taskIds: readonly string[]): Promise<void> {
    return this.faults.run('clearTasks', () => this.#clear(taskIds));
  }

  /** Ids of the held tasks (running or ended) starting with `prefix`. Costs O(tasks held). */
  listTasks(prefix: string): Promise<string[]> {
    return this.faults.run('listTasks', () => {
      this.#counters.listCalls++;
      const ids: string[] = [];
      for (const taskId of this.#tasks.keys()) if (taskId.startsWith(prefix)) ids.push(taskId);
      return ids;
    });
  }

  /**
   * Calls `listener` with this agent's id when tasks have ended, at most once per macrotask
   * however many ended. Returns an unsubscribe function.
   */
  onActivity(listener: (agentId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** A snapshot of the call counters. */
  counters(): AgentCounters {
    return { ...this.#counters };
  }

  /** Sets every counter to zero (not the history), e.g. between benchmark phases. */
  resetCounters(): void {
    for (const key of Object.keys(this.#counters) as (keyof AgentCounters)[])
      this.#counters[key] = 0;
  }

  /** What happened to a task id, or `undefined` if it was never started. Throws if history is off. */
  taskHistory(taskId: string): TaskHistory | undefined {
    if (this.#history === undefined) {
      throw new CocoError(ErrorCode.InvalidOptions, `agent "${this.id}" keeps no task history`);
    }
    const entry = this.#history.get(taskId);
    return entry === undefined ? undefined : { ...entry };
  }

  /** Every task id with a history (started at least once), in first-start order. */
  historyIds(): string[] {
    return this.#history === undefined ? [] : [...this.#history.keys()];
  }

  /** A copy of a held task's record. */
  task(taskId: string): TaskSnapshot | undefined {
    const r = this.#tasks.get(taskId);
    if (r === undefined) return undefined;
    const { pct: progress, endedAt, controller: _controller, ...fields } = r;
    return { ...fields, progress, endedAt: endedAt < 0 ? undefined : endedAt };
  }

  /** Number of tasks held (running or ended, not cleared). */
  get size(): number {
    return this.#tasks.size;
  }

  /** Number of running tasks. */
  get runningCount(): number {
    return this.#running;
  }

  #start(requests: readonly StartRequest[]): StartResult[] {
    const c = this.#counters;
    c.startCalls++;
    const results: StartResult[] = [];
    const now = this.#clock.now();
    for (const { taskId, verb: verbName, args } of requests) {
      if (this.#tasks.has(taskId)) {
        c.duplicateStarts++;
        if (this.#history !== undefined) this.#historyOf(taskId).duplicateStarts++;
        results.push({ taskId, accepted: true });
        continue;
      }
      const used = this.#used.size === 0 ? undefined : this.#used.get(taskId, now);
      if (used !== undefined) {
        c.rejectedStarts++;
        results.push({ taskId, accepted: false, error: usedIdError(taskId, used) });
        continue;
      }
      const verb = this.#verbs.get(verbName);
      const refusal =
        verb === undefined ? this.#unknownVerb(verbName) : this.faults.takeStartRejection(taskId);
      if (verb === undefined || refusal !== undefined) {
        c.rejectedStarts++;
        results.push({ taskId, accepted: false, error: refusal! });
        continue;
      }
      const record = new TaskRecord(taskId, verbName, args, now);
      let value: unknown;
      let thrown = false;
      try {
        value = verb(args, record);
      } catch (error) {
        if (error instanceof CocoError && error.code === ErrorCode.TaskRejected) {
          c.rejectedStarts++;
          results.push({ taskId, accepted: false, error: error.toInfo() });
          continue;
        }
        thrown = true;
        value = error;
      }
      this.#tasks.set(taskId, record);
      this.#running++;
      c.starts++;
      if (this.#history !== undefined) this.#historyOf(taskId).starts++;
      results.push({ taskId, accepted: true });
      // A verb that ended at once ends its task here: the record was just stored, running (no
      // lookup to check that it is still the one held, as a later end needs).
      if (thrown) this.#settle(record, 'failed', undefined, verbError(value));
      else if (!isPromiseLike(value)) this.#settle(record, 'succeeded', value ?? null, undefined);
      else {
        void Promise.resolve(value).then(
          (result) => this.#end(record, 'succeeded', result ?? null, undefined),
          (error: unknown) => this.#end(record, 'failed', undefined, verbError(error)),
        );
      }
    }
    return results;
  }

  #unknownVerb(verb: string): ErrorInfo {
    const knownVerbs = this.verbNames();
    const message = `agent "${this.id}" has no verb "${verb}"; known verbs: ${knownVerbs.join(', ')}`;
    return { code: ErrorCode.TaskRejected, message, details: { verb, knownVerbs } };
  }

  #statuses(taskIds: readonly string[]): TaskStatusReport[] {
    this.#counters.statusCalls++;
    this.#counters.statusTasks += taskIds.length;
    const reports: TaskStatusReport[] = [];
    for (const taskId of taskIds) {
      const r = this.#tasks.get(taskId);
      if (r === undefined) reports.push(this.#notHeld(taskId));
      else if (r.state === 'running') reports.push({ taskId, state: 'running', progress: r.pct });
      else if (r.state === 'succeeded')
        reports.push({ taskId, state: 'succeeded', result: r.result });
      else reports.push({ taskId, state: r.state, error: r.error });
    }
    return reports;
  }

  /** The status of an id the agent does not hold. */
  #notHeld(taskId: string): TaskStatusReport {
    return this.#used.size > 0 && this.#used.get(taskId, this.#clock.now()) === 'stopped'
      ? { taskId, state: 'cancelled', error: STOPPED_BEFORE_START }
      : { taskId, state: 'unknown' };
  }

  #stop(taskIds: readonly string[]): void {
    this.#counters.stopCalls++;
    const now = this.#clock.now();
    for (const taskId of taskIds) {
      const r = this.#tasks.get(taskId);
      if (r === undefined) this.#used.mark(taskId, 'stopped', now);
      if (r?.state !== 'running') continue;
      this.#counters.stops++;
      r.cancel(now);
      this.#ended(r);
    }
  }

  #clear(taskIds: readonly string[]): void {
    const c = this.#counters;
    c.clearCalls++;
    // One reading for the call (it clears its ids at once), as the reference agent does.
    const now = this.#clock.now();
    for (const taskId of taskIds) {
      const r = this.#tasks.get(taskId);
      if (r?.state === 'running') {
        c.clearsOfRunning++;
        continue;
      }
      if (r === undefined) {
        c.clearsUnknown++;
        this.#used.mark(taskId, 'cleared', now);
        continue;
      }
      this.#tasks.delete(taskId);
      c.clears++;
      if (this.#history !== undefined) this.#historyOf(taskId).clears++;
      // Its start found the id not remembered (or only expired), and a held id is marked by
      // nothing else: markNew spares a lookup, and scans for the expired one.
      this.#used.markNew(taskId, 'cleared', now);
    }
  }

  /** Ends a running task that the agent still holds; later ends of the same run are ignored. */
  #end(r: TaskRecord, state: EndedState, result: unknown, error: ErrorInfo | undefined): void {
    if (r.state === 'running' && this.#tasks.get(r.taskId) === r)
      this.#settle(r, state, result, error);
  }

  /** Ends a running task the agent holds (the caller checked both). */
  #settle(r: TaskRecord, state: EndedState, result: unknown, error: ErrorInfo | undefined): void {
    r.state = state;
    r.result = result;
    r.error = error;
    r.endedAt = this.#clock.now();
    r.stopHook = undefined;
    this.#ended(r);
  }

  #ended(r: TaskRecord): void {
    this.#running--;
    if (this.#history !== undefined) this.#historyOf(r.taskId).endedState = r.state as EndedState;
    if (this.#activityScheduled || this.#listeners.size === 0) return;
    this.#activityScheduled = true;
    setImmediate(this.#flushActivity);
  }

  readonly #flushActivity = (): void => {
    this.#activityScheduled = false;
    for (const listener of [...this.#listeners]) {
      try {
        listener(this.id);
      } catch (error) {
        // One broken listener must not starve the others; surface it like an emitter would.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  };

  /** Drops a task silently, aborting its verb if it runs. */
  #forget(taskId: string): boolean {
    const r = this.#tasks.get(taskId);
    if (r === undefined) return false;
    this.#tasks.delete(taskId);
    if (r.state === 'running') {
      this.#running--;
      r.cancel(this.#clock.now());
    }
    if (this.#history !== undefined) this.#historyOf(taskId).vanished = true;
    return true;
  }

  #historyOf(taskId: string): HistoryEntry {
    const history = this.#history!;
    let entry = history.get(taskId);
    if (entry === undefined) history.set(taskId, (entry = new HistoryEntry()));
    return entry;
  }
}
