/**
 * The calls a dispatcher round makes to one agent — reconcile (list, then stop and clear
 * strangers), start, stop, clear, poll — each bounded by the call timeout. The dispatcher
 * (./dispatcher.ts) decides when a round runs and what it does with the answers.
 *
 * @module
 */
import type { AgentBroker, StartResult, TaskStatusReport } from '../brokers/port.js';
import type { Clock, TimerHandle } from '../core/clock.js';
import { CocoError, ErrorCode } from '../core/errors.js';
import { formatTraceParent } from '../core/trace-context.js';
import type { AgentLink, DispatcherEvents, DispatcherOptions, PollGate } from './dispatch-ports.js';
import type { LiveTask } from './live.js';

/** What the calls need from their dispatcher. */
export interface AgentCallsHost {
  readonly broker: AgentBroker;
  readonly clock: Clock;
  readonly options: DispatcherOptions;
  readonly events: DispatcherEvents;
  /** Prefix of our task ids on agents (reconciliation). */
  readonly prefix: string;
  /** The poll gate (multi-node), or null on a single node. */
  readonly gate: PollGate | null;
  /** Whether this node may poll the agent now. */
  mayPoll(link: AgentLink): boolean;
  /**
   * Applies what a poll returned. `asked`: the tasks asked about, when the reports line up with
   * them (one per task, in order; reports past them are looked up by id).
   */
  applyReports(
    link: AgentLink,
    reports: readonly TaskStatusReport[],
    polled: boolean,
    asked: readonly (LiveTask | undefined)[] | null,
  ): void;
}

/** One agent's calls, for the dispatcher's rounds. */
export class AgentCalls {
  readonly #h: AgentCallsHost;

  constructor(host: AgentCallsHost) {
    this.#h = host;
  }

  /** Lists our tasks on the agent; stops and clears those nobody knows (strangers). */
  async reconcile(link: AgentLink): Promise<void> {
    const ids = await this.#call(link, 'listTasks', () =>
      this.#h.broker.listTasks(link.id, this.#h.prefix),
    );
    let strangers = ids.filter((id) => !this.#h.events.isKnown(id));
    // Other nodes' tasks are not in this node's memory: only rows missing from the store count.
    const gate = this.#h.gate;
    if (strangers.length > 0 && gate) strangers = await gate.strangers(strangers);
    if (strangers.length > 0) {
      await this.#call(link, 'stopTasks', () => this.#h.broker.stopTasks(link.id, strangers));
      await this.#call(link, 'clearTasks', () => this.#h.broker.clearTasks(link.id, strangers));
    }
    // A sweep is a reconciliation; a reconciliation without the lease leaves the one due when
    // the lease is taken.
    if (this.#h.mayPoll(link)) link.reconciled = true;
    link.sweep = false;
  }

  /** Sends the queued starts; resolves with the tasks the agent accepted. */
  async sendStarts(link: AgentLink): Promise<LiveTask[]> {
    if (link.toStart.length === 0) return [];
    const batch = link.toStart.filter((t) => !t.ended && !t.stopRequested);
    link.toStart = [];
    if (batch.length === 0) return [];
    const accepted: LiveTask[] = [];
    for (const t of batch) t.startSent = true;
    try {
      const results = await this.#call(link, 'startTasks', () =>
        this.#h.broker.startTasks(
          link.id,
          batch.map((t) =>
            t.span
              ? {
                  taskId: t.agentTaskId,
                  verb: t.verb,
                  args: t.args,
                  traceparent: formatTraceParent(t.span.spanContext()),
                }
              : { taskId: t.agentTaskId, verb: t.verb, args: t.args },
          ),
        ),
      );
      // Brokers answer one result per request, in order (the port says so): then no map by id
      // (a pair array and an entry per task). Otherwise the results are matched by id.
      let byId: Map<string, StartResult> | null = null;
      if (results.length !== batch.length) byId = byTaskId(results);
      else
        for (let i = 0; i < batch.length; i++)
          if (results[i]!.taskId !== batch[i]!.agentTaskId) {
            byId = byTaskId(results);
            break;
          }
      for (let i = 0; i < batch.length; i++) {
        const task = batch[i]!;
        const r = byId === null ? results[i] : byId.get(task.agentTaskId);
        if (!r) {
          link.toStart.push(task); // not answered: try again next round
        } else if (r.accepted) {
          link.track(task);
          accepted.push(task);
        } else {
          task.agentDone = true;
          this.#h.events.rejected(task, r.error);
        }
      }
      if (link.toStart.length > 0) link.wantPoll = true;
    } catch (error) {
      link.toStart = batch.concat(link.toStart);
      throw error;
    }
    return accepted;
  }

  /** Sends the queued stops. */
  async sendStops(link: AgentLink): Promise<void> {
    if (link.toStop.length === 0) return;
    const batch = link.toStop;
    link.toStop = [];
    try {
      await this.#call(link, 'stopTasks', () =>
        this.#h.broker.stopTasks(
          link.id,
          batch.map((t) => t.agentTaskId),
        ),
      );
      const now = this.#h.clock.now();
      for (const t of batch) t.stopSentAt = now;
      link.wantPoll = true;
    } catch (error) {
      link.toStop = batch.concat(link.toStop);
      throw error;
    }
  }

  /** Sends the queued clears. */
  async sendClears(link: AgentLink): Promise<void> {
    if (link.toClear.length === 0) return;
    const batch = link.toClear.filter((t) => !t.cleared);
    link.toClear = [];
    if (batch.length === 0) return;
    try {
      await this.#call(link, 'clearTasks', () =>
        this.#h.broker.clearTasks(
          link.id,
          batch.map((t) => t.agentTaskId),
        ),
      );
    } catch (error) {
      link.toClear = batch.concat(link.toClear);
      throw error;
    }
    for (const t of batch) t.cleared = true;
    this.#h.events.cleared(batch);
  }

  /**
   * Asks the agent for the statuses of its running tasks (ours, and relayed ones); with `all`
   * false (the broker pushes every change of the others), only of those no report vouched for.
   * Answers the number of task ids asked about.
   */
  async poll(link: AgentLink, all: boolean): Promise<number> {
    // The watched tasks no poll has asked about yet are asked about now (see AgentLink.#fresh).
    const fresh = link.takeFresh();
    // The tasks asked about, in the ids' order where known: a lined-up answer is applied without
    // a lookup by id per report (a hash of each report's id, fresh from the broker).
    let tasks: (LiveTask | undefined)[];
    let ids: string[];
    if (all) {
      ids = [...link.running.keys()];
      tasks = [...link.running.values()];
      const foreign = this.#h.gate?.foreignIds(link.id) ?? [];
      if (foreign.length > 0) ids.push(...foreign);
    } else {
      tasks = [];
      ids = link.unvouchedIds(fresh, tasks);
    }
    if (ids.length === 0) {
      link.lastPollAt = this.#h.clock.now();
      return 0;
    }
    let reports: readonly TaskStatusReport[];
    try {
      reports = await this.#call(link, 'getStatuses', () =>
        this.#h.broker.getStatuses(link.id, ids),
      );
    } catch (error) {
      link.unvouchFresh(fresh);
      throw error;
    }
    // A report for each id, in order (the port's contract), vouches for the fresh tasks or not
    // as for any other; a broker that answered otherwise leaves them all to be asked again.
    const lined = answersEach(ids, reports);
    if (fresh.length > 0 && !lined) link.unvouchFresh(fresh);
    link.lastPollAt = this.#h.clock.now();
    this.#h.applyReports(link, reports, true, lined ? tasks : null);
    return ids.length;
  }

  async #call<T>(link: AgentLink, what: string, fn: () => Promise<T>): Promise<T> {
    let timer: TimerHandle | null = null;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.#h.clock.setTimer(this.#h.options.callTimeoutMs, () =>
        reject(
          new CocoError(
            ErrorCode.AgentTimeout,
            `agent ${link.id} did not answer ${what} within ${this.#h.options.callTimeoutMs} ms`,
            { retryable: true },
          ),
        ),
      );
    });
    const began = performance.now();
    try {
      const answer = await Promise.race([fn(), timeout]);
      this.#h.events.call?.(link.id, what, 'ok', performance.now() - began);
      return answer;
    } catch (error) {
      const timedOut = error instanceof CocoError && error.code === ErrorCode.AgentTimeout;
      this.#h.events.call?.(
        link.id,
        what,
        timedOut ? 'timeout' : 'error',
        performance.now() - began,
      );
      throw error;
    } finally {
      (timer as TimerHandle | null)?.cancel();
    }
  }
}

/** Whether `reports` holds one report per id of `ids`, in their order. */
function answersEach(ids: readonly string[], reports: readonly TaskStatusReport[]): boolean {
  if (reports.length !== ids.length) return false;
  for (let i = 0; i < ids.length; i++) if (reports[i]!.taskId !== ids[i]) return false;
  return true;
}

/** Start results by task id (a broker that answered out of order, or not for every task). */
function byTaskId(results: readonly StartResult[]): Map<string, StartResult> {
  const m = new Map<string, StartResult>();
  for (const r of results) m.set(r.taskId, r);
  return m;
}
