/**
 * A broker that routes each agent to one of several brokers (in-process agents beside HTTP
 * ones), for tests that want both in one engine.
 */
import type {
  AgentBroker,
  AgentInfo,
  StartRequest,
  StartResult,
  TaskStatusReport,
} from '../../src/brokers/port.js';

/** Routes calls by agent id to the broker that has the agent. */
export class RoutingBroker implements AgentBroker {
  readonly #brokers: readonly AgentBroker[];
  readonly #byAgent = new Map<string, AgentBroker>();

  constructor(brokers: readonly AgentBroker[]) {
    this.#brokers = brokers;
  }

  async agentIds(): Promise<readonly string[]> {
    const ids: string[] = [];
    for (const b of this.#brokers)
      for (const id of await b.agentIds()) {
        this.#byAgent.set(id, b);
        ids.push(id);
      }
    return ids;
  }

  async #route(agentId: string): Promise<AgentBroker> {
    if (!this.#byAgent.has(agentId)) await this.agentIds();
    const b = this.#byAgent.get(agentId);
    if (!b) throw new Error(`no broker has agent ${agentId}`);
    return b;
  }

  async startTasks(
    agentId: string,
    requests: readonly StartRequest[],
  ): Promise<readonly StartResult[]> {
    return (await this.#route(agentId)).startTasks(agentId, requests);
  }
  async getStatuses(agentId: string, ids: readonly string[]): Promise<readonly TaskStatusReport[]> {
    return (await this.#route(agentId)).getStatuses(agentId, ids);
  }
  async stopTasks(agentId: string, ids: readonly string[]): Promise<void> {
    return (await this.#route(agentId)).stopTasks(agentId, ids);
  }
  async clearTasks(agentId: string, ids: readonly string[]): Promise<void> {
    return (await this.#route(agentId)).clearTasks(agentId, ids);
  }
  async listTasks(agentId: string, prefix: string): Promise<readonly string[]> {
    return (await this.#route(agentId)).listTasks(agentId, prefix);
  }
  onActivity(
    listener: (agentId: string, reports?: readonly TaskStatusReport[]) => void,
  ): () => void {
    const offs = this.#brokers.map((b) => b.onActivity?.(listener) ?? (() => undefined));
    return () => offs.forEach((off) => off());
  }
  onAgentInfo(listener: (info: AgentInfo) => void): () => void {
    const offs = this.#brokers.map((b) => b.onAgentInfo?.(listener) ?? (() => undefined));
    return () => offs.forEach((off) => off());
  }
  async close(): Promise<void> {
    for (const b of this.#brokers) await b.close?.();
  }
}
