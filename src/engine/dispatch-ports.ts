/**
 * The dispatcher's ports — its settings, the poll gate of multi-node polling, the events it
 * reports to the engine — and the state it keeps per agent.
 *
 * @module
 */
import type { TaskStatusReport } from '../brokers/port.js';
import type { TimerHandle } from '../core/clock.js';
import type { ErrorInfo } from '../core/errors.js';
import type { LiveTask } from './live.js';

/** Settings of the dispatcher (compiled engine options). */
export interface DispatcherOptions {
  /** Poll an agent with running tasks at least this often, even without activity hints. */
  readonly pollIntervalMs: number;
  /** Give up on one agent call after this long. */
  readonly callTimeoutMs: number;
  /** First back-off delay after a failed call; doubles up to `backoffMaxMs`. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** How long a task may be unknown to its agent before it is failed as vanished. */
  readonly vanishGraceMs: number;
  /** How often every agent's task list is reconciled again while the engine runs. */
  readonly reconcileIntervalMs: number;
}

/**
 * Multi-node polling (a shared store): each agent is polled by one node at a time, the holder
 * of its lease, which polls the other nodes' tasks on that agent too and relays what it learns.
 * Without a gate every agent is polled (a single node).
 */
export interface PollGate {
  /** Whether this node may poll the agent now (it holds the agent's lease for long enough). */
  mayPoll(agentId: string): boolean;
  /** This node has tasks to poll on an agent it may not poll: try to take its lease. */
  wanted(agentId: string): void;
  /** Agent task ids of other nodes' running tasks on this agent, polled along with ours. */
  foreignIds(agentId: string): readonly string[];
  /** What the agent said of one of those. */
  foreignReport(agentId: string, report: TaskStatusReport): void;
  /**
   * Of these task ids (ours by prefix, unknown in memory), those to stop and clear: without a
   * row in the store, or ended tasks of commands whose owner is done with them.
   */
  strangers(ids: readonly string[]): Promise<string[]>;
  /**
   * Tells `listener` when this node gains (`true`) or loses (`false`) an agent's lease, and when
   * an agent it holds has new foreign tasks to poll (`true` again). The dispatcher subscribes as
   * it is built.
   */
  onChange?(listener: (agentId: string, held: boolean) => void): void;
}

/** What the dispatcher tells the engine. */
export interface DispatcherEvents {
  /** The agent accepted a start. */
  started(task: LiveTask): void;
  /** The agent refused a start. */
  rejected(task: LiveTask, error: ErrorInfo): void;
  /** The task failed without its agent's word (its agent is unknown to this node). */
  failed(task: LiveTask, error: ErrorInfo): void;
  /** Tasks for an agent this node does not know were failed (`AGENT_UNKNOWN`). */
  agentUnknown(agentId: string, error: ErrorInfo, tasks: number): void;
  /** A status report for a task the engine still considers open. */
  report(task: LiveTask, report: TaskStatusReport): void;
  /** The agent has not known the task for the whole grace period. */
  vanished(task: LiveTask, unknownSince: number): void;
  /** The tasks were cleared on their agent. */
  cleared(tasks: readonly LiveTask[]): void;
  /** An agent went down (calls failing) or came back. */
  agentState(agentId: string, up: boolean, error: ErrorInfo | null, failures: number): void;
  /** A call to an agent answered (`ok`) or failed, after `ms` milliseconds (metrics). */
  call?(agentId: string, call: string, outcome: 'ok' | 'timeout' | 'error', ms: number): void;
  /** Task ids of ours that the agent holds but the engine does not know: stop and clear them? */
  isKnown(agentTaskId: string): boolean;
}

/** One agent as the dispatcher sees it: queued calls, running tasks, back-off and timer state. */
export class AgentLink {
  /** Tasks polled on the agent (started or watched, not yet reported ended), by agent task id. */
  readonly #running = new Map<string, LiveTask>();
  /**
   * The running tasks no report has vouched for since they were added or last needed a look:
   * just started or watched (their state may have been pushed before they were added, and was
   * then dropped), being stopped (a stop is sent again while they still run), or unknown to the
   * agent (the vanish grace period counts on polls). While the broker pushes every status change
   * of the agent (`AgentBroker.pushesStatuses`), a poll cycle asks only about these.
   */
  readonly #unvouched = new Set<string>();
  /**
   * Tasks {@link AgentLink.watch}ed (after a restart) that no poll has asked about yet: as
   * unvouched as those of `#unvouched`, but held in an array, one push each, instead of the set.
   * At a restart every watched task is unvouched and the first poll asks about each of them, so
   * filling the set only to empty it again task by task cost two hash operations per task
   * (with `#running`'s, ~10 % of the main thread's restart at 1,000,000 tasks, BENCHMARKS.md).
   * An entry may be stale (the task was untracked since): {@link AgentLink.takeFresh} leaves
   * those out.
   */
  #fresh: LiveTask[] = [];
  /**
   * Tasks untracked so far (a count), and that count when `#fresh` got its first entry: while
   * they are equal no entry of `#fresh` is stale, and none needs a lookup in `#running`.
   */
  #untracks = 0;
  #untracksAtFresh = 0;
  /** The next poll asks about every task, pushes or not (an activity hint, a lease taken). */
  pollAll = false;
  toStart: LiveTask[] = [];
  toStop: LiveTask[] = [];
  toClear: LiveTask[] = [];
  busy = false;
  wantPoll = false;
  failures = 0;
  // The three times below hold clock readings (ms since the epoch, not small integers): they
  // start as a double (-Infinity: never, or long past) so that V8 gives them their final
  // representation at once; a 0 turned into a timestamp later would change every link's map
  // and deoptimize the code that had seen one.
  blockedUntil = -Infinity;
  lastPollAt = -Infinity;
  timer: TimerHandle | null = null;
  timerAt = -Infinity;
  immediate = false;
  up = true;
  /** Since when calls to the agent fail, and the last error (null while it answers). */
  downSince: number | null = null;
  lastError: ErrorInfo | null = null;
  reconciled = false;
  /** The broker does not know this agent: its tasks fail at once (see Dispatcher). */
  unknown = false;
  /** Asking the broker whether it knows the agent; no round runs meanwhile. */
  checking = false;
  /** Reconcile once more even without the agent's lease (see Dispatcher.sweep). */
  sweep = false;
  readonly id: string;
  constructor(id: string) {
    this.id = id;
  }

  /** The tasks polled on the agent. */
  get running(): ReadonlyMap<string, LiveTask> {
    return this.#running;
  }

  /** Whether no running task needs a look (every one vouched for since it was added). */
  get allVouched(): boolean {
    return this.#unvouched.size === 0 && this.#fresh.length === 0;
  }

  /**
   * The ids of the running tasks a poll must ask about even while the agent's statuses are
   * pushed: those of the set, then the `fresh` ones (from {@link AgentLink.takeFresh}: all
   * still polled) not in the set already. `tasks` gets the task of each id where it is known
   * without a lookup (the fresh ones), `undefined` for the others.
   */
  unvouchedIds(fresh: readonly LiveTask[], tasks: (LiveTask | undefined)[]): string[] {
    const ids = [...this.#unvouched];
    for (let i = 0; i < ids.length; i++) tasks.push(undefined);
    const inSet = this.#unvouched.size > 0;
    for (const t of fresh) {
      const id = t.agentTaskId;
      if (!(inSet && this.#unvouched.has(id))) {
        ids.push(id);
        tasks.push(t);
      }
    }
    return ids;
  }

  /** Polls `task` from now on; until a report vouches for it, every cycle asks about it. */
  track(task: LiveTask): void {
    this.#running.set(task.agentTaskId, task);
    this.#unvouched.add(task.agentTaskId);
  }

  /**
   * {@link AgentLink.track} for a task already running on its agent (a restart): unvouched the
   * same, but listed in an array rather than added to the set (see `#fresh`).
   */
  watch(task: LiveTask): void {
    this.#running.set(task.agentTaskId, task);
    if (this.#fresh.length === 0) this.#untracksAtFresh = this.#untracks;
    this.#fresh.push(task);
  }

  /**
   * Hands the watched tasks no poll has asked about yet to the poll that is about to ask about
   * them (they count as vouched from here): the poll gives back, through
   * {@link AgentLink.unvouchFresh}, those it could not ask about or got no report of; the
   * reports of the others vouch for them or not as for any task.
   */
  takeFresh(): LiveTask[] {
    let fresh = this.#fresh;
    if (fresh.length === 0) return fresh;
    this.#fresh = [];
    // Some may have been untracked since they were listed (a pushed end): those are left out.
    if (this.#untracks !== this.#untracksAtFresh)
      fresh = fresh.filter((t) => this.#running.get(t.agentTaskId) === t);
    return fresh;
  }

  /** Those of `fresh` still polled need a look again: into the set of unvouched tasks. */
  unvouchFresh(fresh: readonly LiveTask[]): void {
    for (const t of fresh)
      if (this.#running.get(t.agentTaskId) === t) this.#unvouched.add(t.agentTaskId);
  }

  /**
   * A report said the task runs: pushes will tell of its next change — unless it is stopping
   * (or still unknown), when it stays unvouched (a watched task the poll took, back in the set).
   */
  vouched(task: LiveTask): void {
    if (!task.stopRequested && task.unknownSince === null) {
      // Empty after a restart's first poll: no lookup per task then (their ids' headers are
      // cold reads at 1,000,000 tasks).
      if (this.#unvouched.size > 0) this.#unvouched.delete(task.agentTaskId);
    } else this.#unvouched.add(task.agentTaskId);
  }

  /** The task needs a look every cycle again (unknown to the agent: its grace period counts). */
  unvouch(task: LiveTask): void {
    this.#unvouched.add(task.agentTaskId);
  }

  /** Stops polling a task (its agent reported it ended or lost). */
  untrack(agentTaskId: string): void {
    this.#running.delete(agentTaskId);
    if (this.#unvouched.size > 0) this.#unvouched.delete(agentTaskId);
    this.#untracks++;
  }

  /** Stops polling every task (the agent is unknown). */
  untrackAll(): void {
    this.#running.clear();
    this.#unvouched.clear();
    this.#fresh = [];
    this.#untracks++;
  }

  get hasTaskCalls(): boolean {
    return this.toStart.length + this.toStop.length + this.toClear.length > 0;
  }
}
