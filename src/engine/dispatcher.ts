/**
 * Talks to the agents: starts, stops and clears tasks and polls their statuses, batching every
 * kind of call per agent (a poll cycle is one call per agent, however many tasks it runs). One
 * round of calls runs per agent at a time; errors and timeouts back that agent off
 * exponentially (with jitter) while the others go on.
 *
 * While the broker pushes every status change of an agent (`AgentBroker.pushesStatuses`: a live
 * long-poll feed), a poll cycle asks only about the tasks no report has vouched for yet (see
 * `AgentLink.unvouchedIds`): its cost follows the tasks that need a look, not the tasks in flight.
 *
 * An agent the broker does not know (a typo in a task's agent id, an agent removed from the
 * configuration) is not backed off forever: its tasks fail at once with `AGENT_UNKNOWN`, naming
 * the agent and the agents the broker knows.
 *
 * @module
 */
import type { AgentBroker, TaskStatusReport } from '../brokers/port.js';
import type { Clock, TimerHandle } from '../core/clock.js';
import { CocoError, ErrorCode, toErrorInfo, type ErrorInfo } from '../core/errors.js';
import { AgentCalls } from './agent-calls.js';
import { agentUnknownError, KnownAgents } from './known-agents.js';
import type { LiveTask } from './live.js';
import {
  AgentLink,
  type DispatcherEvents,
  type DispatcherOptions,
  type PollGate,
} from './dispatch-ports.js';

export type { DispatcherEvents, DispatcherOptions, PollGate } from './dispatch-ports.js';

/**
 * How soon an agent's round is tried again after the broker refused it for want of capacity of
 * its own (`BROKER_SATURATED`: no call slot within the call's budget, or no file descriptor).
 * Why 1 s: about one poll interval — the broker's queue of calls moves in well under that at its
 * default 256 in flight — without the exponential back-off of a failing agent, which would leave
 * a healthy agent unpolled for up to `backoffMaxMs` because this node was busy.
 */
const SATURATED_RETRY_MS = 1_000;

/** What a dispatcher is built with. */
export interface DispatcherParts {
  readonly broker: AgentBroker;
  readonly clock: Clock;
  readonly options: DispatcherOptions;
  /** Who hears what the agents say of the tasks (the task tracker). */
  readonly events: DispatcherEvents;
  /** Prefix of our task ids on agents (reconciliation). */
  readonly prefix: string;
  /** The poll gate of multi-node polling; none on a single node. */
  readonly gate?: PollGate | null;
  /** A number in [0, 1) for back-off jitter. @default Math.random */
  readonly random?: () => number;
}

/** Per-agent batching of task calls, polling and back-off. */
export class Dispatcher {
  readonly #links = new Map<string, AgentLink>();
  #stopped = false;
  #unsubscribe: (() => void) | null = null;
  /** Tasks whose clear waits for the agent to report them ended. */
  readonly #clearWhenDone = new Set<LiveTask>();
  readonly #calls: AgentCalls;
  /** The agents the broker is configured for, listed at start and looked up again when needed. */
  readonly #known: KnownAgents;
  /** The timer of the next periodic reconciliation of every agent. */
  #reconcileTimer: TimerHandle | null = null;
  /** Polls made, and task ids asked about by them (see {@link Dispatcher.pollCounts}). */
  #polls = 0;
  #tasksPolled = 0;

  private readonly broker: AgentBroker;
  private readonly clock: Clock;
  private readonly options: DispatcherOptions;
  private readonly events: DispatcherEvents;
  /** Multi-node polling (the node's agent leases); null on a single node. */
  private readonly gate: PollGate | null;
  private readonly random: () => number;
  constructor(parts: DispatcherParts) {
    const { broker, clock, options, events, prefix } = parts;
    this.broker = broker;
    this.clock = clock;
    this.options = options;
    this.events = events;
    this.gate = parts.gate ?? null;
    this.random = parts.random ?? Math.random;
    this.#known = new KnownAgents(broker, clock);
    // The gate tells of leases gained and lost, and of new foreign tasks to poll.
    this.gate?.onChange?.((agentId, held) => this.gateChanged(agentId, held));
    this.#calls = new AgentCalls({
      broker,
      clock,
      options,
      events,
      prefix,
      gate: this.gate,
      mayPoll: (link) => this.#mayPoll(link),
      applyReports: (link, reports, polled, asked) =>
        this.#applyReports(link, reports, polled, asked),
    });
    const activity =
      broker.onActivity?.((agentId, reports) => {
        if (reports) this.apply(agentId, reports);
        else this.pollSoon(agentId);
      }) ?? null;
    // An agent added by a reload takes tasks at once, not after the listing's refresh period.
    const agents = broker.onAgentsChanged?.(() => this.#known.invalidate()) ?? null;
    this.#unsubscribe = () => {
      activity?.();
      agents?.();
    };
  }

  /** Whether this node polls the agent now (always, on a single node). */
  pollsAgent(agentId: string): boolean {
    return this.gate === null || this.gate.mayPoll(agentId);
  }

  /** Whether this node polls the agent (always, on a single node). */
  #mayPoll(link: AgentLink): boolean {
    return this.gate === null || this.gate.mayPoll(link.id);
  }

  /** Whether the agent has tasks this node should poll now. */
  #pollable(link: AgentLink): boolean {
    if (this.gate === null) return link.running.size > 0;
    if (!this.gate.mayPoll(link.id)) {
      if (link.running.size > 0) this.gate.wanted(link.id);
      return false;
    }
    return link.running.size > 0 || this.gate.foreignIds(link.id).length > 0;
  }

  #hasCalls(link: AgentLink): boolean {
    return link.hasTaskCalls || link.sweep || (!link.reconciled && this.#mayPoll(link));
  }

  /**
   * Reconciles every known agent once more: another node left (fenced or retired), and the
   * ended tasks it had not cleared yet may be on any agent, held by this node or by none (its
   * leases went with it). Only listing and clearing: polling stays with the lease holder.
   */
  sweep(): void {
    for (const link of this.#links.values()) {
      link.sweep = true;
      this.#kick(link);
    }
  }

  /**
   * The poll gate changed its mind about an agent: on taking its lease, reconcile it again and
   * poll at once; on losing it, the next round skips polling.
   */
  gateChanged(agentId: string, held: boolean): void {
    const link = this.#link(agentId);
    if (held) {
      link.reconciled = false;
      link.wantPoll = true;
      link.pollAll = true;
    }
    this.#kick(link);
  }

  /** Agents where this node has tasks to poll (running, or stopping and not yet ended). */
  agentsWithTasks(): string[] {
    const ids: string[] = [];
    for (const link of this.#links.values()) if (link.running.size > 0) ids.push(link.id);
    return ids;
  }

  /**
   * Applies a report relayed by the node polling the task's agent (multi-node), as if this
   * node's own poll had returned it.
   */
  applyRelayed(task: LiveTask, report: TaskStatusReport): void {
    const link = this.#links.get(task.agentId);
    if (!link || this.#stopped) return;
    this.#applyReports(link, [report], true, null);
  }

  /**
   * Creates links for every agent the broker knows, so each is reconciled; the tasks of agents
   * it does not know (loaded at start) fail.
   */
  async discover(): Promise<void> {
    const known = await this.#known.list(true);
    for (const link of [...this.#links.values()])
      if (!known.has(link.id)) void this.#checkKnown(link);
    for (const id of known) this.#kick(this.#link(id));
    this.#scheduleReconcile();
  }

  /**
   * Reconciles every agent again every `reconcileIntervalMs`: tasks of ours that appear on an
   * agent while the engine runs (a late start, a restored agent) are stopped and cleared without
   * waiting for the next start. On a shared store only the agent's lease holder reconciles.
   */
  #scheduleReconcile(): void {
    if (this.#stopped || this.#reconcileTimer !== null) return;
    this.#reconcileTimer = this.clock.setTimer(this.options.reconcileIntervalMs, () => {
      this.#reconcileTimer = null;
      for (const link of this.#links.values()) {
        if (link.unknown) continue;
        link.reconciled = false;
        this.#kick(link);
      }
      this.#scheduleReconcile();
    });
  }

  /** How the agent answers: whether calls fail, since when, and the last error. */
  agentHealth(agentId: string): {
    readonly reachable: boolean;
    readonly since: number | null;
    readonly failures: number;
    readonly lastError: ErrorInfo | null;
  } {
    const link = this.#links.get(agentId);
    return link?.downSince != null
      ? {
          reachable: false,
          since: link.downSince,
          failures: link.failures,
          lastError: link.lastError,
        }
      : { reachable: true, since: null, failures: 0, lastError: null };
  }

  /** Asks the broker whether it knows the link's agent; fails its tasks if it does not. */
  async #checkKnown(link: AgentLink, force = false): Promise<void> {
    if (link.checking) return;
    link.checking = true;
    try {
      link.unknown = !(await this.#known.list(force)).has(link.id);
    } catch {
      link.unknown = false; // the broker cannot tell: try the agent itself
    } finally {
      link.checking = false;
    }
    this.#kick(link);
  }

  /**
   * The link's agent is unknown: its queued and watched tasks fail with `AGENT_UNKNOWN` (they
   * can never be reached) and count as ended and cleared on the agent, so their commands end.
   */
  #failUnknown(link: AgentLink): void {
    const tasks = new Set<LiveTask>([...link.toStart, ...link.toStop, ...link.running.values()]);
    link.toStart = [];
    link.toStop = [];
    link.untrackAll();
    const known = this.#known.sorted();
    let failed = 0;
    let first: ErrorInfo | null = null;
    for (const t of tasks) {
      t.agentDone = true;
      if (t.ended) continue;
      const error = agentUnknownError(link.id, known, t);
      first ??= error;
      failed++;
      this.events.failed(t, error);
    }
    const cleared = link.toClear.filter((t) => !t.cleared);
    link.toClear = [];
    for (const t of this.#clearWhenDone) {
      if (t.agentId !== link.id) continue;
      this.#clearWhenDone.delete(t);
      t.agentDone = true;
      if (!t.cleared) cleared.push(t);
    }
    for (const t of cleared) t.cleared = true;
    if (cleared.length > 0) this.events.cleared(cleared);
    if (first) this.events.agentUnknown(link.id, first, failed);
  }

  /** Queues a start (after its intent is durable). */
  start(task: LiveTask): void {
    const link = this.#link(task.agentId);
    link.toStart.push(task);
    this.#kick(link);
  }

  /** Starts polling a task that is already running on its agent (after a restart). */
  watch(task: LiveTask): void {
    const link = this.#link(task.agentId);
    link.watch(task);
    link.wantPoll = true;
    this.#kick(link);
  }

  /** Queues a stop; the task stays polled until its agent reports it ended. */
  stop(task: LiveTask): void {
    const link = this.#link(task.agentId);
    link.toStop.push(task);
    if (!task.agentDone) link.track(task);
    this.#kick(link);
  }

  /** Queues a clear once the agent has reported the task ended. */
  clear(task: LiveTask): void {
    if (task.cleared) return;
    if (this.#links.get(task.agentId)?.unknown) {
      // Nothing to clear on an agent this node cannot reach: the task is let go.
      task.agentDone = true;
      task.cleared = true;
      this.events.cleared([task]);
      return;
    }
    if (!task.agentDone) {
      this.#clearWhenDone.add(task);
      const link = this.#link(task.agentId);
      link.track(task);
      this.#kick(link);
      return;
    }
    const link = this.#link(task.agentId);
    link.toClear.push(task);
    this.#kick(link);
  }

  /**
   * Polls an agent as soon as possible (an activity hint, a restart of the agent), asking about
   * every task even while the broker pushes its statuses.
   */
  pollSoon(agentId: string): void {
    const link = this.#links.get(agentId);
    if (!link) return;
    link.wantPoll = true;
    link.pollAll = true;
    this.#kick(link);
  }

  /** Each agent this dispatcher has called or was told of, and whether its calls succeed. */
  agentStates(): { readonly agentId: string; readonly up: boolean }[] {
    const states = [];
    for (const link of this.#links.values())
      if (!link.unknown) states.push({ agentId: link.id, up: link.downSince === null });
    return states;
  }

  /**
   * Whether this dispatcher has work of its own on an agent: tasks to start (or whose start is
   * on its way: a round under way), polled, to stop or to clear, or waiting for their end to be
   * cleared. An agent without any can be let go (`Engine.forgetAgent`).
   */
  holdsWork(agentId: string): boolean {
    const link = this.#links.get(agentId);
    if (!link) return false;
    if (link.busy || link.running.size > 0) return true;
    if (link.toStart.length > 0 || link.toStop.length > 0 || link.toClear.length > 0) return true;
    for (const t of this.#clearWhenDone) if (t.agentId === agentId) return true;
    return false;
  }

  /** Tasks watched (started, not ended) per agent id. */
  tasksByAgent(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const link of this.#links.values()) counts.set(link.id, link.running.size);
    return counts;
  }

  get watchedTasks(): number {
    let n = 0;
    for (const link of this.#links.values()) n += link.running.size;
    return n;
  }

  /** Stops all timers and calls. */
  stopAll(): void {
    this.#stopped = true;
    this.#reconcileTimer?.cancel();
    this.#reconcileTimer = null;
    this.#unsubscribe?.();
    for (const link of this.#links.values()) link.timer?.cancel();
  }

  #link(agentId: string): AgentLink {
    let link = this.#links.get(agentId);
    if (!link) {
      link = new AgentLink(agentId);
      this.#links.set(agentId, link);
      if (this.#known.listed && !this.#known.has(agentId)) void this.#checkKnown(link);
    }
    return link;
  }

  #kick(link: AgentLink): void {
    if (this.#stopped || link.busy || link.checking) return;
    if (link.unknown) {
      // The broker may have learnt of the agent since: ask again before failing more tasks.
      if (this.#known.stale) void this.#checkKnown(link);
      else this.#failUnknown(link);
      return;
    }
    // A round is due in this turn already and kicks again when it ends: the starts and clears
    // queued meanwhile (one kick each) need no clock reading of their own.
    if (link.immediate) return;
    const now = this.clock.now();
    let at: number;
    const pollable = this.#pollable(link);
    if (now < link.blockedUntil) {
      if (!this.#hasCalls(link) && !pollable) return;
      at = link.blockedUntil;
    } else if (this.#hasCalls(link) || (link.wantPoll && pollable)) at = now;
    else if (pollable) at = link.lastPollAt + this.options.pollIntervalMs;
    else return;
    if (at <= now) {
      link.timer?.cancel();
      link.timer = null;
      link.immediate = true;
      setImmediate(() => {
        link.immediate = false;
        void this.#round(link);
      });
      return;
    }
    if (link.timer && link.timerAt <= at) return;
    link.timer?.cancel();
    link.timerAt = at;
    link.timer = this.clock.setTimer(at - now, () => {
      link.timer = null;
      void this.#round(link);
    });
  }

  async #round(link: AgentLink): Promise<void> {
    if (this.#stopped || link.busy) return;
    if (this.clock.now() < link.blockedUntil) {
      this.#kick(link);
      return;
    }
    if (this.#pushedOnly(link)) {
      // Nothing to send and nothing to ask: the cycle is counted and the next one scheduled,
      // without the calls' machinery (at 10,000 agents, most cycles of most agents).
      link.wantPoll = false;
      link.lastPollAt = this.clock.now();
      this.#polls++;
      this.#kick(link);
      return;
    }
    link.busy = true;
    let ok = true;
    let unknown = false;
    // Accepted starts are reported after this round's poll: a task that already ended by then
    // goes from created to ended in one write instead of two.
    let accepted: LiveTask[] = [];
    try {
      if ((!link.reconciled && this.#mayPoll(link)) || link.sweep)
        await this.#calls.reconcile(link);
      accepted = await this.#calls.sendStarts(link);
      await this.#calls.sendStops(link);
      await this.#calls.sendClears(link);
      const now = this.clock.now();
      if (
        this.#pollable(link) &&
        (link.wantPoll || now - link.lastPollAt >= this.options.pollIntervalMs)
      ) {
        link.wantPoll = false;
        await this.#poll(link);
      }
    } catch (error) {
      ok = false;
      // The broker does not know the agent (any more): look it up, then fail its tasks.
      if (error instanceof CocoError && error.code === ErrorCode.AgentUnknown) unknown = true;
      else this.#backOff(link, error);
    } finally {
      link.busy = false;
    }
    for (const t of accepted) if (!t.ended) this.events.started(t);
    if (unknown) {
      void this.#checkKnown(link, true);
      return;
    }
    if (ok && !link.up) {
      link.up = true;
      link.failures = 0;
      link.downSince = null;
      link.lastError = null;
      this.events.agentState(link.id, true, null, 0);
    } else if (ok) link.failures = 0;
    this.#kick(link);
  }

  /**
   * One poll of the link's agent. While the broker pushes every status change of the agent (and
   * its periodic check is not due), only the tasks no report vouched for are asked about: the
   * cycle's cost follows them, not the tasks in flight. Otherwise — no push, the check due, an
   * activity hint, a lease taken, other nodes' tasks to poll — every task is.
   */
  async #poll(link: AgentLink): Promise<void> {
    const all =
      link.pollAll ||
      this.broker.pushesStatuses?.(link.id) !== true ||
      (this.gate !== null && this.gate.foreignIds(link.id).length > 0);
    link.pollAll = false;
    this.#polls++;
    try {
      this.#tasksPolled += await this.#calls.poll(link, all);
    } catch (error) {
      if (all) link.pollAll = true;
      throw error;
    }
  }

  /**
   * Whether the link's round would only be a poll that asks about nothing: no call queued, no
   * reconciliation due, and every task's change pushed by the broker (and vouched for).
   */
  #pushedOnly(link: AgentLink): boolean {
    return (
      link.up &&
      !this.#hasCalls(link) &&
      !link.pollAll &&
      link.allVouched &&
      this.gate === null &&
      link.running.size > 0 &&
      this.broker.pushesStatuses?.(link.id) === true
    );
  }

  /**
   * Polls made so far (one per agent per cycle) and the task ids they asked about, over all
   * agents (metrics): with statuses pushed, the second grows with the tasks that need a look, not
   * with the tasks in flight.
   */
  pollCounts(): { readonly polls: number; readonly tasks: number } {
    return { polls: this.#polls, tasks: this.#tasksPolled };
  }

  /**
   * A round failed: back the agent off (exponentially, with jitter) and report it down — unless
   * the broker refused it for want of capacity of its own (`BROKER_SATURATED`): the agent was not
   * reached, so it is neither blamed nor reported down, and its round comes again soon.
   */
  #backOff(link: AgentLink, error: unknown): void {
    if (error instanceof CocoError && error.code === ErrorCode.BrokerSaturated) {
      link.blockedUntil =
        this.clock.now() + SATURATED_RETRY_MS / 2 + this.random() * (SATURATED_RETRY_MS / 2);
      return;
    }
    link.failures++;
    const delay = Math.min(
      this.options.backoffMaxMs,
      this.options.backoffBaseMs * 2 ** Math.min(link.failures - 1, 20),
    );
    // Full jitter in [delay/2, delay] keeps many engines from hammering a recovering agent in step.
    link.blockedUntil = this.clock.now() + delay / 2 + this.random() * (delay / 2);
    const info = toErrorInfo(error, ErrorCode.AgentUnavailable);
    if (link.up || link.failures === 1) {
      link.up = false;
      link.downSince = this.clock.now();
    }
    link.lastError = info;
    this.events.agentState(link.id, false, info, link.failures);
  }

  /**
   * Applies statuses pushed by the broker (a long-poll of the agent's changes), as if a poll had
   * returned them. Ids the engine does not poll are ignored; a pushed `unknown` is not taken as
   * final (only a poll's answer about the whole running set starts the vanish grace period).
   */
  apply(agentId: string, reports: readonly TaskStatusReport[]): void {
    const link = this.#links.get(agentId);
    if (!link || this.#stopped) return;
    this.#applyReports(link, reports, false, null);
  }

  /**
   * Applies reports to the tasks they name. `asked`: the tasks a poll asked about, when its
   * reports line up with them (`reports[i]` is about `asked[i]`; an `undefined` one, or past
   * the end, is looked up by id). Each is still polled unless the agent's word made it done
   * since the poll asked (a pushed end: only then is a task untracked, its `agentDone` set at
   * once), when the report's id is looked up as any other.
   */
  #applyReports(
    link: AgentLink,
    reports: readonly TaskStatusReport[],
    polled: boolean,
    asked: readonly (LiveTask | undefined)[] | null,
  ): void {
    const now = this.clock.now();
    const lined = asked === null ? 0 : asked.length;
    for (let i = 0; i < reports.length; i++) {
      const report = reports[i]!;
      let task = i < lined ? asked![i] : undefined;
      if (task === undefined || task.agentDone) task = link.running.get(report.taskId);
      if (!task) {
        if (this.gate !== null && (polled || report.state !== 'unknown'))
          this.gate.foreignReport(link.id, report);
        continue;
      }
      if (report.state === 'unknown') {
        if (!polled) continue;
        task.unknownSince ??= now;
        link.unvouch(task); // the grace period counts on polls: look every cycle
        // An ended task (failed by the engine) or one whose start this process never sent has
        // nothing to wait for. A task whose start was sent gets the grace period even before
        // the agent's acceptance is recorded: the `unknown` may predate the start (a report
        // relayed by another node is read late).
        if (
          now - task.unknownSince >= this.options.vanishGraceMs ||
          task.ended ||
          (task.status === 'created' && !task.startSent)
        ) {
          link.untrack(report.taskId);
          task.agentDone = true;
          if (!task.ended) this.events.vanished(task, task.unknownSince);
          this.#maybeClear(task);
        }
        continue;
      }
      task.unknownSince = null;
      if (report.state === 'running') {
        link.vouched(task);
        if (!task.ended) this.events.report(task, report);
        this.#stopAgain(link, task, now);
        continue;
      }
      link.untrack(report.taskId);
      task.agentDone = true;
      if (!task.ended) this.events.report(task, report);
      this.#maybeClear(task);
    }
  }

  /**
   * A stopped task the agent still reports running — the stop reached it before a late start,
   * or was lost inside it — is sent the stop again, at most once per poll interval, until the
   * agent reports it ended: a stop is done only when the agent confirms it.
   */
  #stopAgain(link: AgentLink, task: LiveTask, now: number): void {
    if (!task.stopRequested || task.stopSentAt === null) return;
    if (now - task.stopSentAt < this.options.pollIntervalMs || link.toStop.includes(task)) return;
    link.toStop.push(task);
    this.#kick(link); // a no-op inside a round: the round kicks the link again when it ends
  }

  #maybeClear(task: LiveTask): void {
    if (this.#clearWhenDone.delete(task)) this.clear(task);
  }
}
