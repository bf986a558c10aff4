/**
 * A coco node: the composition root of `coco serve` and `coco demo`. It wires the store (from its
 * URL), the agent broker (HTTP agents from the configuration), the engine, the job monitor and the
 * HTTP API, starts them in order and stops them in reverse.
 *
 * On a shared store, a node whose lease was lost (its engine halted) rejoins as a fresh node — a
 * new generation of store, broker, engine and monitor under a new node id — or exits for its
 * supervisor (`onLeaseLost`, see rejoin.ts); the API follows the current generation.
 *
 * @module
 */
import { hostname } from 'node:os';
import { pino } from 'pino';
import type { AgentBroker } from '../brokers/port.js';
import {
  httpAgents,
  type AgentsChange,
  type HttpAgentConfig,
  type HttpBroker,
} from '../brokers/http/broker.js';
import type { CommandType, Logger } from '../core/command-type.js';
import { createEngine, type Engine, type StartReport } from '../engine/engine.js';
import type { AdmissionLimits } from '../engine/admission.js';
import { buildApi } from '../http/api.js';
import { createJobMonitor, type JobMonitor } from '../jobs/monitor.js';
import { loadCommandModules } from '../config/commands.js';
import { limitsOf, type AgentConfig, type CocoConfig, type TokenConfig } from '../config/config.js';
import {
  LOCAL_TOKEN_NAME,
  ensureLocalToken,
  isLoopback,
  tokenFilePath,
} from '../config/api-tokens.js';
import { CocoError, ErrorCode } from '../core/errors.js';
import { jobStoreFromUrl, redact, storeFromUrl } from '../config/store-url.js';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { Rejoiner, type Generation, type OnLeaseLost } from './rejoin.js';
import { checkPortFree } from './port-check.js';
import { RetentionSchedule, type RetentionSettings } from './retention.js';
import {
  createNodeMetrics,
  hasCallSlots,
  hasPool,
  type NodeMetrics,
} from '../observability/metrics.js';

/**
 * How long a start may wait on its store before the node says so. A store that answers opens in
 * well under a second (its migrations already applied); a PostgreSQL server that does not answer
 * is tried for 30 s before the start fails, which without a word looks like a hung node.
 */
export const SLOW_OPEN_MS = 3_000;

/** What a slow store open says after {@link SLOW_OPEN_MS} (`coco serve`'s log, `coco migrate`). */
export const SLOW_OPEN_TEXT = `opening the store has taken ${SLOW_OPEN_MS / 1000} s so far; still trying (a PostgreSQL server that does not answer is tried for 30 s)`;

/**
 * Waits for `work`; should it take longer than `afterMs`, calls `say` once meanwhile (a start or a
 * migration that waits on a store that does not answer says so instead of looking hung).
 */
export async function sayIfSlow<T>(work: Promise<T>, afterMs: number, say: () => void): Promise<T> {
  const slow = setTimeout(say, afterMs);
  slow.unref();
  try {
    return await work;
  } finally {
    clearTimeout(slow);
  }
}

/** Options of {@link startNode}. */
export interface NodeOptions {
  readonly config: CocoConfig;
  /** Command types given directly (besides the configuration's modules). */
  readonly commands?: readonly CommandType[];
  /** Use this broker instead of HTTP agents from the configuration. */
  readonly broker?: AgentBroker;
  readonly logger?: Logger;
  /** Serve the HTTP API. @default true */
  readonly listen?: boolean;
  readonly version?: string;
  /** What to do when a shared store's lease is lost. @default the configuration's, else 'rejoin' */
  readonly onLeaseLost?: OnLeaseLost;
  /** Ends the process when `onLeaseLost` is 'exit'. @default process.exit */
  readonly exit?: (code: number) => void;
}

/** A running node. */
export interface CocoNode {
  /** The current generation's engine (a new one after a rejoin). */
  readonly engine: Engine;
  readonly monitor: JobMonitor | null;
  /** Resolves once no rejoin is in progress. */
  rejoined(): Promise<void>;
  readonly api: FastifyInstance;
  /** Where the API listens, when it does. */
  readonly url: string | null;
  readonly commands: readonly CommandType[];
  readonly startReport: StartReport;
  /**
   * The scheduled retention (`retention` in the configuration), or null when it was never on
   * (its `settings` are null when a reload turned it off).
   */
  readonly retention: RetentionSchedule | null;
  /**
   * Replaces the API's rate limit per token with a configuration's `api.rateLimit` (a reload),
   * or turns it off (`undefined`): from the next call, each token counted from an empty window.
   */
  setRateLimit(next: CocoConfig['api']['rateLimit']): void;
  /**
   * Replaces retention's settings with a configuration's (a reload: `coco serve` on SIGHUP), or
   * turns it off (`undefined`) or on; a pass under way ends with the settings it began with.
   */
  setRetention(next: CocoConfig['retention']): void;
  /**
   * Replaces the admission limits of the running engine and of later generations (a
   * configuration reload: `coco serve` on SIGHUP; the admin API). Throws `INVALID_OPTIONS`.
   */
  setLimits(limits: AdmissionLimits): void;
  /**
   * Replaces the API's tokens with a configuration's `api.tokens` (a reload: `coco serve` on
   * SIGHUP), from the next call on; none configured falls back to the node's own admin token, as
   * at start (and is refused on a non-loopback address: `INVALID_OPTIONS`, the tokens in force
   * kept). Open event streams of a token no longer accepted end. Returns the token names now
   * accepted and how many streams ended.
   */
  setTokens(tokens: readonly TokenConfig[]): {
    readonly names: readonly string[];
    readonly streamsEnded: number;
  };
  /**
   * Replaces the configured agents (a reload: `coco serve` on SIGHUP), in this generation and
   * the next, as `HttpBroker.setAgents` does: agents added take tasks at once; agents removed
   * are retired (still reached until the work in flight there ends, shown as not configured:
   * restart without them once `GET /v1/agents` shows none in flight); an agent's new URL or
   * secret is used from its next request. Throws `INVALID_OPTIONS` naming the bad field (nothing
   * changed), and when the node was given its broker.
   */
  setAgents(next: readonly AgentConfig[]): AgentsChange;
  /** The node's metrics (served at `GET /metrics`), following each generation's engine. */
  readonly metrics: NodeMetrics;
  /**
   * The longest {@link close} takes when its store does not answer: the job monitor's stop bound
   * and then the engine's (`stopGraceMs` + `stopTimeoutMs`), which the configuration may raise.
   * A retention pass under way ends after its current batch (one transaction).
   */
  readonly stopBoundMs: number;
  close(): Promise<void>;
}

/** A pino logger writing JSON lines to stderr, at `COCO_LOG_LEVEL` (default `info`). */
export function defaultLogger(level = process.env.COCO_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination(2));
}

/** Whether a logger is a pino logger (fastify logs through it then; any other, it stays silent). */
function isPino(logger: Logger): logger is Logger & FastifyBaseLogger {
  const l = logger as Partial<FastifyBaseLogger>;
  return (
    typeof l.child === 'function' &&
    typeof l.fatal === 'function' &&
    typeof l.trace === 'function' &&
    typeof l.level === 'string'
  );
}

/**
 * The API's tokens: the configured ones, else the node's own admin token (created beside the
 * store at first start; the log says where, never what). A node without configured tokens
 * binds loopback addresses only: its token protects calls from this machine, and the file
 * that holds it is readable only here.
 */
function apiTokens(config: CocoConfig, listen: boolean, logger: Logger): readonly TokenConfig[] {
  if (config.api.tokens.length > 0) return config.api.tokens;
  // Not served: only in-process calls (`api.inject`), to the public routes.
  if (!listen) return [];
  if (!isLoopback(config.api.host)) {
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `refusing to serve the API on ${config.api.host} without configured tokens: anyone who reaches that address could call it. ` +
        `Configure api.tokens (each { name, role, token | tokenFile }; "\${NAME}" takes a token from the environment), or bind 127.0.0.1`,
    );
  }
  const local = ensureLocalToken(tokenFilePath(config.store, config.baseDir));
  if (local.warning) logger.warn({ tokenFile: local.path }, local.warning);
  logger.info(
    { tokenFile: local.path, role: 'admin' },
    local.created
      ? 'created the API admin token (no tokens configured); the CLI on this machine finds it there'
      : 'using the API admin token of this store (no tokens configured)',
  );
  return [{ name: LOCAL_TOKEN_NAME, role: 'admin', token: local.token }];
}

/** One generation of a node: what runs under one node id. */
interface NodeGeneration extends Generation {
  readonly monitor: JobMonitor | null;
  readonly startReport: StartReport;
}

/** Starts a node from a configuration. */
export async function startNode(options: NodeOptions): Promise<CocoNode> {
  const { config } = options;
  const logger = options.logger ?? defaultLogger();
  // Before anything is created (the token file, the store's folder): a node with no agent to
  // start tasks on is a configuration not yet written, not a node.
  if (options.broker === undefined && config.agents.length === 0) {
    throw new CocoError(
      ErrorCode.InvalidOptions,
      'no agents configured: a node starts its tasks on agents, and this configuration names none. ' +
        'List them under "agents" in the configuration file (coco serve --config coco.json; each ' +
        '{ id, url, secretFile }, an agent being e.g. coco agent --id host-1 --secret-file <file>): see docs/GUIDE.md, "Configuration reference"',
    );
  }
  // First: a node that would serve its API to the network without tokens never starts.
  const listen = options.listen ?? true;
  const tokens = apiTokens(config, listen, logger);
  // Otherwise the engine would resume its work, call its agents and claim trees, only to stop
  // again when the API fails to listen.
  if (listen)
    await checkPortFree(config.api.host, config.api.port, {
      what: 'serve the API',
      who: 'another coco serve',
      change: '--port or api.port / api.host',
    });
  const commands = [...(options.commands ?? []), ...(await loadCommandModules(config.commands))];
  let limits: AdmissionLimits | null = null;
  // The agents a generation's broker is built from, configured and retired (a reload changes
  // them), and the running generation's broker when the node built it (HTTP agents).
  let agents: readonly HttpAgentConfig[] = config.agents;
  let retired: readonly HttpAgentConfig[] = [];
  let http: HttpBroker | null = null;
  const fleet = (nodeId: string): HttpBroker => {
    // A new generation follows the work on retired agents as the last one did: those the last
    // broker still holds retired (not those the engine forgot since), retired since the same time
    // (a tree submitted in between starts nothing there).
    const since = new Map<string, number>();
    for (const a of retired) {
      const at = http?.retiredAt(a.id) ?? null;
      if (at !== null) since.set(a.id, at);
    }
    retired = retired.filter((a) => since.has(a.id));
    const broker = httpAgents({ agents: [...agents, ...retired], caller: nodeId, logger });
    if (retired.length > 0) broker.setAgents(agents, since);
    return broker;
  };
  const metrics = createNodeMetrics();
  const build = async (nodeId: string): Promise<NodeGeneration> => {
    const store = storeFromUrl(config.store);
    const ownBroker = options.broker === undefined;
    const broker: AgentBroker = options.broker ?? (http = fleet(nodeId));
    const engine = createEngine({
      store,
      agents: broker,
      commands,
      nodeId,
      logger,
      tuning: config.tuning ?? {},
      // A rejoined generation takes the limits in force (a reload may have changed them).
      limits: limits ?? limitsOf(config),
    });
    const jobStore = config.jobs ? jobStoreFromUrl(config.store) : null;
    const monitorStop = typeof config.jobs === 'object' ? config.jobs.stopTimeout : undefined;
    const monitor = jobStore
      ? createJobMonitor({
          engine,
          store: jobStore,
          logger,
          ...(monitorStop === undefined ? {} : { stopTimeoutMs: monitorStop }),
        })
      : null;
    const detachMetrics = metrics.attach(engine, monitor, hasCallSlots(broker) ? broker : null, {
      engine: hasPool(store) ? store : null,
      jobs: jobStore && hasPool(jobStore) ? jobStore : null,
    });
    const closeBroker = async (): Promise<void> => {
      detachMetrics();
      if (ownBroker) await broker.close?.();
    };
    let startReport: StartReport;
    try {
      startReport = await sayIfSlow(engine.start(), SLOW_OPEN_MS, () =>
        logger.warn({ store: redact(config.store), waitedMs: SLOW_OPEN_MS }, SLOW_OPEN_TEXT),
      );
    } catch (error) {
      await store.close().catch(() => undefined);
      await closeBroker();
      throw error;
    }
    try {
      await monitor?.start();
    } catch (error) {
      await engine.stop();
      await closeBroker();
      throw error;
    }
    return {
      engine,
      monitor,
      startReport,
      async close() {
        await monitor?.stop();
        await engine.stop();
        await closeBroker();
      },
    };
  };
  const node = new Rejoiner<NodeGeneration>({
    nodeId: config.nodeId ?? `${hostname()}-${process.pid}`,
    build,
    onLeaseLost: options.onLeaseLost ?? config.onLeaseLost,
    ...(options.exit ? { exit: options.exit } : {}),
    logger,
  });
  const first = await node.start();
  // Retention works on whichever generation runs when a pass starts: the schedule outlives them.
  // Made at start when configured, else at the first reload that configures it.
  const schedule = (settings: RetentionSettings): RetentionSchedule => {
    const made = new RetentionSchedule({
      ...settings,
      logger,
      target: () => {
        if (node.rejoining) return null;
        const { engine, monitor } = node.current;
        if (engine.state !== 'running') return null;
        return {
          nodeId: engine.nodeId,
          target: {
            prune: (request, onBatch) => engine.prune(request, onBatch),
            get: (id) => engine.get(id),
            jobs: monitor?.jobStore ?? null,
          },
        };
      },
    });
    metrics.followRetention(made);
    return made;
  };
  const initial = retentionSettings(config.retention);
  let retention = initial ? schedule(initial) : null;
  const {
    app: api,
    setTokens: setApiTokens,
    setRateLimit: setApiRateLimit,
  } = buildApi({
    ...(isPino(logger) ? { logger } : {}),
    engine: () => node.current.engine,
    monitor: () => node.current.monitor,
    rejoining: () => node.rejoining,
    commands,
    tokens,
    allowedHosts: [config.api.host, hostname(), ...config.api.allowedHosts],
    setLimits: (next) => {
      node.current.engine.setLimits(next);
      limits = node.current.engine.limits;
    },
    metrics,
    ...(options.version ? { version: options.version } : {}),
    ...(config.api.detailCacheEntries === undefined
      ? {}
      : { detailCacheEntries: config.api.detailCacheEntries }),
    ...(config.api.trustProxy === undefined ? {} : { trustProxy: config.api.trustProxy }),
    ...(config.api.rateLimit === undefined
      ? {}
      : { rateLimit: { max: config.api.rateLimit.max, windowMs: config.api.rateLimit.window } }),
  });
  let url: string | null = null;
  if (listen) {
    try {
      await api.listen({ host: config.api.host, port: config.api.port });
      const address = api.server.address();
      const port = typeof address === 'object' && address ? address.port : config.api.port;
      url = `http://${config.api.host.includes(':') ? `[${config.api.host}]` : config.api.host}:${port}`;
    } catch (error) {
      await node.close();
      throw error;
    }
  }
  retention?.start();
  let closed = false;
  return {
    get engine() {
      return node.current.engine;
    },
    get monitor() {
      return node.current.monitor;
    },
    rejoined: () => node.settled(),
    api,
    url,
    commands,
    startReport: first.startReport,
    get retention() {
      return retention;
    },
    setRetention(next) {
      const settings = retentionSettings(next);
      if (retention === null) {
        if (settings === null) return;
        retention = schedule(settings);
        if (!closed) retention.start();
        return;
      }
      retention.setSettings(settings);
    },
    setLimits(next) {
      node.current.engine.setLimits(next);
      limits = node.current.engine.limits;
    },
    setAgents(next) {
      if (options.broker !== undefined || http === null)
        throw new CocoError(
          ErrorCode.InvalidOptions,
          'this node was given its agent broker: its agents are the broker’s to change',
        );
      // Validated by the broker (nothing changed when refused).
      const change = http.setAgents(next);
      const ids = new Set(next.map((a) => a.id));
      retired = [...retired, ...agents].filter((a) => !ids.has(a.id));
      agents = next;
      return change;
    },
    setRateLimit(next) {
      setApiRateLimit(next === undefined ? null : { max: next.max, windowMs: next.window });
    },
    setTokens(next) {
      const accepted = apiTokens(
        { ...config, api: { ...config.api, tokens: [...next] } },
        listen,
        logger,
      );
      return { names: accepted.map((t) => t.name), streamsEnded: setApiTokens(accepted) };
    },
    metrics,
    get stopBoundMs() {
      return (node.current.monitor?.stopBoundMs ?? 0) + node.current.engine.stopBoundMs;
    },
    async close() {
      if (closed) return;
      closed = true;
      await retention?.stop();
      await api.close();
      await node.close();
      // A broker given by the caller outlives the generations: closed with the node.
      await options.broker?.close?.();
    },
  };
}

/** A configuration's retention as a schedule's settings, or null when it is off. */
function retentionSettings(retention: CocoConfig['retention']): RetentionSettings | null {
  if (retention === undefined) return null;
  const { maxAge, interval, batch, budget } = retention;
  return { maxAgeMs: maxAge, intervalMs: interval, batch, budgetMs: budget };
}
