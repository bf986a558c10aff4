/**
 * One agent `a` for dispatcher unit tests: its task states set by the test, started tasks
 * running, its status changes pushed like a long-poll feed while `feed.live` (and `withPushes`),
 * and the next status call answered as the test says (failed, a report left out, out of order,
 * or held until released).
 */
import type {
  AgentBroker,
  AgentTaskState,
  StartRequest,
  StartResult,
  TaskStatusReport,
} from '../../src/brokers/port.js';

/** How the agent answers the next status call (then it answers normally again). */
export type Answer = 'normal' | 'fail' | 'omit-first' | 'reversed' | 'held';

/** The fake agent and what it saw. */
export interface PushingAgent {
  readonly broker: AgentBroker;
  readonly states: Map<string, AgentTaskState>;
  /** Task ids asked about by each status call. */
  readonly asked: string[][];
  /** Task ids of each stop call. */
  readonly stops: string[][];
  /** Whether the feed is up (`pushesStatuses` says so). */
  readonly feed: { live: boolean };
  /** Sets a task's state and pushes it to the dispatcher. */
  readonly push: (taskId: string, state: AgentTaskState) => void;
  /** How the next status call is answered. */
  readonly answerNext: (answer: Answer) => void;
  /** Lets a held answer go (see {@link Answer} `held`). */
  readonly release: () => void;
}

/** A {@link PushingAgent}; without `withPushes` the broker does not say it pushes statuses. */
export function pushingAgent(withPushes = true): PushingAgent {
  const states = new Map<string, AgentTaskState>();
  const asked: string[][] = [];
  const stops: string[][] = [];
  const feed = { live: true };
  let next: Answer = 'normal';
  let release: () => void = () => {};
  let listener: ((agentId: string, reports?: readonly TaskStatusReport[]) => void) | null = null;
  const broker: AgentBroker = {
    agentIds: () => Promise.resolve(['a']),
    startTasks: (_agent: string, requests: readonly StartRequest[]) => {
      for (const r of requests) states.set(r.taskId, 'running');
      return Promise.resolve(
        requests.map((r): StartResult => ({ taskId: r.taskId, accepted: true })),
      );
    },
    getStatuses: (_agent, ids) => {
      asked.push([...ids]);
      const answer = next;
      next = 'normal';
      if (answer === 'fail') return Promise.reject(new Error('connection reset'));
      const reports = ids.map((taskId): TaskStatusReport => ({
        taskId,
        state: states.get(taskId) ?? 'unknown',
      }));
      if (answer === 'omit-first') reports.shift();
      if (answer === 'reversed') reports.reverse();
      if (answer === 'held') return new Promise((r) => (release = () => r(reports)));
      return Promise.resolve(reports);
    },
    stopTasks: (_agent, ids) => {
      stops.push([...ids]);
      return Promise.resolve();
    },
    clearTasks: () => Promise.resolve(),
    listTasks: () => Promise.resolve([]),
    onActivity: (l) => {
      listener = l;
      return () => (listener = null);
    },
    ...(withPushes ? { pushesStatuses: () => feed.live } : {}),
  };
  return {
    broker,
    states,
    asked,
    stops,
    feed,
    push: (taskId, state) => {
      states.set(taskId, state);
      listener?.('a', [{ taskId, state }]);
    },
    answerNext: (answer) => {
      next = answer;
    },
    release: () => release(),
  };
}
