/**
 * `coco-engine/in-process`: agents living in the engine's process, for tests, embedding and
 * benchmarks. They run the same verbs as the reference agent (the built-ins `noop`, `echo`,
 * `sleep`, `fail`, and any given in `verbs`), answer through promises like a remote broker, and
 * count every call.
 *
 * @example
 * ```ts
 * import { inProcessAgents } from 'coco-engine/in-process';
 *
 * const agents = inProcessAgents(['host-1'], { verbs: { copy: (args) => ({ copied: args }) } });
 * ```
 * @module
 */
export {
  InProcessBroker,
  inProcessAgents,
  type InProcessAgentsOptions,
} from '../brokers/in-process/broker.js';
export {
  InProcessAgent,
  type AgentCounters,
  type AgentMethod,
  type EndedState,
  type InProcessAgentOptions,
  type TaskHistory,
  type TaskSnapshot,
} from '../brokers/in-process/agent.js';
export { builtinVerbs } from '../verbs/builtins.js';
export {
  parseVerbArgs,
  rejectStart,
  type Verb,
  type VerbContext,
  type VerbRegistry,
} from '../verbs/model.js';
