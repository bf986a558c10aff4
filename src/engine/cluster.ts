/**
 * A node among many on a shared store (PostgreSQL). It keeps this node's lease alive, claims
 * the trees of dead nodes and adopts them, takes the leases of the agents it has tasks on (each
 * agent is polled by one node at a time: {@link AgentLeases}, the dispatcher's poll gate), and
 * applies the task reports the other nodes relayed to it, and the cancels they asked for.
 *
 * Signals from the store (LISTEN/NOTIFY) make claims and reports immediate; timers are the
 * safety net. A lost lease (another node fenced this one) halts the engine: its memory is no
 * longer the truth.
 *
 * @module
 */
import type { AgentBroker, TaskStatusReport } from '../brokers/port.js';
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/command-type.js';
import { CocoError, ErrorCode, toErrorInfo } from '../core/errors.js';
import type { CommandRegistry } from '../core/registry.js';
import type { KnownType, ReportKey, SharedStore, TaskReportRecord } from '../store/shared-port.js';
import { adopt } from './adopt.js';
import type { AgentLeases } from './agent-leases.js';
import type { SharedAdmission } from './shared-admission.js';
import type { TypePauses } from './pauses.js';
import type { Coordinator } from './coordinator.js';
import type { Dispatcher } from './dispatcher.js';
import type { EngineEvents } from './events.js';

/** What a cluster is built with: the running parts it works with, and its settings. */
export interface ClusterParts {
  readonly nodeId: string;
  readonly store: SharedStore;
  readonly registry: CommandRegistry;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events: EngineEvents;
  readonly broker: AgentBroker;
  readonly coordinator: Coordinator;
  readonly dispatcher: Dispatcher;
  readonly leases: AgentLeases;
  /** Admission across nodes (the agents' lease holders admit). */
  readonly admission?: SharedAdmission | null;
  /** The paused command types, read again when signalled and at each claim tick. */
  readonly pauses?: TypePauses;
  /** Agent call timeout: a poll must end before the agent's lease can expire. */
  readonly callTimeoutMs: number;
  /** Safety-net period of claims, report reads and cancel requests. */
  readonly claimIntervalMs: number;
  /** How often the other nodes' running tasks on held agents are re-read. */
  readonly foreignRefreshMs: number;
  /** Trees claimed at a time. */
  readonly claimBatch: number;
  /** The lease is lost: the engine stops at once. */
  leaseLost(error: CocoError): void;
}

/**
 * Margin kept between the end of a poll and the expiry of the agent's lease: covers the clock
 * drift between this process and the database over one lease period, and the time a late
 * answer takes to be dropped. A tenth of the lease, at most 1 s (clock rates differ by far less).
 */
function leaseSafetyMs(leaseMs: number): number {
  return Math.min(1_000, leaseMs / 10);
}

/** Cancel requests carried out at a time. */
const CANCEL_BATCH = 1_000;

/** Relayed reports applied at a time from the store's inbox. */
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
export class Cluster {
  readonly #p: ClusterParts;
  #timers: TimerHandle[] = [];
  #unlisten: (() => Promise<void>) | null = null;
  #stopped = false;
  #claiming: Promise<void> | null = null;
  #claimAgain = false;
  #cancelling: Promise<void> | null = null;
  #leasing: Promise<void> | null = null;
  #readingReports: Promise<void> | null = null;
  #reportsAgain = false;
  #readingPauses: Promise<void> | null = null;
  #pausesAgain = false;
  readonly #known: KnownType[];

  constructor(parts: ClusterParts) {
    assertLeaseFits(parts.store.leaseMs, parts.callTimeoutMs);
    this.#p = parts;
    // Rows carry the name they were stored with: a renamed type is known by its aliases too.
    this.#known = parts.registry
      .all()
      .flatMap((t) => [t.name, ...t.aliases].map((type) => ({ type, version: t.version })));
    parts.leases.onWanted(() => void this.#leaseAgents());
    parts.leases.onFailure((error, what) => this.#failed(error, what));
  }

  /** Starts listening and the loops; claims orphans once before resolving. */
  async start(): Promise<void> {
    const { store, nodeId, leases } = this.#p;
    this.#unlisten = await store.listen(nodeId, (signal) => {
      if (signal === 'orphans') {
        this.claimSoon();
        // A node was fenced or retired: ended tasks it had not cleared yet may be left on any
        // agent (see Coordinator.settle, Dispatcher.sweep).
        this.#p.dispatcher.sweep();
      } else if (signal === 'reports') this.reportsSoon();
      else if (signal === 'admissions') this.#p.admission?.wake(true);
      else if (signal === 'pauses') this.#readPauses();
      else this.cancelsSoon();
    });
    // Renewing at a third of the lease lets two renewals fail (a slow database) before it expires.
    this.#every(Math.max(1, Math.floor(store.leaseMs / 3)), () => void this.#renew());
    this.#every(this.#p.claimIntervalMs, () => {
      if (leases.expire()) void this.#pollOnly();
      this.claimSoon();
      this.reportsSoon();
      this.cancelsSoon();
      this.#p.admission?.wake();
      this.#readPauses();
    });
    this.#every(this.#p.foreignRefreshMs, () => void leases.refresh());
    await this.#claim();
    this.reportsSoon();
    this.cancelsSoon();
    this.#p.admission?.wake();
  }

  /** Stops the loops and gives up the agent leases (the node lease goes with the store's close). */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) t.cancel();
    this.#timers = [];
    await Promise.allSettled([
      this.#claiming,
      this.#readingReports,
      this.#leasing,
      this.#cancelling,
      this.#readingPauses,
      this.#p.admission?.stop(),
    ]);
    await this.#p.leases.flush().catch(() => undefined);
    await this.#unlisten?.().catch(() => undefined);
    this.#p.leases.stop();
    // The polls end before the leases go: the next holder never overlaps with this node.
    await this.#p.broker.pollOnly?.(new Set()).catch(() => undefined);
    await this.#p.store.releaseAgents(this.#p.nodeId).catch(() => undefined);
  }

  #every(ms: number, fn: () => void): void {
    const tick = (): void => {
      if (this.#stopped) return;
      fn();
      this.#timers.push(this.#p.clock.setTimer(ms, tick));
    };
    this.#timers.push(this.#p.clock.setTimer(ms, tick));
  }

  #failed(error: unknown, what: string): void {
    if (error instanceof CocoError && error.code === ErrorCode.LeaseLost) {
      if (!this.#stopped) {
        this.#stopped = true;
        this.#p.leaseLost(error);
      }
      return;
    }
    // Once stopped, what was under way fails as the store closes under it (a stop that let go of
    // a store that did not answer): expected, not worth a warning.
    const info = { error: toErrorInfo(error, ErrorCode.StoreFailed) };
    if (this.#stopped) this.#p.logger.debug(info, `${what} failed`);
    else this.#p.logger.warn(info, `${what} failed`);
  }

  /**
   * Reads the paused types again (another node paused or resumed one); one read at a time, and
   * one more after it when asked meanwhile.
   */
  #readPauses(): void {
    const pauses = this.#p.pauses;
    if (this.#stopped || !pauses) return;
    if (this.#readingPauses) {
      this.#pausesAgain = true;
      return;
    }
    this.#readingPauses = pauses
      .read()
      .catch((error: unknown) => this.#failed(error, 'reading the paused types'))
      .finally(() => {
        this.#readingPauses = null;
        if (this.#pausesAgain) {
          this.#pausesAgain = false;
          this.#readPauses();
        }
      });
  }

  /** The admission limits changed: the agents this node holds are admitted on again at once. */
  limitsChanged(): void {
    if (!this.#stopped) this.#p.admission?.wake();
  }

  /** Narrows the broker's own polling (long-polls) to the agents this node holds. */
  async #pollOnly(): Promise<void> {
    await this.#p.broker.pollOnly?.(new Set(this.#p.leases.heldAgents()));
  }

  // -- node lease and agent leases --

  async #renew(): Promise<void> {
    try {
      await this.#p.store.heartbeat(this.#p.nodeId);
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
    const { leases, store, clock } = this.#p;
    this.#leasing = (async () => {
      if (this.#stopped) return;
      const want = new Set([
        ...leases.heldAgents(),
        ...this.#p.dispatcher.agentsWithTasks(),
        // Tasks wait on these: their holder admits (shared-admission.ts), so someone must hold.
        ...(this.#p.admission?.wantedAgents() ?? []),
      ]);
      if (want.size === 0) return;
      const began = clock.now();
      try {
        const got = new Set(await store.claimAgents(this.#p.nodeId, [...want]));
        if (this.#stopped) return;
        const until = began + store.leaseMs - leaseSafetyMs(store.leaseMs);
        const lost = leases.heldAgents().filter((id) => !got.has(id));
        for (const id of lost) leases.hold(id, null);
        if (lost.length > 0) await this.#pollOnly();
        for (const id of got) leases.hold(id, until);
        await this.#pollOnly();
      } catch (error) {
        this.#failed(error, 'agent lease renewal');
      }
    })().finally(() => (this.#leasing = null));
    return this.#leasing;
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
    const { store, nodeId, claimBatch, coordinator, logger, events } = this.#p;
    this.#claiming = (async () => {
      do {
        this.#claimAgain = false;
        try {
          const roots = await store.claimOrphans(nodeId, this.#known, claimBatch);
          if (roots.length === 0 || this.#stopped) break;
          const snapshot = await store.loadRoots(roots);
          const { resumed } = await adopt(coordinator, snapshot, await store.heldTrees());
          events.emit('claimed', { rootIds: roots });
          // Grants given to their queued tasks while their node was away.
          this.#p.admission?.takeGrants();
          logger.info({ trees: roots.length, resumed }, 'took over orphaned commands');
          if (roots.length === claimBatch) this.#claimAgain = true;
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
    const { store, nodeId, coordinator } = this.#p;
    this.#cancelling = (async () => {
      try {
        const ids = await store.takeCancels(nodeId, CANCEL_BATCH);
        const done: number[] = [];
        for (const id of ids) {
          if (await coordinator.cancelLoaded(id)) done.push(id);
          // Not in memory: a tree being claimed right now (kept for after the load), or one that
          // ended meanwhile (the request is moot).
          else if (!this.#claiming) {
            const status = (await store.getCommand(id))?.status;
            if (status !== 'pending' && status !== 'waiting') done.push(id);
          }
        }
        if (done.length > 0) await store.dropCancels(done);
      } catch (error) {
        this.#failed(error, 'carrying out cancel requests');
      }
    })().finally(() => (this.#cancelling = null));
  }

  // -- task reports the other nodes relayed to this node --

  /** Reads this node's relayed reports soon (coalesced), applying them as if it had polled. */
  reportsSoon(): void {
    if (this.#stopped) return;
    if (this.#readingReports) {
      this.#reportsAgain = true;
      return;
    }
    const { store, nodeId, coordinator, dispatcher } = this.#p;
    this.#readingReports = (async () => {
      do {
        this.#reportsAgain = false;
        try {
          const reports = await store.takeReports(nodeId, REPORT_BATCH);
          const useless: ReportKey[] = [];
          const notLoaded: TaskReportRecord[] = [];
          for (const r of reports) {
            const task = coordinator.liveTask(r.commandId, r.ordinal);
            if (!task) {
              notLoaded.push(r);
              continue;
            }
            // A task the engine ended (deadline, cancel) still waits for its agent's word
            // before it is cleared: only a task its agent is done with has no use for reports.
            if (task.agentDone) {
              useless.push({ commandId: r.commandId, ordinal: r.ordinal });
              continue;
            }
            const report: TaskStatusReport = {
              taskId: task.agentTaskId,
              state: r.status,
              ...(r.result !== null && r.result !== undefined ? { result: r.result } : {}),
              ...(r.error ? { error: r.error } : {}),
            };
            dispatcher.applyRelayed(task, report);
            // An `unknown` is kept by nobody: the holder sends it again while it lasts. A
            // `running` (known again) has done its work once applied.
            if (r.status === 'unknown' || r.status === 'running') useless.push(r);
          }
          // A command not in memory may be a tree being claimed right now (its report is kept
          // for after the load), or one that has ended and left memory (the report is stale).
          if (notLoaded.length > 0 && !this.#claiming)
            useless.push(...(await this.#stale(notLoaded)));
          if (useless.length > 0) await store.dropReports(useless);
          if (reports.length === REPORT_BATCH) this.#reportsAgain = true;
        } catch (error) {
          this.#failed(error, 'reading relayed task reports');
          break;
        }
      } while (this.#reportsAgain && !this.#stopped);
    })().finally(() => (this.#readingReports = null));
  }

  /** Resolves once the report reading in progress (if any) has ended. */
  async reportsIdle(): Promise<void> {
    await this.#readingReports;
  }

  /**
   * Reports of commands this node has not loaded whose tasks have ended in the store — or whose
   * rows cannot be read: such a command is never loaded, its report can never be applied, and
   * kept it would be read again in every batch (the task itself is left alone).
   */
  async #stale(reports: readonly TaskReportRecord[]): Promise<ReportKey[]> {
    const out: ReportKey[] = [];
    for (const r of reports) {
      let tasks: readonly { ordinal: number; endedAt: number | null }[];
      try {
        tasks = await this.#p.store.getTasks(r.commandId);
      } catch (error) {
        if (!(error instanceof CocoError && error.code === ErrorCode.CorruptRow)) throw error;
        out.push({ commandId: r.commandId, ordinal: r.ordinal });
        continue;
      }
      const task = tasks.find((t) => t.ordinal === r.ordinal);
      if (!task || task.endedAt !== null) out.push({ commandId: r.commandId, ordinal: r.ordinal });
    }
    return out;
  }
}
