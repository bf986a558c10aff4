/**
 * The in-process agent broker: the {@link AgentBroker} port over a set of
 * {@link InProcessAgent}s. Its methods answer through promises, exactly like a remote broker,
 * so the engine cannot tell the difference.
 *
 * @example
 * ```ts
 * const broker = inProcessAgents(['host-a', 'host-b']);
 * // ... run an engine with `broker` ...
 * expect(broker.agent('host-a').counters().starts).toBe(3);
 * ```
 *
 * @module
 */
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { AgentBroker, StartRequest, StartResult, TaskStatusReport } from '../port.js';
import { InProcessAgent, type InProcessAgentOptions } from './agent.js';

/** Routes broker calls to in-process agents by agent id. */
export class InProcessBroker implements AgentBroker {
  readonly #agents = new Map<string, InProcessAgent>();
  /** Every agent ever added, reachable or not: the agents this broker is configured for. */
  readonly #configured = new Set<string>();
  /** Unsubscribe functions of the broker's own activity subscriptions, by agent id. */
  readonly #subscriptions = new Map<string, () => void>();
  readonly #listeners = new Set<(agentId: string) => void>();

  /** A broker over `agents` (more can be added with {@link InProcessBroker.addAgent}). */
  constructor(agents: Iterable<InProcessAgent> = []) {
    for (const agent of agents) this.addAgent(agent);
  }

  /** Makes an agent reachable. Throws `INVALID_OPTIONS` if its id is taken. */
  addAgent(agent: InProcessAgent): this {
    if (this.#agents.has(agent.id)) {
      throw new CocoError(ErrorCode.InvalidOptions, `agent "${agent.id}" is already in the broker`);
    }
    this.#agents.set(agent.id, agent);
    this.#configured.add(agent.id);
    this.#subscriptions.set(agent.id, agent.onActivity(this.#relay));
    return this;
  }

  /**
   * Makes an agent unreachable, as if its host were gone: calls for it then fail with
   * `AGENT_UNAVAILABLE`. The agent itself (its tasks, counters, timers) lives on and can be
   * added back. Returns the removed agent.
   */
  removeAgent(agentId: string): InProcessAgent | undefined {
    const agent = this.#agents.get(agentId);
    if (agent === undefined) return undefined;
    this.#agents.delete(agentId);
    this.#subscriptions.get(agentId)?.();
    this.#subscriptions.delete(agentId);
    return agent;
  }

  /** The agent with this id (for tests: counters, faults). Throws `AGENT_UNAVAILABLE` if absent. */
  agent(agentId: string): InProcessAgent {
    return this.#route(agentId);
  }

  /** The reachable agents, in the order they were added. */
  agents(): InProcessAgent[] {
    return [...this.#agents.values()];
  }

  /**
   * {@inheritDoc AgentBroker.agentIds} Agents removed with {@link InProcessBroker.removeAgent}
   * stay configured (unreachable, as a host that is down).
   */
  agentIds(): Promise<readonly string[]> {
    return Promise.resolve([...this.#configured]);
  }

  /** {@inheritDoc AgentBroker.startTasks} */
  async startTasks(
    agentId: string,
    requests: readonly StartRequest[],
  ): Promise<readonly StartResult[]> {
    return this.#route(agentId).startTasks(requests);
  }

  /** {@inheritDoc AgentBroker.getStatuses} */
  async getStatuses(
    agentId: string,
    taskIds: readonly string[],
  ): Promise<readonly TaskStatusReport[]> {
    return this.#route(agentId).getStatuses(taskIds);
  }

  /** {@inheritDoc AgentBroker.stopTasks} */
  async stopTasks(agentId: string, taskIds: readonly string[]): Promise<void> {
    return this.#route(agentId).stopTasks(taskIds);
  }

  /** {@inheritDoc AgentBroker.clearTasks} */
  async clearTasks(agentId: string, taskIds: readonly string[]): Promise<void> {
    return this.#route(agentId).clearTasks(taskIds);
  }

  /** {@inheritDoc AgentBroker.listTasks} */
  async listTasks(agentId: string, prefix: string): Promise<readonly string[]> {
    return this.#route(agentId).listTasks(prefix);
  }

  /** Fans in the activity of every reachable agent (coalesced per agent by the agents). */
  onActivity(listener: (agentId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /**
   * Drops the activity listeners. Calls keep working: the agents are not the broker's to
   * release, and a test may hand the same broker to a second engine after the first stopped.
   */
  close(): Promise<void> {
    this.#listeners.clear();
    return Promise.resolve();
  }

  #route(agentId: string): InProcessAgent {
    const agent = this.#agents.get(agentId);
    if (agent !== undefined) return agent;
    const known = [...this.#agents.keys()].join(', ') || '(none)';
    if (!this.#configured.has(agentId))
      throw new CocoError(
        ErrorCode.AgentUnknown,
        `agent "${agentId}" is not in this broker; its agents: ${[...this.#configured].join(', ') || '(none)'}`,
        { details: { agentId, knownAgents: [...this.#configured] } },
      );
    throw new CocoError(
      ErrorCode.AgentUnavailable,
      `agent "${agentId}" is not reachable; reachable agents: ${known}`,
      {
        retryable: true,
        details: { agentId },
      },
    );
  }

  readonly #relay = (agentId: string): void => {
    for (const listener of [...this.#listeners]) {
      try {
        listener(agentId);
      } catch (error) {
        // One broken listener must not starve the others; surface it like an emitter would.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  };
}

/** Options of {@link inProcessAgents}: those of every agent, minus the id. */
export type InProcessAgentsOptions = Omit<InProcessAgentOptions, 'id'>;

/**
 * Builds a broker over fresh agents: one per id, or `count` agents named `agent-1`,
 * `agent-2`, and so on. Every agent gets the same options (verbs, clock, history).
 */
export function inProcessAgents(
  ids: readonly string[] | number,
  options: InProcessAgentsOptions = {},
): InProcessBroker {
  const names =
    typeof ids === 'number' ? Array.from({ length: ids }, (_, i) => `agent-${i + 1}`) : ids;
  return new InProcessBroker(names.map((id) => new InProcessAgent({ ...options, id })));
}
