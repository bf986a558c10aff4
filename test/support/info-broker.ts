/**
 * In-process agents plus a feed of agent infos the caller drives (`onAgentInfo`), as the HTTP
 * broker tells of agents coming up: for the tests and the bench of agent rows.
 *
 * @module
 */
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import type { AgentBroker, AgentInfo } from '../../src/brokers/port.js';

/** A broker of one in-process agent (`a1`) whose agent-info feed `tell` drives. */
export function brokerWithInfos(): { broker: AgentBroker; tell: (info: AgentInfo) => void } {
  const inner = inProcessAgents(['a1'], { verbs: {} });
  let listener: ((info: AgentInfo) => void) | null = null;
  const broker: AgentBroker = {
    agentIds: () => inner.agentIds(),
    startTasks: (a, r) => inner.startTasks(a, r),
    getStatuses: (a, ids) => inner.getStatuses(a, ids),
    stopTasks: (a, ids) => inner.stopTasks(a, ids),
    clearTasks: (a, ids) => inner.clearTasks(a, ids),
    listTasks: (a, p) => inner.listTasks(a, p),
    onAgentInfo: (l) => {
      listener = l;
      return () => (listener = null);
    },
  };
  return { broker, tell: (info) => listener?.(info) };
}
