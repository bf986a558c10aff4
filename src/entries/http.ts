/**
 * `coco-engine/http`: the HTTP agent broker, the engine's client of the agent protocol v2
 * (docs/PROTOCOL.md): signed batched calls, retries, a circuit breaker and a long-poll per agent.
 *
 * @example
 * ```ts
 * import { httpAgents } from 'coco-engine/http';
 *
 * const agents = httpAgents({
 *   caller: 'engine-1',
 *   agents: [{ id: 'host-1', url: 'http://10.0.0.5:7391', secret: process.env.HOST_1_SECRET! }],
 * });
 * const engine = createEngine({ store, agents, commands });
 * ```
 * @module
 */
export {
  AGENT_UNAUTHORIZED,
  HttpBroker,
  httpAgents,
  nodeHttpFetch,
  type HttpAgentConfig,
  type HttpAgentSnapshot,
  type HttpBrokerOptions,
  type HttpFetch,
} from '../brokers/http/broker.js';
