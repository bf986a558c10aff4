/**
 * A coco node: the composition root of `coco serve` and `coco demo`. It wires the store (from its
 * URL), the agent broker (HTTP agents from the configuration), the engine, the job monitor and the
 * HTTP API, starts them in order and stops them in reverse.
 *
 * @module
 */
import { hostname } from 'node:os';
import { pino } from 'pino';
import type { AgentBroker } from '../brokers/port.js';
import { httpAgents } from '../brokers/http/broker.js';
import type { CommandType, Logger } from '../core/command-type.js';
import { createEngine, type Engine, type StartReport } from '../engine/engine.js';
import { createApi } from '../http/api.js';
import { createJobMonitor, type JobMonitor } from '../jobs/monitor.js';
import { loadCommandModules } from '../config/commands.js';
import type { CocoConfig } from '../config/config.js';
import { jobStoreFromUrl, storeFromUrl } from '../config/store-url.js';
import type { FastifyInstance } from 'fastify';

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
}

/** A running node. */
export interface CocoNode {
  readonly engine: Engine;
  readonly monitor: JobMonitor | null;
  readonly api: FastifyInstance;
  /** Where the API listens, when it does. */
  readonly url: string | null;
  readonly commands: readonly CommandType[];
  readonly startReport: StartReport;
  close(): Promise<void>;
}

/** A pino logger writing JSON lines to stderr, at `COCO_LOG_LEVEL` (default `info`). */
export function defaultLogger(level = process.env.COCO_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination(2));
}

/** Starts a node from a configuration. */
export async function startNode(options: NodeOptions): Promise<CocoNode> {
  const { config } = options;
  const logger = options.logger ?? defaultLogger();
  const nodeId = config.nodeId ?? `${hostname()}-${process.pid}`;
  const commands = [...(options.commands ?? []), ...(await loadCommandModules(config.commands))];
  const store = storeFromUrl(config.store);
  const broker = options.broker ?? httpAgents({ agents: config.agents, caller: nodeId, logger });
  const engine = createEngine({
    store,
    agents: broker,
    commands,
    nodeId,
    logger,
    tuning: config.tuning ?? {},
  });
  const monitor = config.jobs
    ? createJobMonitor({
        engine,
        store: jobStoreFromUrl(config.store),
        logger,
      })
    : null;
  const startReport = await engine.start();
  try {
    await monitor?.start();
  } catch (error) {
    await engine.stop();
    throw error;
  }
  const api = createApi({
    engine,
    monitor,
    commands,
    token: config.api.token,
    ...(options.version ? { version: options.version } : {}),
  });
  let url: string | null = null;
  if (options.listen ?? true) {
    try {
      await api.listen({ host: config.api.host, port: config.api.port });
      const address = api.server.address();
      const port = typeof address === 'object' && address ? address.port : config.api.port;
      url = `http://${config.api.host.includes(':') ? `[${config.api.host}]` : config.api.host}:${port}`;
    } catch (error) {
      await monitor?.stop();
      await engine.stop();
      throw error;
    }
  }
  let closed = false;
  return {
    engine,
    monitor,
    api,
    url,
    commands,
    startReport,
    async close() {
      if (closed) return;
      closed = true;
      await api.close();
      await monitor?.stop();
      await engine.stop();
      await broker.close?.();
    },
  };
}
