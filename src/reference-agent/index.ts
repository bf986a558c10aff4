/**
 * The reference agent (`coco agent`): an HTTP server speaking the agent protocol v2, with a
 * task table on disk that survives its restarts.
 *
 * @example
 * import { loadVerbModules, startAgent } from 'coco-engine/agent';
 * const verbs = await loadVerbModules(['./my-verbs.js']);
 * const agent = await startAgent({ id: 'host-1', secret, dataDir: './agent-data', port: 7411, verbs });
 * console.log(agent.url, agent.bootId);
 * await agent.close();
 *
 * @module
 */
export { AgentErrorCode } from './admission.js';
export {
  BODY_LIMIT_BYTES,
  createAgentServer,
  startAgent,
  type AgentOptions,
  type AgentServer,
  type RunningAgent,
} from './server.js';
export {
  AGENT_RESTARTED,
  PROGRESS_FLUSH_MS,
  TaskTable,
  restartedError,
  type StartItem,
  type StartResult,
  type TaskChangeListener,
  type TaskStatus,
  type TaskTableOptions,
} from './task-table.js';
export { LOCK_WAIT_MS, TASKS_FILE } from './task-file.js';
export { ChangeFeed, type ChangesPage } from './changes.js';
export {
  builtinVerbs,
  checkVerbs,
  loadVerbModules,
  rejectStart,
  toAgentLogger,
  type AgentLogger,
  type AgentVerbContext,
  type Verb,
  type VerbRegistry,
} from './verbs.js';
