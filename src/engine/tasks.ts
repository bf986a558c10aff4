/**
 * The life of async tasks on the engine's side: creating a task (its intent is stored before
 * the agent hears of it), deadlines, stops, and turning the dispatcher's reports into task ends
 * that wake the owning command at once.
 *
 * @module
 */
import type { TaskStatusReport } from '../brokers/port.js';
import type { Clock } from '../core/clock.js';
import type { Logger, TaskSpec } from '../core/command-type.js';
import { CocoError, ErrorCode, ValidationError, type ErrorInfo } from '../core/errors.js';
import { assertJson, isDuration, storableText, UNSTORABLE_TEXT } from '../core/params.js';
import type { TaskStatus } from '../core/states.js';
import { agentTaskId } from '../core/records.js';
import type { Committer } from './committer.js';
import type { AgentBroker } from '../brokers/port.js';
import { Admission, type AdmissionLimits, type SlotLedger } from './admission.js';
import { Dispatcher, type DispatcherEvents, type PollGate } from './dispatcher.js';
import type { EngineTuning } from './options.js';
import type { EngineEvents } from './events.js';
import { LiveTask, type LiveCommand } from './live.js';
import type { Tracing } from './tracing.js';

/**
 * A warning about one agent (calls failing, tasks for an unknown agent) is logged at the first
 * occurrence, then at most once a minute with the number of occurrences in between: an agent
 * that stays down, or a flood of tasks for a mistyped agent, must not bury the log (the events
 * still report every occurrence).
 */
const AGENT_WARNING_INTERVAL_MS = 60_000;

/** Logs one kind of warning per key at most once per interval, counting what it held back. */
class WarningThrottle {
  readonly #last = new Map<string, { at: number; held: number }>();
  /** Whether to log now, and how many occurrences were held back since the last line. */
  take(key: string, now: number): { log: boolean; held: number } {
    const last = this.#last.get(key);
    if (last !== undefined && now - last.at < AGENT_WARNING_INTERVAL_MS) {
      last.held++;
      return { log: false, held: 0 };
    }
    this.#last.set(key, { at: now, held: 0 });
    return { log: true, held: last?.held ?? 0 };
  }
  /** Forgets a key (its trouble is over: the next occurrence logs at once). */
  reset(key: string): void {
    this.#last.delete(key);
  }
}

/** What the task tracker needs from the coordinator. */
export interface TaskHost {
  readonly stopped: boolean;
  readonly log: Logger;
  readonly live: ReadonlyMap<number, LiveCommand>;
  /** Commands that could not be loaded (their tasks are not strangers). */
  readonly unloaded: ReadonlyMap<number, unknown>;
  /** Marks a command changed, at `now` when given (else the clock's). */
  touch(c: LiveCommand, now?: number): void;
  wake(c: LiveCommand): void;
  /** Every task of a settled command was cleared. */
  allCleared(c: LiveCommand): void;
}

/** What a task tracker is built with. */
export interface TaskTrackerParts {
  readonly host: TaskHost;
  readonly committer: Committer;
  readonly clock: Clock;
  readonly events: EngineEvents;
  readonly storeId: string;
  /** The agents, and the settings of the calls to them (the tracker's dispatcher makes them). */
  readonly broker: AgentBroker;
  readonly tuning: Readonly<Required<EngineTuning>>;
  /** The dispatcher's poll gate on a shared store, or null alone. */
  readonly gate: PollGate | null;
  /** A number in [0, 1) for back-off jitter. */
  readonly random: () => number;
  /** Admission limits per agent (none: every task starts at once). */
  readonly limits: AdmissionLimits;
  /** On a shared store, the slot ledger (the agents' lease holders admit); null alone. */
  readonly ledger: SlotLedger | null;
  /** The engine's spans: a task's span runs from its creation to its end. */
  readonly tracing: Tracing;
}

/**
 * Creates tasks and follows them to their end. It owns the dispatcher that makes the agent
 * calls, and hears what the agents say of the tasks through it ({@link DispatcherEvents}).
 */
export class TaskTracker implements DispatcherEvents {
  readonly dispatcher: Dispatcher;
  /** The queues of agents with a limit (engine/admission.ts). */
  readonly admission: Admission;
  readonly #host: TaskHost;
  readonly #broker: AgentBroker;
  readonly #committer: Committer;
  readonly #clock: Clock;
  readonly #events: EngineEvents;
  readonly #storeId: string;
  readonly #vanishGraceMs: number;
  readonly #tracing: Tracing;
  readonly #warnings = new WarningThrottle();
  readonly #waiters = new Map<
    LiveTask,
    { resolve(v: unknown): void; reject(e: unknown): void }[]
  >();

  constructor(parts: TaskTrackerParts) {
    const { tuning } = parts;
    this.#host = parts.host;
    this.#broker = parts.broker;
    this.#committer = parts.committer;
    this.#clock = parts.clock;
    this.#events = parts.events;
    this.#storeId = parts.storeId;
    this.#vanishGraceMs = tuning.vanishGraceMs;
    this.#tracing = parts.tracing;
    this.dispatcher = new Dispatcher({
      broker: parts.broker,
      clock: parts.clock,
      options: {
        pollIntervalMs: tuning.pollIntervalMs,
        callTimeoutMs: tuning.agentCallTimeoutMs,
        backoffBaseMs: tuning.agentBackoffBaseMs,
        backoffMaxMs: tuning.agentBackoffMaxMs,
        vanishGraceMs: tuning.vanishGraceMs,
        reconcileIntervalMs: tuning.reconcileIntervalMs,
      },
      events: this,
      prefix: `${parts.storeId}-`,
      gate: parts.gate,
      random: parts.random,
    });
    this.admission = new Admission(
      {
        now: () => this.#clock.now(),
        admitted: (t) => this.#admitted(t),
        liveTasks: () => this.#liveTasks(),
        ledger: parts.ledger,
      },
      parts.limits,
    );
  }

  *#liveTasks(): Iterable<LiveTask> {
    for (const c of this.#host.live.values()) if (!c.held) yield* c.tasks;
  }

  /**
   * A task took a slot of its limited agent (at its creation, or later from the queue): it is
   * stored `created` (its deadline counting from now), and started once that is durable.
   */
  #admitted(t: LiveTask): void {
    if (t.status === 'queued') t.admit(this.#clock.now());
    this.#committer.task(t);
    this.#committer.afterCommitWith(this.#startAfter, t, t.command);
    this.armDeadline(t);
    if (this.#events.has('admitted')) {
      const now = this.#clock.now();
      this.#events.emit('admitted', {
        commandId: t.command.id,
        ordinal: t.ordinal,
        agentId: t.agentId,
        verb: t.verb,
        waitedMs: now - t.createdAt,
      });
    }
  }

  /**
   * A task's intent is durable: it starts on its agent, unless it ended or is being stopped
   * meanwhile. Made once, not a closure per task (see `Committer.afterCommitWith`).
   */
  readonly #startAfter = (t: LiveTask): void => {
    if (t.ended || t.stopRequested || this.#host.stopped) return;
    const retiredAt = this.#broker.retiredAt?.(t.agentId) ?? null;
    if (retiredAt !== null && this.#submittedSince(t.command, retiredAt))
      this.#refuseRetired(t, retiredAt);
    else this.dispatcher.start(t);
  };

  /**
   * Whether the tree of `c` was submitted at or after `at` (its root created then). A root this
   * node does not hold live is taken as submitted before: its work goes on as before drains.
   */
  #submittedSince(c: LiveCommand, at: number): boolean {
    const root = c.parentId === null ? c : this.#host.live.get(c.rootId);
    return root !== undefined && root.createdAt >= at;
  }

  /**
   * A new tree's task for a retired agent (a drain): it fails without being sent, as a task
   * stopped while queued, so its command fails (and compensates) at once.
   */
  #refuseRetired(t: LiveTask, retiredAt: number): void {
    const since = new Date(retiredAt).toISOString();
    const error: ErrorInfo = {
      code: ErrorCode.AgentRetired,
      message:
        `agent "${t.agentId}" was retired from this node's configuration at ${since}; task ` +
        `${t.agentTaskId} (${t.verb}) of a tree submitted since was not started (only the trees ` +
        'submitted before still run there)',
      details: { agentId: t.agentId, retiredAt, taskId: t.agentTaskId },
    };
    this.#end(t, 'failed', null, error);
    t.agentDone = true;
    t.cleared = true;
    const { log, held } = this.#warnings.take(`retired:${t.agentId}`, this.#clock.now());
    if (log)
      this.#host.log.warn(
        { agentId: t.agentId, heldBack: held, error },
        'a task of a tree submitted after its agent retired failed without being sent',
      );
  }

  /** A task's stop is durable: it is sent to its agent. Made once. */
  readonly #stopAfter = (t: LiveTask): void => {
    if (!this.#host.stopped) this.dispatcher.stop(t);
  };

  /** Creates a task of `c`; it starts on its agent once its intent is durable. */
  create(c: LiveCommand, spec: TaskSpec, origin: number): LiveTask {
    if (typeof spec?.agent !== 'string' || spec.agent === '')
      badTask(c, 'agent', 'must be a non-empty string');
    if (typeof spec.verb !== 'string' || spec.verb === '')
      badTask(c, 'verb', 'must be a non-empty string');
    // Often taken from a submission's parameters: refused here, not by the store for ever.
    if (!storableText(spec.agent)) badTask(c, 'agent', UNSTORABLE_TEXT);
    if (!storableText(spec.verb)) badTask(c, 'verb', UNSTORABLE_TEXT);
    if (spec.deadlineMs !== undefined && !isDuration(spec.deadlineMs))
      badTask(c, 'deadlineMs', 'must be a positive number of ms, at most 100 years');
    if (spec.args !== undefined)
      assertJson(spec.args, `invalid task arguments for command ${c.id} (${c.type.name})`);
    const now = this.#clock.now();
    const ordinal = c.tasks.length;
    // A whole ms (the stores keep times as integers), never early.
    const deadlineAt = spec.deadlineMs === undefined ? null : now + Math.ceil(spec.deadlineMs);
    const limited = this.admission.limited(spec.agent);
    const t = new LiveTask(
      c,
      ordinal,
      origin,
      spec.agent,
      spec.verb,
      spec.args ?? null,
      agentTaskId(this.#storeId, c.id, ordinal),
      limited ? 'queued' : 'created',
      null,
      null,
      deadlineAt,
      false,
      now,
      null,
      false,
    );
    c.addTask(t);
    this.#tracing.task(t);
    c.tasksCleared = false;
    this.#committer.task(t);
    this.#host.touch(c, now);
    if (limited) {
      // Stored `queued`, or `created` in the same batch if a slot is free (see #admitted).
      this.admission.submit(t);
      return t;
    }
    // The intent is durable before the agent hears of the task.
    this.#committer.afterCommitWith(this.#startAfter, t, c);
    this.armDeadline(t);
    return t;
  }

  /** Arms the deadline timer of a task that has one (a queued task's counts from admission). */
  armDeadline(t: LiveTask): void {
    if (t.deadlineAt === null || t.ended || t.status === 'queued') return;
    t.deadlineTimer = this.#clock.setTimer(t.deadlineAt - this.#clock.now(), () => {
      t.deadlineTimer = null;
      if (t.ended) return;
      this.#end(t, 'failed', null, this.#deadlineError(t));
      this.stop(t);
    });
  }

  /** The error of a task past its deadline: it says whether its agent was answering. */
  #deadlineError(t: LiveTask): ErrorInfo {
    const what = `task ${t.agentTaskId} (${t.verb} on ${t.agentId}) ran past its deadline and was stopped`;
    const health = this.dispatcher.agentHealth(t.agentId);
    if (health.reachable)
      return {
        code: ErrorCode.TaskDeadlineExceeded,
        message: what,
        details: { agent: 'reachable' },
      };
    const since = new Date(health.since ?? this.#clock.now()).toISOString();
    return {
      code: ErrorCode.TaskDeadlineExceeded,
      message:
        `${what}; agent ${t.agentId} has been unreachable since ${since} (${health.failures} ` +
        `failed call(s), the last: ${health.lastError?.message ?? 'no answer'})`,
      details: {
        agent: 'unreachable',
        since: health.since,
        failures: health.failures,
        lastError: health.lastError,
      },
    };
  }

  /**
   * Decides a stop: stored with the task, sent to the agent after the commit. A queued task is
   * taken out of its queue and cancelled at once: it was never sent, and never will be.
   */
  stop(t: LiveTask): void {
    if (t.status === 'queued' && this.admission.remove(t)) {
      this.#end(t, 'cancelled', null, {
        code: ErrorCode.Cancelled,
        message: `task ${t.agentTaskId} (${t.verb} on ${t.agentId}) was stopped while queued: it never started`,
      });
      t.agentDone = true;
      t.cleared = true;
      this.admission.cancelled(t);
      return;
    }
    if (!t.stopRequested) {
      t.stopRequested = true;
      this.#committer.task(t);
    }
    this.#committer.afterCommitWith(this.#stopAfter, t, t.command);
  }

  /** Resolves with the task's result when it succeeds; rejects when it ends otherwise. */
  await(t: LiveTask): Promise<unknown> {
    if (t.ended)
      return t.status === 'succeeded' ? Promise.resolve(t.result) : Promise.reject(taskError(t));
    return new Promise((resolve, reject) => {
      const list = this.#waiters.get(t) ?? [];
      list.push({ resolve, reject });
      this.#waiters.set(t, list);
    });
  }

  #end(t: LiveTask, status: TaskStatus, result: unknown, error: ErrorInfo | null): void {
    if (t.ended) return;
    const now = this.#clock.now();
    t.end(status, result, error, now);
    this.#tracing.taskEnded(t);
    this.#committer.task(t);
    const c = t.command;
    c.taskEnded(t, now);
    if (t.isWork && status !== 'succeeded' && c.failurePolicy === 'fail-fast') c.abort?.abort();
    const waiters = this.#waiters.get(t);
    if (waiters) {
      this.#waiters.delete(t);
      for (const w of waiters) {
        if (status === 'succeeded') w.resolve(t.result);
        else w.reject(taskError(t));
      }
    }
    this.#committer.command(c);
    this.#host.wake(c);
  }

  // -- DispatcherEvents --

  started(t: LiveTask): void {
    if (t.status !== 'created') return;
    t.markRunning();
    this.#tracing.taskStarted(t);
    if (this.dispatcher.pollsAgent(t.agentId)) this.#committer.taskStarted(t);
    else this.#committer.task(t);
  }

  rejected(t: LiveTask, error: ErrorInfo): void {
    if (error.code === ErrorCode.TaskIdUsed) {
      // The agent saw this id stopped or cleared before (ids are single-use): this start never
      // ran, and no earlier one is running.
      this.#end(t, 'cancelled', null, {
        code: ErrorCode.Cancelled,
        message: `agent ${t.agentId} refused a start of task ${t.agentTaskId}: the id was stopped or cleared before, so it never ran`,
        details: { cause: error },
      });
      return;
    }
    this.#end(t, 'failed', null, {
      code: ErrorCode.TaskRejected,
      message: `agent ${t.agentId} refused task ${t.agentTaskId}: ${error.message}`,
      details: { cause: error },
    });
  }

  failed(t: LiveTask, error: ErrorInfo): void {
    this.#end(t, 'failed', null, error);
  }

  agentUnknown(agentId: string, error: ErrorInfo, tasks: number): void {
    const { log, held } = this.#warnings.take(`unknown:${agentId}`, this.#clock.now());
    if (log)
      this.#host.log.warn(
        { agentId, tasks, heldBack: held, error },
        'tasks for an agent this node does not know failed',
      );
  }

  report(t: LiveTask, r: TaskStatusReport): void {
    if (r.state === 'running') {
      if (r.progress !== undefined && r.progress !== t.progress) {
        t.progress = r.progress;
        if (this.#events.has('progress')) {
          this.#events.emit('progress', {
            commandId: t.command.id,
            ordinal: t.ordinal,
            taskId: t.agentTaskId,
            progress: r.progress,
          });
        }
      }
      if (t.status === 'created') this.started(t);
      return;
    }
    if (r.state === 'unknown') return;
    this.#end(t, r.state, r.result, r.error ?? null);
  }

  vanished(t: LiveTask, unknownSince: number): void {
    if (t.status === 'created') {
      // Never confirmed started and unknown to the agent: it never ran.
      this.#end(t, 'cancelled', null, {
        code: ErrorCode.Cancelled,
        message: `task ${t.agentTaskId} was stopped before it started`,
      });
      return;
    }
    this.#end(t, 'failed', null, {
      code: ErrorCode.TaskVanished,
      message:
        `agent ${t.agentId} no longer knows task ${t.agentTaskId} (${t.verb}); missing since ` +
        `${new Date(unknownSince).toISOString()}, beyond the ${this.#vanishGraceMs} ms grace period`,
      details: { agentId: t.agentId, taskId: t.agentTaskId, unknownSince },
    });
  }

  cleared(tasks: readonly LiveTask[]): void {
    const commands = new Set<LiveCommand>();
    for (const t of tasks) commands.add(t.command);
    for (const c of commands) {
      if (c.settled && allTasksCleared(c)) this.#host.allCleared(c);
    }
  }

  agentState(agentId: string, up: boolean, error: ErrorInfo | null, failures: number): void {
    if (up) {
      this.#warnings.reset(`down:${agentId}`);
      this.#host.log.info({ agentId }, 'agent reachable again');
    } else {
      const { log, held } = this.#warnings.take(`down:${agentId}`, this.#clock.now());
      if (log)
        this.#host.log.warn(
          { agentId, error, failures, heldBack: held },
          'agent call failed; backing off',
        );
    }
    this.#events.emit('agent', { agentId, up, error, failures });
  }

  call(agentId: string, call: string, outcome: 'ok' | 'timeout' | 'error', ms: number): void {
    if (this.#events.has('agent-call'))
      this.#events.emit('agent-call', { agentId, call, outcome, ms });
  }

  isKnown(taskId: string): boolean {
    const m = /-(\d+)-(\d+)$/.exec(taskId);
    if (!m) return false;
    // A command left untouched keeps its tasks, whatever state they are in.
    if (this.#host.unloaded.has(Number(m[1]))) return true;
    const c = this.#host.live.get(Number(m[1]));
    const t = c?.tasks[Number(m[2])];
    // A task taken for cleared that its agent still lists was left there by a crash: clear it.
    return t?.agentTaskId === taskId && !t.cleared;
  }
}

/**
 * Task failures a retry cannot change: the agent refused the start (unknown verb, bad
 * arguments), or the agent is unknown. Any other failure (the verb failed, the agent restarted
 * or lost the task, a deadline) may pass on a new attempt with a fresh task.
 */
const FINAL_TASK_FAILURES = new Set<string>([
  ErrorCode.TaskRejected,
  ErrorCode.AgentUnknown,
  ErrorCode.ParametersInvalid,
]);

/** The error a handler awaiting a task gets when the task did not succeed. */
function taskError(t: LiveTask): CocoError {
  const e = t.error ?? { code: ErrorCode.TaskFailed, message: `task ${t.agentTaskId} ${t.status}` };
  return new CocoError(
    e.code,
    `task ${t.agentTaskId} (${t.verb} on ${t.agentId}) ${t.status}: ${e.message}`,
    { details: e.details, retryable: !FINAL_TASK_FAILURES.has(e.code) },
  );
}

/**
 * Rejects a task spec: the field at `path` is wrong. A function of the module, not a closure
 * made by every {@link TaskTracker.create} (one allocation per task, in code that runs for all).
 */
function badTask(c: LiveCommand, path: string, message: string): never {
  throw new ValidationError(`invalid task for command ${c.id} (${c.type.name})`, [
    { path, message },
  ]);
}

/** Whether every task of `c` was cleared on its agent (a loop: no callback per command). */
function allTasksCleared(c: LiveCommand): boolean {
  const tasks = c.tasks;
  for (let i = 0; i < tasks.length; i++) if (!tasks[i]!.cleared) return false;
  return true;
}
