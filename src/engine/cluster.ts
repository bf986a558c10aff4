/**
 * A node among many on a shared store (PostgreSQL). It keeps this node's lease alive, claims
 * the trees of dead nodes and adopts them, takes the leases of the agents it has tasks on (each
 * agent is polled by one node at a time), polls the other nodes' tasks on those agents and
 * relays what it learns through the store, and applies the reports relayed to it.
 *
 * Signals from the store (LISTEN/NOTIFY) make claims and reports immediate; timers are the
 * safety net. A lost lease (another node fenced this one) halts the engine: its memory is no
 * longer the truth.
 *
 * @module
 */
import type { TaskStatusReport } from '../agents/port.js';
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/command-type.js';
import { CocoError, ErrorCode, toErrorInfo } from '../core/errors.js';
import type { CommandRegistry } from '../core/registry.js';
import {
  agentTaskId,
  parseAgentTaskId,
  type ActiveSnapshot,
  type KnownType,
  type SharedStore,
  type TaskReportRecord,
} from '../store/port.js';
import type { Dispatcher, PollGate } from './dispatcher.js';
import type { LiveTask } from './live.js';

/** What the cluster needs from the engine. */
export interface ClusterHost {
  readonly nodeId: string;
  readonly storeId: string;
  readonly store: SharedStore;
  readonly registry: CommandRegistry;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly dispatcher: Dispatcher;
  /** Agent call timeout: a poll must end before the agent's lease can expire. */
  readonly callTimeoutMs: number;
  /** Safety-net period of claims and report reads. */
  readonly claimIntervalMs: number;
  /** How often the other nodes' running tasks on held agents are re-read. */
  readonly foreignRefreshMs: number;
  /** Trees claimed at a time. */
  readonly claimBatch: number;
  /** Loads claimed trees into the engine; resolves with the number of commands resumed. */
  adopt(snapshot: ActiveSnapshot): Promise<number>;
  /** The live task, if this node runs its command. */
  liveTask(commandId: number, ordinal: number): LiveTask | undefined;
  /**
   * Cancels a command this node runs (as `Engine.cancel` does) once the request is durable;
   * false if the command is not in memory.
   */
  cancel(commandId: number): Promise<boolean>;
  /** The lease is lost: stop at once. */
  leaseLost(error: CocoError): void;
  /** The broker narrows its own polling (long-polls) to these agents; resolves once it has. */
  pollOnly?(agentIds: ReadonlySet<string>): Promise<void>;
}

/**
 * Margin kept between the end of a poll and the expiry of the agent's lease: covers the clock
 * drift between this process and the database over one lease period, and the time a late
 * answer takes to be dropped. A tenth of the lease, at most 1 s (clock rates differ by far less).
 */
function leaseSafetyMs(leaseMs: number): number {
  return Math.min(1_000, leaseMs / 10);
}

/**
 * A relayed task end still shown as running after this long was lost on the way (its owner
 * died before applying it, or had not loaded the command yet): it is polled and relayed again.
 * An owner applies a report within milliseconds of the signal, so 5 s means lost, not slow.
 */
const RELAY_AGAIN_MS = 5_000;

/** Reports applied at a time from the store's inbox. */
const REPORT_BATCH = 1_000;

/**
 * Throws `INVALID_OPTIONS` unless a lease of `leaseMs` leaves room for polls: a poll must end
 * before the agent's lease can expire, and a renewal comes every third of the lease, so below
 * 3 call timeouts a node could not poll between its renewals.
 */
export function assertLeaseFits(leaseMs: number, callTimeoutMs: number): void {
  if (leaseMs < 3 * callTimeoutMs) {
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `the store's lease (${leaseMs} ms) must be at least 3 agent call timeouts ` +
        `(tuning.agentCallTimeoutMs = ${callTimeoutMs} ms): lengthen the lease or shorten the timeout`,
    );
  }
}

/** Coordination of one node with the others on a shared store. */
export class Cluster implements PollGate {
  readonly #h: ClusterHost;
  /** Agent id -> until when (this process's clock) this node may poll it. */
  readonly #held = new Map<string, number>();
  /** Agent id -> agent task id -> the foreign task. */
  #foreign = new Map<string, Map<string, { commandId: number; ordinal: number }>>();
  /** Foreign tasks whose end was relayed, and when: not relayed again unless it seems lost. */
  readonly #relayed = new Map<string, number>();
  #outbox: TaskReportRecord[] = [];
  #timers: TimerHandle[] = [];
  #unlisten: (() => Promise<void>) | null = null;
  #stopped = false;
  #claiming: Promise<void> | null = null;
  #claimAgain = false;
  #readingReports: Promise<void> | null = null;
  #reportsAgain = false;
  #wantedTimer: TimerHandle | null = null;
  #cancelling: Promise<void> | null = null;
  #leasing: Promise<void> | null = null;
  readonly #known: KnownType[];

  constructor(host: ClusterHost) {
    assertLeaseFits(host.store.leaseMs, host.callTimeoutMs);
    this.#h = host;
    this.#known = host.registry.all().map((t) => ({ type: t.name, version: t.version }));
  }

  /** Starts listening and the loops; claims orphans once before resolving. */
  async start(): Promise<void> {
    this.#unlisten = await this.#h.store.listen(this.#h.nodeId, (signal) => {
      if (signal === 'orphans') this.claimSoon();
      else if (signal === 'reports') this.reportsSoon();
      else this.cancelsSoon();
    });
    const leaseMs = this.#h.store.leaseMs;
    // Renewing at a third of the lease lets two renewals fail (a slow database) before it expires.
    this.#every(Math.max(1, Math.floor(leaseMs / 3)), () => void this.#renew());
    this.#every(this.#h.claimIntervalMs, () => {
      this.#expireHeld();
      this.claimSoon();
      this.reportsSoon();
      this.cancelsSoon();
    });
    this.#every(this.#h.foreignRefreshMs, () => void this.#refreshForeign());
    await this.#claim();
    this.reportsSoon();
    this.cancelsSoon();
  }

  /** Stops the loops and gives up the agent leases (the node lease goes with the store's close). */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) t.cancel();
    this.#timers = [];
    this.#wantedTimer?.cancel();
    await Promise.allSettled([
      this.#claiming,
      this.#readingReports,
      this.#leasing,
      this.#cancelling,
    ]);
    await this.#flushOutbox().catch(() => undefined);
    await this.#unlisten?.().catch(() => undefined);
    this.#held.clear();
    // The polls end before the leases go: the next holder never overlaps with this node.
    await this.#h.pollOnly?.(new Set()).catch(() => undefined);
    await this.#h.store.releaseAgents(this.#h.nodeId).catch(() => undefined);
  }

  #every(ms: number, fn: () => void): void {
    const tick = (): void => {
      if (this.#stopped) return;
      fn();
      this.#timers.push(this.#h.clock.setTimer(ms, tick));
    };
    this.#timers.push(this.#h.clock.setTimer(ms, tick));
  }

  #failed(error: unknown, what: string): void {
    if (error instanceof CocoError && error.code === ErrorCode.LeaseLost) {
      if (!this.#stopped) {
        this.#stopped = true;
        this.#h.leaseLost(error);
      }
      return;
    }
    this.#h.logger.warn({ error: toErrorInfo(error, ErrorCode.StoreFailed) }, `${what} failed`);
  }

  // -- node lease and agent leases --

  async #renew(): Promise<void> {
    try {
      await this.#h.store.heartbeat(this.#h.nodeId);
    } catch (error) {
      this.#failed(error, 'node lease renewal');
      return;
    }
    await this.#leaseAgents();
  }

  /**
   * Renews the leases this node holds and takes those of agents it has tasks on. Leases are
   * kept while the node lives (it polls the other nodes' tasks there): giving one up while a
   * long-poll may still be in flight could let two nodes poll the agent at once.
   */
  #leaseAgents(): Promise<void> {
    if (this.#leasing) return this.#leasing;
    this.#leasing = (async () => {
      const want = new Set([...this.#held.keys(), ...this.#h.dispatcher.agentsWithTasks()]);
      if (want.size === 0) return;
      const began = this.#h.clock.now();
      try {
        const got = new Set(await this.#h.store.claimAgents(this.#h.nodeId, [...want]));
        if (this.#stopped) return;
        const leaseMs = this.#h.store.leaseMs;
        const until = began + leaseMs - leaseSafetyMs(leaseMs);
        const lost = [...this.#held.keys()].filter((id) => !got.has(id));
        for (const id of lost) this.#setHeld(id, null);
        if (lost.length > 0) await this.#h.pollOnly?.(new Set(this.#held.keys()));
        for (const id of got) this.#setHeld(id, until);
        await this.#h.pollOnly?.(new Set(this.#held.keys()));
      } catch (error) {
        this.#failed(error, 'agent lease renewal');
      }
    })().finally(() => (this.#leasing = null));
    return this.#leasing;
  }

  /** Leases not renewed in time (the store is slow or away) are given up before they expire. */
  #expireHeld(): void {
    const now = this.#h.clock.now();
    const stale = [...this.#held].filter(([, until]) => until <= now + this.#h.callTimeoutMs);
    if (stale.length === 0) return;
    for (const [id] of stale) this.#setHeld(id, null);
    void this.#h.pollOnly?.(new Set(this.#held.keys()));
  }

  #setHeld(agentId: string, until: number | null): void {
    const had = this.#held.has(agentId);
    if (until === null) {
      this.#held.delete(agentId);
      this.#foreign.delete(agentId);
      if (had) this.#h.dispatcher.gateChanged(agentId, false);
      return;
    }
    this.#held.set(agentId, until);
    if (!had) {
      this.#h.dispatcher.gateChanged(agentId, true);
      void this.#refreshForeign();
    }
  }

  // -- PollGate --

  mayPoll(agentId: string): boolean {
    const until = this.#held.get(agentId);
    return until !== undefined && this.#h.clock.now() + this.#h.callTimeoutMs < until;
  }

  wanted(agentId: string): void {
    if (this.#stopped || this.#held.has(agentId) || this.#wantedTimer) return;
    // Gather the agents that want a lease in the same moment into one claim.
    this.#wantedTimer = this.#h.clock.setTimer(10, () => {
      this.#wantedTimer = null;
      void this.#leaseAgents();
    });
  }

  foreignIds(agentId: string): readonly string[] {
    const tasks = this.#foreign.get(agentId);
    return tasks ? [...tasks.keys()] : [];
  }

  foreignReport(agentId: string, report: TaskStatusReport): void {
    const task = this.#foreign.get(agentId)?.get(report.taskId);
    if (!task) return;
    const ended = report.state !== 'running' && report.state !== 'unknown';
    if (report.state === 'running') return;
    if (ended) {
      if (this.#relayed.has(report.taskId)) return;
      this.#relayed.set(report.taskId, this.#h.clock.now());
      this.#foreign.get(agentId)?.delete(report.taskId);
    }
    this.#outbox.push({
      commandId: task.commandId,
      ordinal: task.ordinal,
      status: report.state,
      result: report.result ?? null,
      error: report.error ?? null,
      progress: null,
      at: this.#h.clock.now(),
    });
    if (this.#outbox.length === 1) queueMicrotask(() => void this.#flushOutbox());
  }

  async strangers(ids: readonly string[]): Promise<string[]> {
    const byCommand = new Map<number, string[]>();
    for (const id of ids) {
      const parsed = parseAgentTaskId(this.#h.storeId, id);
      if (!parsed) continue;
      const list = byCommand.get(parsed.commandId) ?? [];
      list.push(id);
      byCommand.set(parsed.commandId, list);
    }
    const out: string[] = [];
    for (const [commandId, list] of byCommand) {
      const rows = await this.#h.store.getTasks(commandId);
      const known = new Set(rows.map((t) => agentTaskId(this.#h.storeId, commandId, t.ordinal)));
      for (const id of list) if (!known.has(id)) out.push(id);
    }
    return out;
  }

  async #flushOutbox(): Promise<void> {
    if (this.#outbox.length === 0) return;
    const reports = this.#outbox;
    this.#outbox = [];
    try {
      await this.#h.store.postReports(reports);
    } catch (error) {
      // Not relayed: poll those tasks again (ends are relayed anew).
      for (const r of reports)
        this.#relayed.delete(agentTaskId(this.#h.storeId, r.commandId, r.ordinal));
      this.#failed(error, 'relaying task reports');
    }
  }

  async #refreshForeign(): Promise<void> {
    if (this.#stopped || this.#held.size === 0) {
      this.#foreign.clear();
      return;
    }
    try {
      const rows = await this.#h.store.foreignTasks(this.#h.nodeId, [...this.#held.keys()]);
      const next = new Map<string, Map<string, { commandId: number; ordinal: number }>>();
      const seen = new Set<string>();
      for (const r of rows) {
        const id = agentTaskId(this.#h.storeId, r.commandId, r.ordinal);
        seen.add(id);
        const relayedAt = this.#relayed.get(id);
        if (relayedAt !== undefined) {
          if (this.#h.clock.now() - relayedAt < RELAY_AGAIN_MS) continue;
          this.#relayed.delete(id); // lost on the way (its owner died?): poll and relay it again
        }
        let tasks = next.get(r.agentId);
        if (!tasks)
          next.set(r.agentId, (tasks = new Map<string, { commandId: number; ordinal: number }>()));
        tasks.set(id, { commandId: r.commandId, ordinal: r.ordinal });
      }
      // A relayed end stays remembered until its task no longer shows as running.
      for (const id of this.#relayed.keys()) if (!seen.has(id)) this.#relayed.delete(id);
      this.#foreign = next;
      for (const agentId of next.keys()) this.#h.dispatcher.gateChanged(agentId, true);
    } catch (error) {
      this.#failed(error, 'reading the other nodes’ tasks');
    }
  }

  // -- claims --

  /** Claims orphaned trees soon (coalesced). */
  claimSoon(): void {
    if (this.#stopped) return;
    if (this.#claiming) {
      this.#claimAgain = true;
      return;
    }
    void this.#claim();
  }

  #claim(): Promise<void> {
    this.#claiming = (async () => {
      do {
        this.#claimAgain = false;
        try {
          const roots = await this.#h.store.claimOrphans(
            this.#h.nodeId,
            this.#known,
            this.#h.claimBatch,
          );
          if (roots.length === 0 || this.#stopped) break;
          const snapshot = await this.#h.store.loadRoots(roots);
          const resumed = await this.#h.adopt(snapshot);
          this.#h.logger.info({ trees: roots.length, resumed }, 'took over orphaned commands');
          if (roots.length === this.#h.claimBatch) this.#claimAgain = true;
        } catch (error) {
          this.#failed(error, 'claiming orphaned commands');
          break;
        }
      } while (this.#claimAgain && !this.#stopped);
    })().finally(() => (this.#claiming = null));
    return this.#claiming;
  }

  // -- cancel requests for this node's commands --

  /** Carries out the cancel requests other nodes stored for this node's commands (coalesced). */
  cancelsSoon(): void {
    if (this.#stopped || this.#cancelling) return;
    this.#cancelling = (async () => {
      try {
        const ids = await this.#h.store.takeCancels(this.#h.nodeId, REPORT_BATCH);
        const done: number[] = [];
        for (const id of ids) {
          if (await this.#h.cancel(id)) done.push(id);
          // Not in memory: a tree being claimed right now (kept for after the load), or one that
          // ended meanwhile (the request is moot).
          else if (!this.#claiming) {
            const status = (await this.#h.store.getCommand(id))?.status;
            if (status !== 'pending' && status !== 'waiting') done.push(id);
          }
        }
        if (done.length > 0) await this.#h.store.dropCancels(done);
      } catch (error) {
        this.#failed(error, 'carrying out cancel requests');
      }
    })().finally(() => (this.#cancelling = null));
  }

  // -- reports relayed to this node --

  /** Reports of commands this node has not loaded whose tasks have ended in the store. */
  async #stale(
    reports: readonly TaskReportRecord[],
  ): Promise<{ commandId: number; ordinal: number }[]> {
    const out: { commandId: number; ordinal: number }[] = [];
    for (const r of reports) {
      const task = (await this.#h.store.getTasks(r.commandId)).find((t) => t.ordinal === r.ordinal);
      if (!task || task.endedAt !== null) out.push({ commandId: r.commandId, ordinal: r.ordinal });
    }
    return out;
  }

  /** Reads this node's relayed reports soon (coalesced). */
  reportsSoon(): void {
    if (this.#stopped) return;
    if (this.#readingReports) {
      this.#reportsAgain = true;
      return;
    }
    this.#readingReports = (async () => {
      do {
        this.#reportsAgain = false;
        try {
          const reports = await this.#h.store.takeReports(this.#h.nodeId, REPORT_BATCH);
          const useless: { commandId: number; ordinal: number }[] = [];
          const notLoaded: TaskReportRecord[] = [];
          for (const r of reports) {
            const task = this.#h.liveTask(r.commandId, r.ordinal);
            if (!task) {
              notLoaded.push(r);
              continue;
            }
            if (task.ended || task.agentDone) {
              useless.push({ commandId: r.commandId, ordinal: r.ordinal });
              continue;
            }
            const report: TaskStatusReport = {
              taskId: task.agentTaskId,
              state: r.status,
              ...(r.result !== null && r.result !== undefined ? { result: r.result } : {}),
              ...(r.error ? { error: r.error } : {}),
            };
            this.#h.dispatcher.applyRelayed(task, report);
            // An `unknown` is kept by nobody: the holder sends it again while it lasts.
            if (r.status === 'unknown')
              useless.push({ commandId: r.commandId, ordinal: r.ordinal });
          }
          // A command not in memory may be a tree being claimed right now (its report is kept
          // for after the load), or one that has ended and left memory (the report is stale).
          if (notLoaded.length > 0 && !this.#claiming)
            useless.push(...(await this.#stale(notLoaded)));
          if (useless.length > 0) await this.#h.store.dropReports(useless);
          if (reports.length === REPORT_BATCH) this.#reportsAgain = true;
        } catch (error) {
          this.#failed(error, 'reading relayed task reports');
          break;
        }
      } while (this.#reportsAgain && !this.#stopped);
    })().finally(() => (this.#readingReports = null));
  }
}
