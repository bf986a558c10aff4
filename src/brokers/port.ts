/**
 * The agent-broker port: how the engine talks to the agents (hosts) that run async tasks.
 * Every call addresses one agent and carries many tasks, so a poll cycle costs one call per
 * agent however many tasks it runs. Task ids are chosen by the caller, which makes starting
 * idempotent: starting a task id the agent already has changes nothing. Task ids are also
 * single-use: a start that arrives after a stop or a clear of its id is refused, so a start
 * delayed on its way never runs a task nobody supervises.
 *
 * @module
 */
import type { ErrorInfo } from '../core/errors.js';

/** A task to start. */
export interface StartRequest {
  /** Caller-chosen, globally unique id. */
  readonly taskId: string;
  readonly verb: string;
  /** Must survive JSON (remote brokers send it over the wire). */
  readonly args: unknown;
  /**
   * The W3C `traceparent` of the engine's span for this task, when one records it: the agent's
   * work on the task joins that trace. Agents that do not trace ignore it.
   */
  readonly traceparent?: string;
}

/** Answer to one {@link StartRequest}. */
export type StartResult =
  /** Started now, or already known (a repeated start). */
  | { readonly taskId: string; readonly accepted: true }
  /**
   * Refused (unknown verb, bad arguments, or `TASK_ID_USED`: the id was stopped or cleared
   * before); the task does not exist on the agent.
   */
  | { readonly taskId: string; readonly accepted: false; readonly error: ErrorInfo };

/**
 * A task's state on its agent. `unknown`: the agent has no such task. An id stopped before its
 * start arrived reports `cancelled` (it never runs).
 */
export type AgentTaskState = 'running' | 'succeeded' | 'failed' | 'cancelled' | 'unknown';

/** One task's status, as reported by its agent. */
export interface TaskStatusReport {
  readonly taskId: string;
  readonly state: AgentTaskState;
  /** 0..100 while running. */
  readonly progress?: number;
  readonly result?: unknown;
  readonly error?: ErrorInfo;
}

/** What a broker knows of an agent. */
export interface AgentInfo {
  readonly agentId: string;
  /** Where the agent is reached (a URL), if the broker has one. */
  readonly address: string | null;
  readonly up: boolean;
  /** The agent process's boot id, once it answered; it changes when the agent restarts. */
  readonly bootId: string | null;
  /** The previous boot id, when this info reports a restart. */
  readonly previousBootId?: string | null;
  /** When the agent last answered (ms since the epoch). */
  readonly lastSeenAt: number | null;
  /** Why it is down. */
  readonly error?: ErrorInfo | null;
}

/**
 * The agent-broker port. Implementations: the in-process agents (tests, embedding), the HTTP
 * broker (remote agents). Methods may throw; the engine backs off per agent.
 */
export interface AgentBroker {
  /**
   * Ids of the agents this broker is configured for (and those it still follows after a reload
   * removed them: {@link retiredAt}), reachable or not: the agents the engine knows. A task for any other agent fails at once (`AGENT_UNKNOWN`), and calls for one may
   * throw `AGENT_UNKNOWN`. Also used to reconcile task lists at start.
   */
  agentIds(): Promise<readonly string[]>;
  /**
   * Starts tasks on one agent; answers one result per request, in request order. Repeating a
   * start of a task id the agent holds changes nothing (verb and arguments are not compared).
   * Ids are single-use: a start of an id the agent was told to stop before it held it, or to
   * clear, is refused with `TASK_ID_USED` (agents remember such ids for a bounded time, at
   * least as long as a delayed start may still arrive: `protocol/used-ids.ts`). Only an id the
   * agent lost (an in-memory agent that restarted) may start again.
   */
  startTasks(agentId: string, requests: readonly StartRequest[]): Promise<readonly StartResult[]>;
  /** Reports the status of many tasks of one agent in one call: one report per id, in order. */
  getStatuses(agentId: string, taskIds: readonly string[]): Promise<readonly TaskStatusReport[]>;
  /**
   * Asks an agent to stop tasks (they then end as `cancelled`). An id the agent does not hold
   * (its start may still be on the way) is remembered as used: it reports `cancelled` and a
   * later start of it is refused. Ended tasks are left as they are.
   */
  stopTasks(agentId: string, taskIds: readonly string[]): Promise<void>;
  /**
   * Makes an agent forget ended tasks; their ids, and ids it does not hold, are remembered as
   * used (a later start is refused). Running tasks are left as they are.
   */
  clearTasks(agentId: string, taskIds: readonly string[]): Promise<void>;
  /** Ids of the tasks an agent holds whose id starts with `prefix`. */
  listTasks(agentId: string, prefix: string): Promise<readonly string[]>;
  /**
   * Optional: calls `listener` when an agent has news (a task ended). With `reports` (fresh
   * statuses, e.g. from a long-poll of the agent's changes) the engine applies them at once;
   * without, it polls that agent at once instead of waiting for its next cycle. Returns an
   * unsubscribe function.
   */
  onActivity?(
    listener: (agentId: string, reports?: readonly TaskStatusReport[]) => void,
  ): () => void;
  /**
   * Optional: whether, right now, every status change of the agent's tasks reaches the
   * `onActivity` listeners with its report (a complete, live feed, e.g. a long-poll of the
   * agent's changes read from the start of its boot) and no periodic check of that feed is due.
   *
   * While it answers `true` the engine's poll cycle asks only about the tasks no report has
   * vouched for yet (just started or watched, being stopped, unknown to the agent): asking about
   * the others would repeat what was pushed, and the cycle then costs nothing per task. Such
   * partial polls are not the periodic check: the broker must answer `false` again once its check
   * is due (the HTTP broker: `longPoll.statusRefreshMs` after its last status request of every
   * task), and whenever the feed stops being live; the engine's next cycle then asks about every
   * task. Absent, or `false`: every cycle asks about every task.
   */
  pushesStatuses?(agentId: string): boolean;
  /**
   * Optional: calls `listener` when the broker learns something about an agent: it answered
   * (with its boot id: a new one means the agent restarted), or it stopped answering.
   */
  onAgentInfo?(listener: (info: AgentInfo) => void): () => void;
  /**
   * Optional: calls `listener` when the agents this broker lists change while it runs (a
   * configuration reload adds one, the engine forgets a retired one). The engine then lists them
   * again ({@link agentIds}) before it next judges an agent it did not know. Returns an
   * unsubscribe function.
   */
  onAgentsChanged?(listener: () => void): () => void;
  /**
   * Optional: when an agent was removed from the broker's configuration while it ran (a reload;
   * ms since the epoch), or null for an agent still configured. A retired agent is still reached
   * — and listed by {@link agentIds} — so that the work in flight there goes on to its end: its
   * tasks followed, and the later stages and the compensation of the trees submitted before its
   * retirement started there. A task of a tree submitted since fails without being sent
   * (`AGENT_RETIRED`): the agent is drained. Shown as no longer configured. Absent: none is.
   */
  retiredAt?(agentId: string): number | null;
  /**
   * Optional: drops a retired agent ({@link retiredAt}): its long-poll, health checks and news
   * end, it leaves {@link agentIds}, and calls for it fail `AGENT_UNKNOWN` as for any agent the
   * broker does not know. The engine calls it when it forgets the agent (no task of its own
   * there). Returns whether it held one.
   */
  dropRetired?(agentId: string): Promise<boolean>;
  /**
   * Optional (multi-node): from now on, poll by itself (long-polls) only these agents — those
   * whose lease this node holds. Resolves once the polls of the other agents have ended. The
   * engine's own calls are unaffected.
   */
  pollOnly?(agentIds: ReadonlySet<string>): Promise<void>;
  /** Releases connections. */
  close?(): Promise<void>;
}
