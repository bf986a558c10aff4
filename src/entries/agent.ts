/**
 * `coco-engine/agent`: the reference agent (`coco agent`) to embed in a program of your own, its
 * storage verbs, and what a plug-in verb is written against.
 *
 * A verb is a function of its arguments and a context: the task id, the agent id, the storage
 * root, `progress(percent)`, a stop `signal` (and the lighter `onStop`), and a logger bound to
 * the task. What it returns is the task's result, what it throws the task's error; throwing
 * `rejectStart(...)` (or `parseVerbArgs` failing) synchronously refuses the start.
 *
 * @example
 * ```ts
 * import { startAgent, type Verb } from 'coco-engine/agent';
 *
 * const hello: Verb = (args, ctx) => ({ greeted: args, by: ctx.agentId, root: ctx.storageRoot });
 * const agent = await startAgent({
 *   id: 'host-1',
 *   secret: process.env.COCO_AGENT_SECRET!,
 *   dataDir: './agent-data',
 *   storageRoot: './storage',
 *   port: 7391,
 *   verbs: { hello },
 * });
 * console.log(agent.url, agent.bootId);
 * await agent.close();
 * ```
 * @module
 */
export * from '../reference-agent/index.js';
export { parseVerbArgs, type VerbContext } from '../verbs/model.js';
export {
  DEFAULT_MAX_VOLUME_BYTES,
  storageVerbs,
  type StorageOptions,
  type StorageVerbContext,
} from '../reference-agent/storage/verbs.js';
