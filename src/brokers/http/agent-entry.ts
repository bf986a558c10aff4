/**
 * What the HTTP broker (`./broker.ts`) holds per agent: its client, what is known of it, its
 * long-poll, the starts in flight with the pushed reports that raced them, and when its status
 * polls may be answered from the long-poll's view; plus what the broker reports of its agents
 * (snapshots, request counts).
 *
 * @module
 */
import type { AgentInfo, TaskStatusReport } from '../port.js';
import { AgentState } from './agent-state.js';
import type { CircuitState } from './circuit.js';
import {
  AgentClient,
  type AgentClientHooks,
  type AgentOp,
  type RequestCounters,
  zeroCounters,
} from './client.js';
import type { ChangesLoop } from './long-poll.js';
import type { CompiledHttpBrokerOptions, HttpAgentConfig } from './options.js';

/** @internal What the broker holds per agent. */
export interface AgentEntry {
  readonly client: AgentClient;
  readonly state: AgentState;
  /** The health check in flight, if any. */
  health: Promise<void> | null;
  loop: ChangesLoop | null;
  /** Task ids of starts in flight, and pushed reports about them that arrived meanwhile. */
  readonly starting: Set<string>;
  readonly raced: Map<string, TaskStatusReport>;
  /** Until when status polls may be answered from the long-poll's view (then a real call). */
  nextStatusCallAt: number;
  /** When the last real status call went out while the long-poll ran (0: none yet). */
  statusCalledAt: number;
  /** Status polls answered from the long-poll's view, without a request. */
  statusFromView: number;
  /**
   * When it was removed from the configuration (`HttpBroker.setAgents`; ms since the epoch), or
   * null while configured: still reached, so that the work in flight there goes on to its end,
   * until the broker closes or drops it.
   */
  retiredAt: number | null;
}

/** The broker's view of one agent, for monitoring and tests. */
export interface HttpAgentSnapshot {
  readonly info: AgentInfo | null;
  readonly circuit: CircuitState;
  /** When an open circuit lets its next probe through (ms since the epoch), else 0. */
  readonly circuitOpenUntil: number;
  readonly requests: Readonly<RequestCounters>;
  /** Status polls answered from the long-poll without a request. */
  readonly statusFromView: number;
  /** When it was removed from the configuration (ms since the epoch), null while configured. */
  readonly retiredAt: number | null;
}

/** @internal The entry of a configured agent; its client tells `hooks` how the agent answers. */
export function newAgentEntry(
  config: HttpAgentConfig,
  options: CompiledHttpBrokerOptions,
  hooks: AgentClientHooks,
): AgentEntry {
  return {
    client: new AgentClient(config, options, hooks),
    state: new AgentState(config.id, config.url),
    health: null,
    loop: null,
    starting: new Set(),
    raced: new Map(),
    nextStatusCallAt: 0,
    statusCalledAt: 0,
    statusFromView: 0,
    retiredAt: null,
  };
}

/** @internal What the broker knows of an agent: its last info, circuit and request counters. */
export function snapshotOf(entry: AgentEntry): HttpAgentSnapshot {
  return {
    info: entry.state.info,
    circuit: entry.client.circuit.state,
    circuitOpenUntil: entry.client.circuit.openUntil,
    requests: { ...entry.client.counters },
    statusFromView: entry.statusFromView,
    retiredAt: entry.retiredAt,
  };
}

/** @internal Requests sent over all `entries`, by call, and status polls answered without one. */
export function totalRequestCounts(
  entries: Iterable<AgentEntry>,
): Readonly<RequestCounters & { statusFromView: number }> {
  const total: RequestCounters = zeroCounters();
  let statusFromView = 0;
  for (const entry of entries) {
    for (const key of Object.keys(total) as (AgentOp | 'failedFast' | 'retries')[])
      total[key] += entry.client.counters[key];
    statusFromView += entry.statusFromView;
  }
  return { ...total, statusFromView };
}

/**
 * While the broker's calls wait in line for a slot (the node is behind), the status refresh —
 * a safety net against a change the long-poll missed, not a source of news — is put off up to
 * this many times `statusRefreshMs` (30 s by default), so that it gives way to the calls that
 * are. At 10,000 agents the refresh alone is ~1,300 calls a second (measured: more than a
 * starved node got through its slots, so its queue grew and its calls ran out of budget).
 */
export const CONGESTED_REFRESH_FACTOR = 3;

/**
 * @internal The statuses of `taskIds` from the agent's long-poll view (counted in
 * `statusFromView`) while it may answer for them; otherwise null, and while a long-poll runs,
 * the next real status call is scheduled about `refreshMs` from `now` and the view trimmed.
 * `congested`: calls are waiting for a slot — the refresh is then put off (up to
 * {@link CONGESTED_REFRESH_FACTOR} × `refreshMs` since the last real call).
 */
export function statusesFromView(
  entry: AgentEntry,
  taskIds: readonly string[],
  now: number,
  refreshMs: number,
  congested = false,
): readonly TaskStatusReport[] | null {
  const fresh = viewFresh(entry, now, refreshMs, congested);
  if (entry.loop && taskIds.length > 0 && fresh) {
    const seen = entry.loop.statuses(taskIds);
    if (seen) {
      entry.statusFromView++;
      return seen;
    }
  }
  // Only a due refresh schedules the next: a call for a few tasks the view has not seen (the
  // engine asks about those alone while the feed pushes the rest) must not put it off.
  if (entry.loop && !fresh) {
    // Jitter in [refresh/2, refresh]: agents whose polls began together (an engine start) do
    // not all get their real status call in the same instant.
    entry.nextStatusCallAt = now + refreshMs / 2 + Math.random() * (refreshMs / 2);
    entry.statusCalledAt = now;
    entry.loop.trim(now - Math.max(refreshMs, 1));
  }
  return null;
}

/**
 * @internal Whether the agent's long-poll view may answer for it at `now`: its real status call
 * (the refresh) is not due yet, or is put off while calls wait for a slot (`congested`).
 */
export function viewFresh(
  entry: AgentEntry,
  now: number,
  refreshMs: number,
  congested: boolean,
): boolean {
  return (
    now < entry.nextStatusCallAt ||
    (congested && now < entry.statusCalledAt + CONGESTED_REFRESH_FACTOR * refreshMs)
  );
}

/** @internal Keeps the pushed end reports of tasks whose start is still in flight. */
export function keepRaced(entry: AgentEntry, reports: readonly TaskStatusReport[]): void {
  // A task that ended before its start call returned is not yet polled by the engine, which
  // would drop this report; keep it and push it again once the start has returned.
  if (entry.starting.size > 0) {
    for (const r of reports)
      if (r.state !== 'running' && entry.starting.has(r.taskId)) entry.raced.set(r.taskId, r);
  }
}

/** @internal Ends the starts of `ids`; returns the reports kept by {@link keepRaced} for them. */
export function takeRaced(entry: AgentEntry, ids: readonly string[]): TaskStatusReport[] {
  const again: TaskStatusReport[] = [];
  for (const id of ids) {
    entry.starting.delete(id);
    const r = entry.raced.get(id);
    if (r) {
      entry.raced.delete(id);
      again.push(r);
    }
  }
  return again;
}
