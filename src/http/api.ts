/**
 * The engine's HTTP API (fastify): submit, list, inspect and cancel commands, read jobs with
 * their step trees and progress, follow jobs live (server-sent events), list agents, retention.
 * Every route declares the role it needs (auth.ts: tokens, deny by default, same-origin JSON for
 * state changes); its contracts (contracts.ts, zod) validate the input and generate the OpenAPI
 * document at `/openapi.json`. Errors carry the engine's stable codes.
 *
 * @module
 */
import rateLimit from '@fastify/rate-limit';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type preHandlerAsyncHookHandler,
} from 'fastify';
import { ErrorCode } from '../core/errors.js';
import type { CommandType } from '../core/command-type.js';
import type { Engine } from '../engine/engine.js';
import type { JobMonitor } from '../jobs/monitor.js';
import { metricsRoute } from './metrics-route.js';
import type { NodeMetrics } from '../observability/metrics.js';
import { guard, TokenTable, type ApiToken } from './auth.js';
import { commandRoutes } from './command-routes.js';
import type { AdmissionLimits } from '../engine/admission.js';
import type { ApiContext } from './context.js';
import {
  commandDetail,
  commandSummary,
  errorInfo,
  jobRecord,
  jobTree,
  unreadableRow,
} from './contracts.js';
import { dashboardRoutes } from './dashboard-route.js';
import { DetailCache } from './detail-cache.js';
import { jobRoutes } from './job-routes.js';
import { nodeRoutes } from './node-routes.js';
import { typeRoutes } from './type-routes.js';
import { openApiDocument } from './openapi.js';
import { Routes, fail } from './routes.js';
import { Streams } from './sse.js';
import { z } from 'zod';

/** The OpenAPI document, as this API describes its own answer. */
const openApiSchema = z
  .object({ openapi: z.string(), info: z.unknown(), paths: z.unknown() })
  .loose();

/** Options of {@link createApi}. */
export interface ApiOptions {
  /**
   * The engine, or a function giving the node's current one (a node that lost its lease rejoins
   * with a fresh engine: see server/rejoin.ts).
   */
  readonly engine: Engine | (() => Engine);
  /** The job monitor (or a function giving the current one), if the node keeps the job view. */
  readonly monitor?: JobMonitor | null | (() => JobMonitor | null);
  /** Whether the node is between generations (rejoining after a lost lease): not ready. */
  readonly rejoining?: () => boolean;
  /** The command types the engine runs (submit looks types up here by name). */
  readonly commands: readonly CommandType[];
  /**
   * The tokens accepted (each with its role). Every route but the public ones (liveness,
   * readiness, the dashboard's static files) needs one: with none given, only those answer.
   */
  readonly tokens: readonly ApiToken[];
  /** Host names accepted in the `Host` header besides IP literals and localhost. */
  readonly allowedHosts?: readonly string[];
  readonly version?: string;
  /**
   * The node's pino logger: the access log (info), refusals (warn), failures (error). Without
   * one the API logs nothing.
   */
  readonly logger?: FastifyBaseLogger;
  /**
   * Replaces the admission limits (`POST /v1/admin/limits`); the node's keeps them for later
   * generations too. @default the current engine's `setLimits`
   */
  readonly setLimits?: (limits: AdmissionLimits) => void;
  /** The node's metrics, served at `GET /metrics` (role viewer); none without. */
  readonly metrics?: NodeMetrics | null;
  /**
   * Ended commands whose rendered detail is kept for the next read (http/detail-cache.ts); 0
   * keeps none. @default 10,000
   */
  readonly detailCacheEntries?: number;
  /**
   * Trust a reverse proxy's `X-Forwarded-*` headers (`true`, or its addresses / CIDR ranges):
   * the protocol, host and caller address then come from them. @default false
   */
  readonly trustProxy?: boolean | readonly string[];
  /**
   * At most `max` calls per `windowMs` from each token (by its name); past it a call is answered
   * 429 `RATE_LIMITED` with `Retry-After`. Public routes are not counted. @default none
   */
  readonly rateLimit?: RateLimit;
}

/** The API server, with what a node needs to shut it down. */
export interface Api {
  readonly app: FastifyInstance;
  /** The open event streams (closed on `app.close()`). */
  readonly streams: Streams;
  /** The routes with their contracts (the OpenAPI document's source). */
  readonly routes: Routes;
  /** Every route fastify registered (by any plugin, HEAD aside), with its declared role. */
  readonly served: readonly ServedRoute[];
  /**
   * Accepts these tokens from the next call on, and no others (a reload: a token rotated or
   * revoked), and ends the open event streams of tokens no longer accepted; returns how many.
   */
  readonly setTokens: (tokens: readonly ApiToken[]) => number;
  /**
   * Replaces the rate limit per token (a reload), or turns it off (null): from the next call,
   * each token's count starting from an empty window.
   */
  readonly setRateLimit: (limit: RateLimit | null) => void;
}

/** A route as fastify registered it. */
export interface ServedRoute {
  readonly method: string;
  readonly url: string;
  readonly role: string | null;
}

/** Largest request body: a submit's parameters are small; 4 MiB leaves room and bounds memory. */
const BODY_LIMIT = 4 * 1024 * 1024;

/** A rate limit per token: at most `max` calls in each window of `windowMs`. */
export interface RateLimit {
  readonly max: number;
  readonly windowMs: number;
}

/**
 * Counts each token's calls (after the access hook: the caller is known) and refuses those past
 * `max` in a window with 429 and `Retry-After` (@fastify/rate-limit, its memory store: per node,
 * as the tokens are). Calls without a caller — public routes, which orchestrators' probes use —
 * are not counted. Its hook is added at the root, before any route, so that every route has it;
 * limiters exist once the plugin has loaded (the server's `ready`). Returns the function that
 * replaces the limit (a reload; null: off): each replacement counts from an empty window.
 */
function limitRate(
  app: FastifyInstance,
  initial: RateLimit | null,
  metrics: NodeMetrics | null | undefined,
): (limit: RateLimit | null) => void {
  let limiter: preHandlerAsyncHookHandler | null = null;
  let loaded = false;
  let wanted = initial;
  const counts = { refused: 0 };
  let followed = false;
  const make = (limit: RateLimit | null): void => {
    if (limit !== null && !followed) {
      // Registered once a limit is first in force: a node without one shows no such series.
      metrics?.followRateLimit(counts);
      followed = true;
    }
    limiter =
      limit === null
        ? null
        : app.rateLimit({
            max: limit.max,
            timeWindow: limit.windowMs,
            keyGenerator: (request) => `token:${request.caller?.name ?? ''}`,
            onExceeded: () => void counts.refused++,
            errorResponseBuilder: (request, context) => ({
              statusCode: 429,
              message:
                `too many calls from token "${request.caller?.name ?? ''}": at most ${context.max} per ` +
                `${limit.windowMs / 1000} s (api.rateLimit); try again in ${Math.ceil(context.ttl / 1000)} s`,
            }),
          });
  };
  void app.register(rateLimit, { global: false });
  void app.after(() => {
    loaded = true;
    make(wanted);
  });
  app.addHook('preHandler', async function (request, reply) {
    if (limiter === null || request.caller === null) return;
    if (request.routeOptions.config.role === 'public') return;
    await limiter.call(this, request, reply);
  });
  return (limit) => {
    wanted = limit;
    if (loaded) make(limit);
  };
}

/** Builds the API server (not listening yet). */
export function createApi(options: ApiOptions): FastifyInstance {
  return buildApi(options).app;
}

/** Builds the API server and its stream registry (not listening yet). */
export function buildApi(options: ApiOptions): Api {
  const engineOption = options.engine;
  const engine: () => Engine =
    typeof engineOption === 'function' ? engineOption : () => engineOption;
  const monitorOption = options.monitor ?? null;
  const monitor: () => JobMonitor | null =
    typeof monitorOption === 'function' ? monitorOption : () => monitorOption;
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    bodyLimit: BODY_LIMIT,
    // The access log is written once per call, on response (below), with the caller's name.
    logController: new LogController({ disableRequestLogging: true }),
    ...(options.trustProxy === undefined
      ? {}
      : {
          trustProxy:
            typeof options.trustProxy === 'boolean' ? options.trustProxy : [...options.trustProxy],
        }),
  });
  const served: ServedRoute[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods)
      if (method !== 'HEAD')
        served.push({ method, url: route.url, role: route.config?.role ?? null });
  });
  const tokens = new TokenTable(options.tokens);
  guard(app, { tokens, allowedHosts: options.allowedHosts ?? [] });
  const setRateLimit = limitRate(app, options.rateLimit ?? null, options.metrics);
  app.addHook('onResponse', async (request, reply) => {
    // Refusals were logged at warn by the guard; event streams are logged when they end.
    request.log.info(
      {
        method: request.method,
        url: request.url.split('?')[0],
        route: request.routeOptions.url ?? null,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        ip: request.ip,
        caller: request.caller?.name ?? null,
      },
      'API call',
    );
  });
  if (options.metrics) void app.register(metricsRoute, { metrics: options.metrics });
  app.setErrorHandler((error, _request, reply) => {
    const e = error as { statusCode?: number; message?: string };
    if (e.statusCode === 413)
      return reply.code(413).send({
        error: {
          code: ErrorCode.PayloadTooLarge,
          message: `the request body is over ${BODY_LIMIT} bytes`,
        },
      });
    if (e.statusCode === 429)
      return reply.code(429).send({
        error: { code: ErrorCode.RateLimited, message: e.message ?? 'too many calls' },
      });
    if (e.statusCode === 415)
      return reply.code(415).send({
        error: { code: ErrorCode.UnsupportedMediaType, message: e.message ?? 'unsupported type' },
      });
    if (e.statusCode && e.statusCode < 500) {
      return reply
        .code(e.statusCode)
        .send({ error: { code: ErrorCode.BadRequest, message: e.message ?? 'bad request' } });
    }
    return fail(reply, error);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      error: {
        code: ErrorCode.NotFound,
        message: `no route ${request.method} ${request.url.split('?')[0]}`,
      },
    }),
  );

  const streams = new Streams({
    onDropped: (unsentBytes) =>
      app.log.warn(
        { unsentBytes },
        'dropped an event stream whose client does not read (it may reconnect and read again)',
      ),
  });
  options.metrics?.followStreams(streams);
  // Shutdown: open event streams would hold the server open; each ends now, and its client
  // reconnects to another node (or this one once it is back).
  app.addHook('preClose', (done) => {
    const n = streams.closeAll();
    if (n > 0) app.log.info({ streams: n }, 'closed the open event streams for shutdown');
    done();
  });
  const ctx: ApiContext = {
    routes: new Routes(app),
    engine,
    monitor,
    rejoining: options.rejoining ?? (() => false),
    commands: options.commands,
    types: new Map(options.commands.map((t) => [t.name, t])),
    streams,
    version: options.version ?? '0',
    setLimits: options.setLimits ?? ((limits) => engine().setLimits(limits)),
    details: new DetailCache(options.detailCacheEntries),
  };
  nodeRoutes(ctx);
  commandRoutes(ctx);
  jobRoutes(ctx);
  typeRoutes(ctx);
  dashboardRoutes(app);

  let document: unknown = null;
  ctx.routes.add(
    {
      method: 'GET',
      url: '/openapi.json',
      role: 'public',
      tag: 'node',
      summary: 'This document: the API in OpenAPI 3.1',
      description:
        "Public: it describes the routes and their roles, none of the node's data (the same text as the published docs/API.md).",
      ok: { status: 200, schema: openApiSchema },
    },
    () =>
      (document ??= openApiDocument(
        ctx.routes.specs,
        {
          CommandSummary: commandSummary,
          CommandDetail: commandDetail,
          UnreadableRow: unreadableRow,
          JobRecord: jobRecord,
          JobTree: jobTree,
          ErrorInfo: errorInfo,
        },
        ctx.version,
      )),
  );
  const setTokens = (next: readonly ApiToken[]): number => {
    tokens.replace(next);
    return streams.closeRevoked((authorization) => tokens.find(authorization) === null);
  };
  return { app, streams, routes: ctx.routes, served, setTokens, setRateLimit };
}
