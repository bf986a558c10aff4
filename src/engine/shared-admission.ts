/**
 * Admission across nodes on a shared store: an agent's limit holds for the cluster, not per
 * node. The holder of the agent's lease ({@link AgentLeases}) is the one that admits: it grants
 * slots to the queued tasks of every node in one store transaction that counts the agent's slots
 * under a lock of its lease row ({@link SharedStore.admitQueued}, table `admission_slots`), and
 * the tasks' owners take their grants and start the tasks, as cancel requests are relayed.
 *
 * - **A task of a limited agent** is stored `queued` by its owner, always (there is no local
 *   fast path here); after the commit the agent's lease holder is signalled (`admissions`), or,
 *   when this node holds the lease, admits at once. A node with queued tasks on an agent wants
 *   its lease, so some node always admits.
 * - **A grant** is a slot row written by the holder; its owner (signalled) admits the task as
 *   alone on a store (`queued → created` through the committer, then the start): `created` is
 *   durable before the start, so a crash never starts a task twice.
 * - **A slot** is held from its grant until the owner sees the agent done with the task
 *   ({@link Admission}'s release), which deletes the row and signals the holder.
 * - **Restarts and takeovers.** A node loading a tree records the slots its admitted tasks hold
 *   and frees those of tasks the agent is done with ({@link Admission.restore}); a queued task
 *   whose grant arrived while its owner was away is found by {@link SharedAdmission.takeGrants}.
 *   A lease handed over waits for a grant in progress (the row lock), so the next holder counts it.
 * - **Limits** are the holder's (`EngineOptions.limits`): give every node the same ones. A
 *   holder that knows no limit for the agent grants every queued task there when signalled.
 *
 * Store calls that fail are tried again at the next safety-net tick (the cluster's claim
 * interval); signals make the rest immediate.
 *
 * @module
 */
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/command-type.js';
import { ErrorCode, toErrorInfo } from '../core/errors.js';
import type { SharedStore, SlotHolder, SlotLimits, TaskKey } from '../store/shared-port.js';
import type { Admission, SlotLedger } from './admission.js';
import type { AgentLeases } from './agent-leases.js';
import type { Committer } from './committer.js';
import type { LiveTask } from './live.js';

/** Grants taken from the store at a time. */
const GRANT_BATCH = 1_000;

/** What {@link SharedAdmission} is built with. */
export interface SharedAdmissionParts {
  readonly nodeId: string;
  readonly store: SharedStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly committer: Committer;
  readonly leases: AgentLeases;
  /** The node's admission (built after this ledger, with it). */
  admission(): Admission;
  /** A loaded task by its key, if its command is live here. */
  liveTask(commandId: number, ordinal: number): LiveTask | undefined;
}

/** This node's part in admission across nodes: the slot ledger and, for held agents, the admitter. */
export class SharedAdmission implements SlotLedger {
  readonly #p: SharedAdmissionParts;
  #holds: SlotHolder[] = [];
  #releases: TaskKey[] = [];
  readonly #queuedOn = new Set<string>();
  #flushing: Promise<void> | null = null;
  #flushAgain = false;
  readonly #admitting = new Map<string, Promise<void>>();
  readonly #admitAgain = new Set<string>();
  /** Agents to admit on even without a limit here (signalled: see {@link wake}). */
  readonly #admitAnyway = new Set<string>();
  #taking: Promise<void> | null = null;
  #takeAgain = false;
  #stopped = false;

  constructor(parts: SharedAdmissionParts) {
    this.#p = parts;
    parts.leases.onChange((agentId, held) => {
      if (held && parts.admission().limitOf(agentId) !== null) this.admitSoon(agentId);
    });
  }

  // -- SlotLedger --

  queued(t: LiveTask): void {
    this.#p.committer.afterCommit(() => {
      const agentId = t.agentId;
      if (this.#p.leases.heldAgents().includes(agentId)) this.admitSoon(agentId);
      else {
        this.#p.leases.wanted(agentId);
        this.#queuedOn.add(agentId);
        this.#flushSoon();
      }
    }, t.command);
  }

  hold(t: LiveTask): void {
    this.#holds.push({
      commandId: t.command.id,
      ordinal: t.ordinal,
      agentId: t.agentId,
      verb: t.verb,
    });
    this.#flushSoon();
  }

  release(t: LiveTask): void {
    this.#p.committer.afterCommit(() => {
      this.#releases.push({ commandId: t.command.id, ordinal: t.ordinal });
      this.#flushSoon();
    }, t.command);
  }

  // -- driven by the cluster --

  /** The agents whose lease this node wants because tasks of it wait there. */
  wantedAgents(): string[] {
    return this.#p.admission().queuedAgents();
  }

  /**
   * A signal (`admissions`: grants for this node, or a queue or slot change on an agent it
   * holds), the safety-net tick, or new limits: take grants, admit on the held agents. Signalled,
   * it admits on held agents without a limit here too — another node queued tasks there, and a
   * holder that knows no limit for the agent grants them all rather than let them starve.
   */
  wake(signalled = false): void {
    const admission = this.#p.admission();
    const limited = admission.limitedAgents().length > 0;
    // No limits here and no signal: nothing of this node waits, and nobody waits on it.
    if (!limited && !signalled) return;
    if (limited) this.takeGrants();
    for (const agentId of this.#p.leases.heldAgents())
      if (signalled || admission.limitOf(agentId) !== null) this.admitSoon(agentId, signalled);
    this.#flushSoon();
  }

  /** Stops; resolves once the store calls in progress have ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.allSettled([this.#flushing, this.#taking, ...this.#admitting.values()]);
  }

  /**
   * Admits on `agentId` soon (coalesced) if this node holds its lease — by this node's limits
   * for it; without one, only when `anyway` (a signal): then every queued task there is granted.
   */
  admitSoon(agentId: string, anyway = false): void {
    if (this.#stopped) return;
    if (this.#admitting.has(agentId)) {
      if (anyway) this.#admitAnyway.add(agentId);
      this.#admitAgain.add(agentId);
      return;
    }
    if (anyway) this.#admitAnyway.add(agentId);
    const run = (async () => {
      do {
        this.#admitAgain.delete(agentId);
        const admission = this.#p.admission();
        const unlimited = this.#admitAnyway.delete(agentId)
          ? { maxRunning: null, byVerb: {}, ageStepMs: admission.ageStepMs }
          : null;
        const limits = (): SlotLimits | null => admission.limitOf(agentId) ?? unlimited;
        if (limits() === null || !this.#p.leases.heldAgents().includes(agentId)) break;
        try {
          // The limits as they are once the store has counted the slots (see admitQueued).
          const grants = await this.#p.store.admitQueued(this.#p.nodeId, agentId, limits);
          for (const g of grants ?? []) if (g.owner === this.#p.nodeId) this.#apply(g);
        } catch (error) {
          this.#failed(error, `admitting on ${agentId}`);
          break;
        }
      } while (this.#admitAgain.has(agentId) && !this.#stopped);
    })().finally(() => this.#admitting.delete(agentId));
    this.#admitting.set(agentId, run);
  }

  /** Takes the grants of this node's queued tasks (coalesced). */
  takeGrants(): void {
    if (this.#stopped) return;
    if (this.#taking) {
      this.#takeAgain = true;
      return;
    }
    this.#taking = (async () => {
      do {
        this.#takeAgain = false;
        try {
          const keys = await this.#p.store.takeGrants(this.#p.nodeId, GRANT_BATCH);
          for (const k of keys) this.#apply(k);
          // More than a batch: the rest once these are stored (no longer queued there).
          if (keys.length === GRANT_BATCH) this.#p.committer.afterCommit(() => this.takeGrants());
        } catch (error) {
          this.#failed(error, 'taking admission grants');
          break;
        }
      } while (this.#takeAgain && !this.#stopped);
    })().finally(() => (this.#taking = null));
  }

  /** A grant for a task of this node: admitted if it still waits here (not yet loaded: later). */
  #apply(k: TaskKey): void {
    const t = this.#p.liveTask(k.commandId, k.ordinal);
    if (t) this.#p.admission().grant(t);
  }

  #flushSoon(): void {
    if (this.#stopped) return;
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    this.#flushing = (async () => {
      await Promise.resolve(); // gather what this turn adds
      do {
        this.#flushAgain = false;
        const holds = this.#holds;
        const releases = this.#releases;
        const queuedOn = [...this.#queuedOn];
        this.#holds = [];
        this.#releases = [];
        this.#queuedOn.clear();
        try {
          // Holds before releases: a task both held and freed in one turn ends up free.
          if (holds.length > 0) await this.#p.store.holdSlots(holds);
          if (releases.length > 0) await this.#p.store.releaseSlots(releases);
          if (queuedOn.length > 0) await this.#p.store.queueChanged(queuedOn);
        } catch (error) {
          // Kept for the next tick (wake): rows are idempotent, signals are hints.
          this.#holds.unshift(...holds);
          this.#releases.unshift(...releases);
          for (const a of queuedOn) this.#queuedOn.add(a);
          this.#failed(error, 'writing admission slots');
          break;
        }
      } while (this.#flushAgain && !this.#stopped);
    })().finally(() => (this.#flushing = null));
  }

  #failed(error: unknown, what: string): void {
    if (this.#stopped) return;
    this.#p.logger.warn(
      { error: toErrorInfo(error, ErrorCode.StoreFailed) },
      `${what} failed; trying again`,
    );
  }
}
