/**
 * The agents a broker is configured for, as the dispatcher knows them: listed at start, and again
 * (at most once per refresh period) when a task names an agent missing from the last listing; and
 * the `AGENT_UNKNOWN` error of a task whose agent is not among them.
 *
 * @module
 */
import type { AgentBroker } from '../brokers/port.js';
import type { Clock } from '../core/clock.js';
import { ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { LiveTask } from './live.js';

/**
 * How long a listing of the broker's agents is trusted before it is asked again. A broker's
 * agents may change while the engine runs (agents added to an in-process broker, a configuration
 * reload), so an agent missing from the listing is looked up again before its tasks fail; at
 * most one listing a second bounds what a flood of tasks for a mistyped agent costs, and delays
 * their failure by one listing at the most.
 */
const KNOWN_AGENTS_REFRESH_MS = 1_000;

/** How many known agents an `AGENT_UNKNOWN` message names (the details carry them all). */
const KNOWN_AGENTS_IN_MESSAGE = 20;

/** The broker's agents, listed again when the last listing is older than the refresh period. */
export class KnownAgents {
  #known: ReadonlySet<string> | null = null;
  #knownAt = Number.NEGATIVE_INFINITY;
  #listing: Promise<ReadonlySet<string>> | null = null;
  /** Changes announced so far: a listing asked for before the last one is not trusted for long. */
  #changes = 0;
  readonly #broker: AgentBroker;
  readonly #clock: Clock;

  constructor(broker: AgentBroker, clock: Clock) {
    this.#broker = broker;
    this.#clock = clock;
  }

  /** Whether the broker was listed at least once (until then every agent is tried). */
  get listed(): boolean {
    return this.#known !== null;
  }

  /** Whether the last listing is older than the refresh period. */
  get stale(): boolean {
    return this.#clock.now() - this.#knownAt >= KNOWN_AGENTS_REFRESH_MS;
  }

  /** The broker's agents changed: the next question lists them again (not a listing under way). */
  invalidate(): void {
    this.#knownAt = Number.NEGATIVE_INFINITY;
    this.#listing = null;
    this.#changes++;
  }

  /** Whether the last listing had the agent. */
  has(agentId: string): boolean {
    return this.#known?.has(agentId) ?? false;
  }

  /** The last listing, sorted (for messages). */
  sorted(): string[] {
    return [...(this.#known ?? [])].sort();
  }

  /** The agents, listed again if the last listing is stale (or `force`); concurrent calls share one. */
  async list(force = false): Promise<ReadonlySet<string>> {
    if (this.#known !== null && !force && !this.stale) return this.#known;
    if (this.#listing !== null) return this.#listing;
    const changes = this.#changes;
    const listing = this.#broker.agentIds().then(
      (ids) => {
        if (this.#listing === listing) this.#listing = null;
        this.#known = new Set(ids);
        // Asked for before a change: answers this question, the next one lists again.
        this.#knownAt = changes === this.#changes ? this.#clock.now() : Number.NEGATIVE_INFINITY;
        return this.#known;
      },
      (error: unknown) => {
        if (this.#listing === listing) this.#listing = null;
        throw error;
      },
    );
    this.#listing = listing;
    return listing;
  }
}

/** The error of a task whose agent this node does not know. */
export function agentUnknownError(
  agentId: string,
  known: readonly string[],
  t: LiveTask,
): ErrorInfo {
  const names =
    known.length === 0
      ? '(none)'
      : known.slice(0, KNOWN_AGENTS_IN_MESSAGE).join(', ') +
        (known.length > KNOWN_AGENTS_IN_MESSAGE ? `, ... (${known.length} in all)` : '');
  const sent = t.startSent || t.status === 'running' || t.stopRequested;
  return {
    code: ErrorCode.AgentUnknown,
    message: sent
      ? `agent "${agentId}" is not known to this node any more (known agents: ${names}); task ` +
        `${t.agentTaskId} may still run there, and this node cannot stop or clear it`
      : `agent "${agentId}" is not known to this node (known agents: ${names}); task ` +
        `${t.agentTaskId} (${t.verb}) was not started`,
    details: { agentId, knownAgents: known, taskId: t.agentTaskId },
  };
}
