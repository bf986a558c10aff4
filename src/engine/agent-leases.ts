/**
 * The agents a node polls on a shared store, and what it polls there for the other nodes: the
 * dispatcher's {@link PollGate}. Each agent is polled by one node at a time, the holder of its
 * lease; the holder also polls the other nodes' running tasks on it ({@link AgentLeases.foreignIds})
 * and relays what it learns to their owners through the store ({@link AgentLeases.foreignReport}).
 *
 * It is built before the dispatcher, which subscribes to its changes ({@link AgentLeases.onChange})
 * when it is built; the cluster (built after both) takes and renews the leases
 * ({@link AgentLeases.hold}) and subscribes to the agents the dispatcher wants
 * ({@link AgentLeases.onWanted}) and to store failures ({@link AgentLeases.onFailure}).
 *
 * @module
 */
import type { TaskStatusReport } from '../brokers/port.js';
import type { Clock, TimerHandle } from '../core/clock.js';
import { agentTaskId, parseAgentTaskId } from '../core/records.js';
import type { SharedStore, TaskKey, TaskReportRecord } from '../store/shared-port.js';
import type { PollGate } from './dispatch-ports.js';

/**
 * A relayed task end still shown as running after this long was lost on the way (its owner
 * died before applying it, or had not loaded the command yet): it is polled and relayed again.
 * An owner applies a report within milliseconds of the signal, so 5 s means lost, not slow.
 */
const RELAY_AGAIN_MS = 5_000;

/**
 * Task keys looked up per query when reconciling an agent: an agent may hold tens of thousands
 * of our tasks (other nodes' running ones); a statement's parameters stay a few hundred KB.
 */
const STRANGER_CHUNK = 10_000;

/**
 * Agents that want a lease within this long of each other are claimed together: a round of the
 * dispatcher wants many agents in the same moment, and one claim statement serves them all.
 */
const WANTED_GATHER_MS = 10;

/** What {@link AgentLeases} is built with. */
export interface AgentLeasesOptions {
  readonly nodeId: string;
  readonly storeId: string;
  readonly store: SharedStore;
  readonly clock: Clock;
  /** Agent call timeout: a poll must end before the agent's lease can expire. */
  readonly callTimeoutMs: number;
}

type Foreign = Map<string, { commandId: number; ordinal: number }>;

/** The agent leases a node holds, and the other nodes' tasks it polls on those agents. */
export class AgentLeases implements PollGate {
  readonly #o: AgentLeasesOptions;
  /** Agent id -> until when (this process's clock) this node may poll it. */
  readonly #held = new Map<string, number>();
  /** Agent id -> agent task id -> the other node's task polled there. */
  #foreign = new Map<string, Foreign>();
  /** Foreign tasks whose end was relayed, and when: not relayed again unless it seems lost. */
  readonly #relayed = new Map<string, number>();
  /**
   * Foreign tasks for which `unknown` was relayed: once the agent knows them again (their start
   * arrived after the poll), `running` is relayed once, so the owner ends the grace period the
   * `unknown` began instead of keeping a stale start of it.
   */
  readonly #unknownSent = new Set<string>();
  #outbox: TaskReportRecord[] = [];
  /** The read of {@link refresh} in flight, and the one queued after it. */
  #refreshing: Promise<void> | null = null;
  #refreshAgain: Promise<void> | null = null;
  #wantedTimer: TimerHandle | null = null;
  #stopped = false;
  readonly #changed = new Set<(agentId: string, held: boolean) => void>();
  readonly #wanted = new Set<() => void>();
  readonly #failures = new Set<(error: unknown, what: string) => void>();

  constructor(options: AgentLeasesOptions) {
    this.#o = options;
  }

  /**
   * Tells `listener` when the node gains (`true`) or loses (`false`) an agent's lease, and when
   * an agent it holds has new foreign tasks to poll (`true` again).
   */
  onChange(listener: (agentId: string, held: boolean) => void): void {
    this.#changed.add(listener);
  }

  /** Tells `listener` when the dispatcher wants agents it does not hold (take their leases). */
  onWanted(listener: () => void): void {
    this.#wanted.add(listener);
  }

  /** Tells `listener` of a failed store call (a lost lease halts the node). */
  onFailure(listener: (error: unknown, what: string) => void): void {
    this.#failures.add(listener);
  }

  /** The agents whose lease this node holds. */
  heldAgents(): string[] {
    return [...this.#held.keys()];
  }

  /** Holds an agent's lease until `until` (this process's clock), or gives it up (`null`). */
  hold(agentId: string, until: number | null): void {
    const had = this.#held.has(agentId);
    if (until === null) {
      this.#held.delete(agentId);
      this.#foreign.delete(agentId);
      if (had) this.#notify(agentId, false);
      return;
    }
    this.#held.set(agentId, until);
    if (!had) {
      this.#notify(agentId, true);
      void this.refresh();
    }
  }

  /** Gives up the leases that end within a call timeout from now; returns whether any went. */
  expire(): boolean {
    const now = this.#o.clock.now();
    const stale = [...this.#held].filter(([, until]) => until <= now + this.#o.callTimeoutMs);
    for (const [id] of stale) this.hold(id, null);
    return stale.length > 0;
  }

  /** Stops: no more notifications; the leases are forgotten (the store gives them up). */
  stop(): void {
    this.#stopped = true;
    this.#wantedTimer?.cancel();
    this.#wantedTimer = null;
    this.#held.clear();
    this.#foreign.clear();
  }

  #notify(agentId: string, held: boolean): void {
    if (this.#stopped) return;
    for (const listener of this.#changed) listener(agentId, held);
  }

  #failed(error: unknown, what: string): void {
    for (const listener of this.#failures) listener(error, what);
  }

  // -- PollGate --

  mayPoll(agentId: string): boolean {
    const until = this.#held.get(agentId);
    return until !== undefined && this.#o.clock.now() + this.#o.callTimeoutMs < until;
  }

  wanted(agentId: string): void {
    if (this.#stopped || this.#held.has(agentId) || this.#wantedTimer) return;
    this.#wantedTimer = this.#o.clock.setTimer(WANTED_GATHER_MS, () => {
      this.#wantedTimer = null;
      for (const listener of this.#wanted) listener();
    });
  }

  foreignIds(agentId: string): readonly string[] {
    const tasks = this.#foreign.get(agentId);
    return tasks ? [...tasks.keys()] : [];
  }

  foreignReport(agentId: string, report: TaskStatusReport): void {
    const task = this.#foreign.get(agentId)?.get(report.taskId);
    if (!task) return;
    if (report.state === 'running') {
      if (!this.#unknownSent.delete(report.taskId)) return;
    } else if (report.state === 'unknown') {
      this.#unknownSent.add(report.taskId);
    } else {
      if (this.#relayed.has(report.taskId)) return;
      this.#relayed.set(report.taskId, this.#o.clock.now());
      this.#unknownSent.delete(report.taskId);
      this.#foreign.get(agentId)?.delete(report.taskId);
    }
    this.#outbox.push({
      commandId: task.commandId,
      ordinal: task.ordinal,
      status: report.state,
      result: report.result ?? null,
      error: report.error ?? null,
      progress: null,
      at: this.#o.clock.now(),
    });
    if (this.#outbox.length === 1) queueMicrotask(() => void this.flush());
  }

  async strangers(ids: readonly string[]): Promise<string[]> {
    const byKey = new Map<string, string>();
    const keys: TaskKey[] = [];
    for (const id of ids) {
      const parsed = parseAgentTaskId(this.#o.storeId, id);
      if (!parsed) continue;
      byKey.set(`${parsed.commandId}/${parsed.ordinal}`, id);
      keys.push(parsed);
    }
    const out: string[] = [];
    for (let i = 0; i < keys.length; i += STRANGER_CHUNK) {
      for (const k of await this.#o.store.strangerTasks(keys.slice(i, i + STRANGER_CHUNK)))
        out.push(byKey.get(`${k.commandId}/${k.ordinal}`)!);
    }
    return out;
  }

  // -- the relay of what this node polls for the others --

  /** Sends the reports gathered for other nodes. */
  async flush(): Promise<void> {
    if (this.#outbox.length === 0) return;
    const reports = this.#outbox;
    this.#outbox = [];
    try {
      await this.#o.store.postReports(reports);
    } catch (error) {
      // Not relayed: poll those tasks again (ends are relayed anew).
      for (const r of reports)
        this.#relayed.delete(agentTaskId(this.#o.storeId, r.commandId, r.ordinal));
      this.#failed(error, 'relaying task reports');
    }
  }

  /**
   * Re-reads the other nodes' running tasks on the agents this node holds. One read at a time:
   * asked again while one is in flight (the refresh timer, a newly held agent), it reads once
   * more after it, for all who asked meanwhile. (Each call started its own read: on a store
   * slower than the refresh interval — a large table never analyzed, a loaded server — the reads
   * piled up, each adding to the load that made them slow.) The promise settles once a read that
   * began after the call has ended.
   */
  refresh(): Promise<void> {
    if (this.#refreshing !== null) {
      this.#refreshAgain ??= this.#refreshing.then(() => {
        this.#refreshAgain = null;
        return this.refresh();
      });
      return this.#refreshAgain;
    }
    this.#refreshing = this.#readForeign().finally(() => (this.#refreshing = null));
    return this.#refreshing;
  }

  async #readForeign(): Promise<void> {
    if (this.#stopped || this.#held.size === 0) {
      this.#foreign.clear();
      return;
    }
    try {
      const rows = await this.#o.store.foreignTasks(this.#o.nodeId, [...this.#held.keys()]);
      const next = new Map<string, Foreign>();
      const seen = new Set<string>();
      for (const r of rows) {
        const id = agentTaskId(this.#o.storeId, r.commandId, r.ordinal);
        seen.add(id);
        const relayedAt = this.#relayed.get(id);
        if (relayedAt !== undefined) {
          if (this.#o.clock.now() - relayedAt < RELAY_AGAIN_MS) continue;
          this.#relayed.delete(id); // lost on the way (its owner died?): poll and relay it again
        }
        let tasks = next.get(r.agentId);
        if (!tasks) next.set(r.agentId, (tasks = new Map() as Foreign));
        tasks.set(id, { commandId: r.commandId, ordinal: r.ordinal });
      }
      // A relayed end stays remembered until its task no longer shows as running.
      for (const id of this.#relayed.keys()) if (!seen.has(id)) this.#relayed.delete(id);
      for (const id of this.#unknownSent) if (!seen.has(id)) this.#unknownSent.delete(id);
      this.#foreign = next;
      for (const agentId of next.keys()) this.#notify(agentId, true);
    } catch (error) {
      this.#failed(error, 'reading the other nodes’ tasks');
    }
  }
}
