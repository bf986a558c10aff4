/**
 * The HTTP agent broker: the engine's client of the agent protocol (`src/protocol/agent-v2.ts`).
 * Each port call is one signed HTTP request to one agent however many tasks it carries (chunked
 * only above the protocol's `MAX_BATCH`); answers are validated with the protocol's schemas.
 * Per agent it keeps a circuit breaker, a long-poll of the agent's task changes (pushed to the
 * engine through `onActivity`), and what it knows of the agent (up or down, boot id), reported
 * through `onAgentInfo`.
 *
 * While an agent's long-poll is live, the engine's status polls of it are answered from what the
 * long-poll reported (no request; as fresh as a status call), with a real status call at least
 * every `longPoll.statusRefreshMs` (10 s) as the safety net — at 1,000 agents this removes most
 * of the engine's polling cost (see bench/agents-http.ts). Over all agents, those refreshes are
 * bounded (`longPoll.statusRefreshesPerSecond`): a large fleet refreshes each agent less often.
 *
 * Network work starts lazily, at the first subscription or call: a health check of every agent,
 * then, while someone listens to `onActivity`, the long-poll loops.
 *
 * @example
 * ```ts
 * const agents = httpAgents({
 *   caller: 'engine-1',
 *   agents: [{ id: 'host-a', url: 'http://10.0.0.5:7070', secret: process.env.HOST_A_SECRET! }],
 * });
 * const engine = createEngine({ store, agents, commands });
 * ```
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { CocoError, ErrorCode } from '../../core/errors.js';
import {
  healthResponse,
  listResponse,
  okResponse,
  startResponse,
  statusResponse,
} from '../../protocol/agent-v2.js';
import type {
  AgentBroker,
  AgentInfo,
  StartRequest,
  StartResult,
  TaskStatusReport,
} from '../port.js';
import {
  keepRaced,
  newAgentEntry,
  snapshotOf,
  statusesFromView,
  viewFresh,
  takeRaced,
  totalRequestCounts,
  type AgentEntry,
  type HttpAgentSnapshot,
} from './agent-entry.js';
import { checkIds, chunks, errorInfo } from './agent-state.js';
import type { RequestCounters } from './client.js';
import { ChangesLoop } from './long-poll.js';
import {
  compileAgents,
  compileHttpBrokerOptions,
  type CompiledHttpBrokerOptions,
  type HttpAgentConfig,
  type HttpBrokerOptions,
} from './options.js';

export type { HttpAgentSnapshot } from './agent-entry.js';
export { AGENT_UNAUTHORIZED } from './client.js';
export type { HttpBrokerOptions, HttpAgentConfig } from './options.js';
export { nodeHttpFetch, type HttpFetch } from './transport.js';

/** What {@link HttpBroker.setAgents} changed, by agent id (never a secret). */
export interface AgentsChange {
  /** Agents new to the broker, or retired before and configured again. */
  readonly added: readonly string[];
  /** Agents no longer configured: still reached until the work in flight there has ended. */
  readonly retired: readonly string[];
  /** Agents at another URL, reached there from the next call. */
  readonly moved: readonly string[];
  /** Agents whose secret changed, signed with the new one from the next request. */
  readonly secrets: readonly string[];
}

type ActivityListener = (agentId: string, reports?: readonly TaskStatusReport[]) => void;
type InfoListener = (info: AgentInfo) => void;

/** The {@link AgentBroker} of agents reached over HTTP (agent protocol v2). */
export class HttpBroker implements AgentBroker {
  readonly #o: CompiledHttpBrokerOptions;
  readonly #agents = new Map<string, AgentEntry>();
  readonly #activity = new Set<ActivityListener>();
  readonly #info = new Set<InfoListener>();
  readonly #agentsChanged = new Set<() => void>();
  #active = false;
  #closed = false;
  /** Agents this broker may long-poll (multi-node: those whose lease the node holds); null: all. */
  #pollOnly: ReadonlySet<string> | null = null;
  /** Agents whose long-poll loop runs (they share the refresh budget, see {@link #refreshMs}). */
  #liveLoops = 0;

  /** Validates `options` (`INVALID_OPTIONS` naming the bad field); sends nothing yet. */
  constructor(options: HttpBrokerOptions) {
    this.#o = compileHttpBrokerOptions(options);
    for (const config of this.#o.agents) this.#add(config);
  }

  /** {@inheritDoc AgentBroker.agentIds} */
  agentIds(): Promise<readonly string[]> {
    return Promise.resolve([...this.#agents.keys()]);
  }

  /** {@inheritDoc AgentBroker.retiredAt} */
  retiredAt(agentId: string): number | null {
    return this.#agents.get(agentId)?.retiredAt ?? null;
  }

  /** {@inheritDoc AgentBroker.startTasks} */
  async startTasks(
    agentId: string,
    requests: readonly StartRequest[],
  ): Promise<readonly StartResult[]> {
    const entry = this.#entry(agentId);
    const results: StartResult[] = [];
    for (const chunk of chunks(requests)) {
      const ids = chunk.map((r) => r.taskId);
      for (const id of ids) entry.starting.add(id);
      try {
        const answer = await entry.client.call(
          'start',
          // `args: undefined` would vanish from the JSON; the protocol wants the key.
          {
            tasks: chunk.map((r) =>
              r.traceparent === undefined
                ? { taskId: r.taskId, verb: r.verb, args: r.args ?? null }
                : {
                    taskId: r.taskId,
                    verb: r.verb,
                    args: r.args ?? null,
                    traceparent: r.traceparent,
                  },
            ),
          },
          startResponse,
        );
        checkIds(
          { agentId: entry.client.id, url: entry.client.url, op: 'start' },
          ids,
          answer.results,
        );
        for (const r of answer.results) {
          results.push(
            r.accepted
              ? { taskId: r.taskId, accepted: true }
              : { taskId: r.taskId, accepted: false, error: errorInfo(r.error) },
          );
        }
      } finally {
        this.#startSettled(entry, ids);
      }
    }
    return results;
  }

  /** {@inheritDoc AgentBroker.getStatuses} */
  async getStatuses(
    agentId: string,
    taskIds: readonly string[],
  ): Promise<readonly TaskStatusReport[]> {
    const entry = this.#entry(agentId);
    const now = this.#o.clock.now();
    const seen = statusesFromView(entry, taskIds, now, this.#refreshMs(), this.#o.gate.waiting > 0);
    if (seen !== null) return seen;
    const reports: TaskStatusReport[] = [];
    for (const chunk of chunks(taskIds)) {
      const answer = await entry.client.call('status', { taskIds: chunk }, statusResponse);
      checkIds(
        { agentId: entry.client.id, url: entry.client.url, op: 'status' },
        chunk,
        answer.tasks,
      );
      // zod's output has exactly the report's fields (absent optionals stay absent): no copy.
      if (chunk.length === taskIds.length) return answer.tasks;
      reports.push(...answer.tasks);
    }
    return reports;
  }

  /** {@inheritDoc AgentBroker.pushesStatuses} */
  pushesStatuses(agentId: string): boolean {
    const entry = this.#agents.get(agentId);
    if (!entry?.loop?.pushesAll) return false;
    return viewFresh(entry, this.#o.clock.now(), this.#refreshMs(), this.#o.gate.waiting > 0);
  }

  /**
   * The time between an agent's real status calls while its long-poll is live:
   * `statusRefreshMs`, or longer when the live long-polls would otherwise refresh more than
   * `statusRefreshesPerSecond` (the jitter makes the mean interval ¾ of this).
   */
  #refreshMs(): number {
    const settings = this.#o.longPoll;
    if (settings === null || settings.statusRefreshMs === 0) return 0;
    const spread = (4 / 3) * ((1000 * this.#liveLoops) / settings.statusRefreshesPerSecond);
    return Math.max(settings.statusRefreshMs, spread);
  }

  /** {@inheritDoc AgentBroker.stopTasks} */
  async stopTasks(agentId: string, taskIds: readonly string[]): Promise<void> {
    const entry = this.#entry(agentId);
    for (const chunk of chunks(taskIds))
      await entry.client.call('stop', { taskIds: chunk }, okResponse);
  }

  /** {@inheritDoc AgentBroker.clearTasks} */
  async clearTasks(agentId: string, taskIds: readonly string[]): Promise<void> {
    const entry = this.#entry(agentId);
    for (const chunk of chunks(taskIds)) {
      await entry.client.call('clear', { taskIds: chunk }, okResponse);
      entry.loop?.forget(chunk);
    }
  }

  /** {@inheritDoc AgentBroker.listTasks} */
  async listTasks(agentId: string, prefix: string): Promise<readonly string[]> {
    const answer = await this.#entry(agentId).client.call('list', { prefix }, listResponse);
    return answer.taskIds;
  }

  /**
   * Calls `listener` with the statuses the agents push (their long-polled changes). Long-polls
   * run while at least one listener is subscribed (and `longPoll` is on).
   */
  onActivity(listener: ActivityListener): () => void {
    this.#activity.add(listener);
    this.#activate();
    void this.#syncLoops();
    return () => {
      this.#activity.delete(listener);
      void this.#syncLoops();
    };
  }

  /**
   * Calls `listener` on every up/down change and every boot change of an agent (a new boot id
   * comes with `previousBootId`). A new listener first gets what is known of each agent.
   */
  onAgentInfo(listener: InfoListener): () => void {
    this.#info.add(listener);
    this.#activate();
    const known = [...this.#agents.values()].flatMap((e) => (e.state.info ? [e.state.info] : []));
    if (known.length > 0) {
      queueMicrotask(() => {
        for (const info of known) if (this.#info.has(listener)) this.#safely(() => listener(info));
      });
    }
    return () => void this.#info.delete(listener);
  }

  /** {@inheritDoc AgentBroker.onAgentsChanged} */
  onAgentsChanged(listener: () => void): () => void {
    this.#agentsChanged.add(listener);
    return () => void this.#agentsChanged.delete(listener);
  }

  /** {@inheritDoc AgentBroker.dropRetired} */
  async dropRetired(agentId: string): Promise<boolean> {
    const entry = this.#agents.get(agentId);
    if (entry?.retiredAt == null) return false;
    this.#agents.delete(agentId);
    this.#changed();
    await this.#stopLoop(entry);
    entry.client.close();
    return true;
  }

  /** Tells the `onAgentsChanged` listeners that the agents listed changed. */
  #changed(): void {
    for (const listener of [...this.#agentsChanged]) this.#safely(listener);
  }

  /** {@inheritDoc AgentBroker.pollOnly} */
  async pollOnly(agentIds: ReadonlySet<string>): Promise<void> {
    this.#pollOnly = new Set(agentIds);
    await this.#syncLoops();
  }

  /**
   * Replaces the agents this broker is configured for (a configuration reload, no restart), as
   * one change; an id is one agent whatever its URL or secret:
   * - an agent new to the list is added: listed from now on, checked and long-polled as the
   *   others (so is a retired one listed again);
   * - an agent missing from the list is **retired**, not dropped: still reached, so that the work
   *   in flight there goes on to its end — its tasks polled, stopped and cleared, the later stages
   *   and the compensation of the trees using it started there — and shown as no longer
   *   configured ({@link retiredAt}: the engine starts no task there for a tree submitted since).
   *   It leaves the broker with the broker (a restart without it, once the engine has no task
   *   there) or when the engine forgets it ({@link dropRetired});
   * - an agent with another URL is reached there from the next call (its calls in flight end
   *   at the old URL);
   * - an agent with another secret signs its next requests with it (a rotation: the agent must
   *   already accept it, see `coco agent --secret-file`).
   *
   * An agent retires now, or at `retiredSince`'s time for it when it has one (a node's new
   * broker carrying the retirements of the one it replaces). Throws `INVALID_OPTIONS` naming each
   * bad field, changing nothing (see {@link compileAgents}).
   */
  setAgents(
    agents: readonly HttpAgentConfig[],
    retiredSince?: ReadonlyMap<string, number>,
  ): AgentsChange {
    const next = compileAgents(agents);
    const change: Record<keyof AgentsChange, string[]> = {
      added: [],
      retired: [],
      moved: [],
      secrets: [],
    };
    const wanted = new Set(next.map((a) => a.id));
    const now = Date.now();
    for (const [id, entry] of this.#agents) {
      if (wanted.has(id) || entry.retiredAt !== null) continue;
      entry.retiredAt = retiredSince?.get(id) ?? now;
      change.retired.push(id);
    }
    for (const config of next) {
      const entry = this.#agents.get(config.id);
      if (!entry) {
        this.#add(config);
        change.added.push(config.id);
        continue;
      }
      if (entry.retiredAt !== null) {
        entry.retiredAt = null;
        change.added.push(config.id);
      }
      if (entry.client.url !== config.url) {
        this.#replace(entry, config);
        change.moved.push(config.id);
      } else if (entry.client.setSecret(config.secret)) change.secrets.push(config.id);
    }
    if (change.added.length > 0 || change.moved.length > 0) {
      if (this.#active) this.#checkDescriptors();
      void this.#syncLoops();
    }
    if (change.added.length > 0) this.#changed();
    return change;
  }

  /** A new agent's entry; checked at once when the broker is in use. */
  #add(config: HttpAgentConfig): AgentEntry {
    const entry: AgentEntry = newAgentEntry(config, this.#o, {
      answered: (bootId) => {
        if (this.#agents.get(config.id) === entry) this.#answered(entry, bootId);
      },
      failed: (error) => {
        if (this.#agents.get(config.id) === entry) this.#failed(entry, error);
      },
    });
    this.#agents.set(config.id, entry);
    if (this.#active) void this.#health(entry);
    return entry;
  }

  /**
   * The agent is at another URL: a new entry in its place. The old long-poll stops; calls in
   * flight to the old URL end there (an answer is as good as any, a failure is the engine's to
   * retry), and its client is closed once the last of them is past its budget.
   */
  #replace(old: AgentEntry, config: HttpAgentConfig): void {
    void this.#stopLoop(old);
    setTimeout(() => old.client.close(), this.#o.timeoutMs).unref();
    this.#add(config);
  }

  /** Stops the long-polls, aborts requests in flight and drops the listeners. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#activity.clear();
    this.#info.clear();
    this.#agentsChanged.clear();
    const loops: Promise<void>[] = [];
    for (const entry of this.#agents.values()) {
      loops.push(this.#stopLoop(entry));
      entry.client.close();
    }
    await Promise.all(loops);
    this.#o.releaseTransport();
  }

  /** What the broker knows of an agent: its last info, circuit and request counters. */
  agent(agentId: string): HttpAgentSnapshot {
    return snapshotOf(this.#entry(agentId));
  }

  /** Requests sent so far over all agents, by call, and status polls answered without one. */
  requestCounts(): Readonly<RequestCounters & { statusFromView: number }> {
    return totalRequestCounts(this.#agents.values());
  }

  /**
   * The broker's call slots (`maxConcurrentCalls`): held now, waiting now, the peak held, calls
   * that had to wait, calls refused after waiting their whole budget (`BROKER_SATURATED`).
   */
  callSlots(): {
    readonly limit: number;
    readonly inFlight: number;
    readonly waiting: number;
    readonly peak: number;
    readonly waited: number;
    readonly refused: number;
  } {
    const { gate } = this.#o;
    return { limit: gate.limit, inFlight: gate.inFlight, waiting: gate.waiting, ...gate.stats() };
  }

  /** Checks an agent now (`GET /v2/health`): its answer updates what is known of it. */
  async checkHealth(agentId: string): Promise<AgentInfo | null> {
    const entry = this.#entry(agentId);
    await this.#health(entry);
    return entry.state.info;
  }

  #entry(agentId: string): AgentEntry {
    if (this.#closed)
      throw new CocoError(ErrorCode.AgentUnavailable, 'the HTTP agent broker is closed', {
        details: { agentId },
      });
    const entry = this.#agents.get(agentId);
    if (!entry) {
      const known = [...this.#agents.keys()];
      throw new CocoError(
        ErrorCode.AgentUnknown,
        `agent "${agentId}" is not configured in the HTTP broker; configured: ${known.join(', ')}`,
        { details: { agentId, knownAgents: known } },
      );
    }
    this.#activate();
    return entry;
  }

  /** The first use: check every agent's health. */
  #activate(): void {
    if (this.#active || this.#closed) return;
    this.#active = true;
    this.#checkDescriptors();
    for (const entry of this.#agents.values()) void this.#health(entry);
  }

  /**
   * Logs an error when the process may open fewer files than the broker can need: a held
   * long-poll per agent, a connection per call slot, and {@link FD_MARGIN} for the rest of the
   * node. Short of it, calls fail with `BROKER_SATURATED` (`EMFILE`) instead of reaching agents.
   */
  #checkDescriptors(): void {
    const limit = openFilesLimit();
    if (limit === null) return;
    const polled = this.#o.longPoll === null ? 0 : this.#agents.size;
    const needed = polled + this.#o.maxConcurrentCalls + FD_MARGIN;
    if (limit >= needed) return;
    this.#o.logger.error(
      {
        code: ErrorCode.BrokerSaturated,
        openFilesLimit: limit,
        needed,
        agents: this.#agents.size,
        maxConcurrentCalls: this.#o.maxConcurrentCalls,
      },
      `this process may open ${limit} files (ulimit -n) but the HTTP agent broker may need ${needed}: ` +
        `${polled} long-polls (one per agent), ${this.#o.maxConcurrentCalls} call slots (maxConcurrentCalls) ` +
        `and ${FD_MARGIN} for the node; raise the limit or lower maxConcurrentCalls, else calls will fail ` +
        `with BROKER_SATURATED (EMFILE)`,
    );
  }

  /** Runs a health check, or joins the one in flight; failures are reported through the hooks. */
  #health(entry: AgentEntry): Promise<void> {
    if (this.#closed) return Promise.resolve();
    entry.health ??= this.#checkOnce(entry).finally(() => {
      entry.health = null;
    });
    return entry.health;
  }

  async #checkOnce(entry: AgentEntry): Promise<void> {
    try {
      const health = await entry.client.call('health', undefined, healthResponse, { retry: false });
      if (health.agentId !== entry.client.id) {
        this.#o.logger.error(
          { agentId: entry.client.id, url: entry.client.url, answeredAs: health.agentId },
          'the agent at this URL calls itself by another id: check the broker configuration',
        );
      }
    } catch (error) {
      // Already reported: the hooks marked the agent down (or the circuit is open). Only a check
      // this node was too busy to send is tried again, later: nothing else would (an agent
      // that answers is never checked again, so its id would go unverified).
      if (error instanceof CocoError && error.code === ErrorCode.BrokerSaturated)
        this.#healthLater(entry);
    }
  }

  /** Runs a health check in 5–10 s, or later while calls still wait for a slot. */
  #healthLater(entry: AgentEntry): void {
    if (this.#closed) return;
    const delay = HEALTH_RETRY_MS / 2 + Math.random() * (HEALTH_RETRY_MS / 2);
    const timer = setTimeout(() => {
      // Not while the node is still behind: a background check must not add to the line.
      if (this.#o.gate.waiting > 0) this.#healthLater(entry);
      else void this.#health(entry);
    }, delay);
    timer.unref();
  }

  /** Long-poll loops run while there are activity listeners. */
  #syncLoops(): Promise<void> {
    const settings = this.#o.longPoll;
    const stopping: Promise<void>[] = [];
    const want = settings !== null && this.#activity.size > 0 && !this.#closed;
    for (const entry of this.#agents.values()) {
      const allowed = this.#pollOnly === null || this.#pollOnly.has(entry.client.id);
      if (want && allowed && !entry.loop) {
        entry.loop = new ChangesLoop(
          entry.client,
          { ...settings, timeoutMs: this.#o.timeoutMs, prefix: this.#o.prefix },
          this.#o.clock,
          (reports) => this.#pushed(entry, reports),
        );
        entry.loop.start();
        this.#liveLoops++;
      } else if (!want || !allowed) {
        stopping.push(this.#stopLoop(entry));
      }
    }
    return Promise.all(stopping).then(() => undefined);
  }

  /** Stops an agent's long-poll loop, if it runs; resolves once it has stopped. */
  #stopLoop(entry: AgentEntry): Promise<void> {
    const loop = entry.loop;
    if (!loop) return Promise.resolve();
    entry.loop = null;
    this.#liveLoops--;
    return loop.stop();
  }

  #pushed(entry: AgentEntry, reports: readonly TaskStatusReport[]): void {
    keepRaced(entry, reports); // pushed again by #startSettled, once the start has returned
    this.#emitActivity(entry.client.id, reports);
  }

  #startSettled(entry: AgentEntry, ids: readonly string[]): void {
    const again = takeRaced(entry, ids);
    // After the engine has taken the start's answer (it does so right after the call resolves).
    if (again.length > 0) setImmediate(() => this.#emitActivity(entry.client.id, again));
  }

  #emitActivity(agentId: string, reports: readonly TaskStatusReport[]): void {
    for (const listener of [...this.#activity]) this.#safely(() => listener(agentId, reports));
  }

  /** Runs a listener; one that throws must not starve the others (nor kill a long-poll). */
  #safely(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#o.logger.error({ error }, 'an HTTP broker listener threw');
    }
  }

  #answered(entry: AgentEntry, bootId: string): void {
    const { info, recovered, restartedFrom } = entry.state.answered(bootId, this.#o.clock.now());
    if (restartedFrom !== null) {
      this.#o.logger.warn(
        { agentId: entry.client.id, bootId, previousBootId: restartedFrom },
        'agent restarted (new boot id)',
      );
    }
    if (info) this.#emitInfo(info);
    // Back after failing: check it is the agent we think (and learn its boot id first hand).
    if (recovered) void this.#health(entry);
  }

  #failed(entry: AgentEntry, error: CocoError): void {
    const info = entry.state.failed(error.toInfo());
    if (info) this.#emitInfo(info);
  }

  #emitInfo(info: AgentInfo): void {
    for (const listener of [...this.#info]) this.#safely(() => listener(info));
  }
}

/**
 * A health check refused because this node was saturated is tried again after 5–10 s (and
 * then only when no call waits for a slot): long enough for the start-up stream of a large
 * fleet to pass, soon enough that a misconfigured agent (another id at its URL) is reported
 * within a minute of the node catching up.
 */
const HEALTH_RETRY_MS = 10_000;

/** Descriptors left for the rest of the node (store files, WAL, the API's sockets, logs). */
const FD_MARGIN = 100;

/** The soft limit of open files (`ulimit -n`), read on Linux; null elsewhere or if unlimited. */
function openFilesLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Builds an {@link HttpBroker}; throws `INVALID_OPTIONS` naming each bad option. */
export function httpAgents(options: HttpBrokerOptions): HttpBroker {
  return new HttpBroker(options);
}
