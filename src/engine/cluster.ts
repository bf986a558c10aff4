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
import type { TaskStatusReport } from '../brokers/port.js';
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/command-type.js';
import { CocoError, ErrorCode, toErrorInfo } from '../core/errors.js';
import type { CommandRegistry } from '../core/registry.js';
import { parseAgentTaskId } from '../core/records.js';
import type { ActiveSnapshot } from '../store/port.js';
import type { KnownType, SharedStore, TaskKey } from '../store/shared-port.js';
import type { Dispatcher, PollGate } from './dispatcher.js';
import { Relay } from './relay.js';
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
  /** Trees this node took over (claimed and adopted): tells the engine's observers. */
  claimed(rootIds: readonly number[]): void;
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
 * Task keys looked up per query when reconciling an agent: an agent may hold tens of thousands
 * of our tasks (other nodes' running ones); a statement's parameters stay a few hundred KB.
 */
const STRANGER_CHUNK = 10_000;

/** Cancel requests carried out at a time. */
const CANCEL_BATCH = 1_000;

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
  readonly #relay: Relay;
  #timers: TimerHandle[] = [];
  #unlisten: (() => Promise<void>) | null = null;
  #stopped = false;
  #claiming: Promise<void> | null = null;
  #claimAgain = false;
  #wantedTimer: TimerHandle | null = null;
  #cancelling: Promise<void> | null = null;
  #leasing: Promise<void> | null = null;
  readonly #known: KnownType[];

  constructor(host: ClusterHost) {
    assertLeaseFits(host.store.leaseMs, host.callTimeoutMs);
    this.#h = host;
    // Rows carry the name they were stored with: a renamed type is known by its aliases too.
    this.#known = host.registry
      .all()
      .flatMap((t) => [t.name, ...t.aliases].map((type) => ({ type, version: t.version })));
    this.#relay = new Relay({
      nodeId: host.nodeId,
      storeId: host.storeId,
      store: host.store,
      clock: host.clock,
      dispatcher: host.dispatcher,
      liveTask: (commandId, ordinal) => host.liveTask(commandId, ordinal),
      held: () => [...this.#held.keys()],
      claiming: () => this.#claiming !== null,
      stopped: () => this.#stopped,
      failed: (error, what) => this.#failed(error, what),
    });
  }

  /** Starts listening and the loops; claims orphans once before resolving. */
  async start(): Promise<void> {
    this.#unlisten = await this.#h.store.listen(this.#h.nodeId, (signal) => {
      if (signal === 'orphans') {
        this.claimSoon();
        // A node was fenced or retired: ended tasks it had not cleared yet may be left on any
        // agent (see Coordinator.settle, Dispatcher.sweep).
        this.#h.dispatcher.sweep();
      } else if (signal === 'reports') this.#relay.reportsSoon();
      else this.cancelsSoon();
    });
    const leaseMs = this.#h.store.leaseMs;
    // Renewing at a third of the lease lets two renewals fail (a slow database) before it expires.
    this.#every(Math.max(1, Math.floor(leaseMs / 3)), () => void this.#renew());
    this.#every(this.#h.claimIntervalMs, () => {
      this.#expireHeld();
      this.claimSoon();
      this.#relay.reportsSoon();
      this.cancelsSoon();
    });
    this.#every(this.#h.foreignRefreshMs, () => void this.#relay.refresh());
    await this.#claim();
    this.#relay.reportsSoon();
    this.cancelsSoon();
  }

  /** Stops the loops and gives up the agent leases (the node lease goes with the store's close). */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) t.cancel();
    this.#timers = [];
    this.#wantedTimer?.cancel();
    await Promise.allSettled([this.#claiming, this.#relay.idle(), this.#leasing, this.#cancelling]);
    await this.#relay.flush().catch(() => undefined);
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
      this.#relay.dropAgent(agentId);
      if (had) this.#h.dispatcher.gateChanged(agentId, false);
      return;
    }
    this.#held.set(agentId, until);
    if (!had) {
      this.#h.dispatcher.gateChanged(agentId, true);
      void this.#relay.refresh();
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
    return this.#relay.foreignIds(agentId);
  }

  foreignReport(agentId: string, report: TaskStatusReport): void {
    this.#relay.foreignReport(agentId, report);
  }

  async strangers(ids: readonly string[]): Promise<string[]> {
    const byKey = new Map<string, string>();
    const keys: TaskKey[] = [];
    for (const id of ids) {
      const parsed = parseAgentTaskId(this.#h.storeId, id);
      if (!parsed) continue;
      byKey.set(`${parsed.commandId}/${parsed.ordinal}`, id);
      keys.push(parsed);
    }
    const out: string[] = [];
    for (let i = 0; i < keys.length; i += STRANGER_CHUNK) {
      for (const k of await this.#h.store.strangerTasks(keys.slice(i, i + STRANGER_CHUNK)))
        out.push(byKey.get(`${k.commandId}/${k.ordinal}`)!);
    }
    return out;
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
          this.#h.claimed(roots);
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
        const ids = await this.#h.store.takeCancels(this.#h.nodeId, CANCEL_BATCH);
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
}
