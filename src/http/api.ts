/**
 * The engine's HTTP API (fastify): submit, list, inspect and cancel commands, read jobs with
 * their step trees and progress, follow a job live (server-sent events), list agents. Bodies and
 * query strings are validated with zod (contracts in `contracts.ts`); errors carry the engine's
 * stable codes.
 *
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { z } from 'zod';
import { CocoError, ErrorCode, ValidationError, toErrorInfo } from '../core/errors.js';
import { toIssues } from '../core/params.js';
import type { CommandType } from '../core/command-type.js';
import type { Engine } from '../engine/engine.js';
import type { JobMonitor } from '../jobs/monitor.js';
import type { JobTree } from '../jobs/view.js';
import { runRetention } from '../jobs/retention.js';
import { commandListQuery, idParam, jobListQuery, pruneBody, submitBody } from './contracts.js';
import { dashboardRoutes } from './dashboard-route.js';

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
  /** When set, every call but `GET /v1/health` needs `Authorization: Bearer <token>`. */
  readonly token?: string | undefined;
  readonly version?: string;
}

const STATUS_OF: Record<string, number> = {
  [ErrorCode.ParametersInvalid]: 400,
  [ErrorCode.InvalidDefinition]: 400,
  // Well-formed and of a known type, but the type cannot be a root.
  [ErrorCode.CommandTypeNotSubmittable]: 422,
  [ErrorCode.CommandNotFound]: 404,
  [ErrorCode.CommandState]: 409,
  [ErrorCode.EngineStopped]: 503,
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  UNAUTHORIZED: 401,
};

function fail(reply: FastifyReply, error: unknown): FastifyReply {
  const info = toErrorInfo(error, ErrorCode.Internal);
  const status = STATUS_OF[info.code] ?? (error instanceof CocoError ? 500 : 500);
  return reply.code(status).send({ error: info });
}

function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success)
    throw new ValidationError(
      `invalid ${what}`,
      toIssues(result.error.issues),
      ErrorCode.BadRequest,
    );
  return result.data;
}

function tokenMatches(expected: string, header: string | undefined): boolean {
  const given = header?.startsWith('Bearer ') ? header.slice(7) : '';
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * How often a followed job (server-sent events) is re-read from the job tables, besides the
 * local monitor's events: the job may be run by another node of a shared store. Once a second
 * is what a person watching a progress bar notices, and one cheap read per watcher.
 */
const JOB_REFRESH_MS = 1_000;

/**
 * For how long after its root command was created a job that does not exist yet is waited for: the
 * job row is written by the monitor of the node running the command just after the command's
 * first commit — milliseconds on a quiet node, a few batches on a busy one. Past this, the
 * answer is `NOT_FOUND`.
 */
const JOB_APPEAR_MS = 5_000;
/**
 * How often a job that does not exist yet is looked for, within {@link JOB_APPEAR_MS}: a job
 * usually appears within a batch or two (milliseconds), so a short step answers soon after, and
 * one keyed read per step costs nothing.
 */
const JOB_APPEAR_POLL_MS = 50;

/** Builds the API server (not listening yet). */
export function createApi(options: ApiOptions): FastifyInstance {
  const { token } = options;
  const engineOption = options.engine;
  const engine: () => Engine =
    typeof engineOption === 'function' ? engineOption : () => engineOption;
  const monitorOption = options.monitor ?? null;
  const monitor: () => JobMonitor | null =
    typeof monitorOption === 'function' ? monitorOption : () => monitorOption;
  const types = new Map(options.commands.map((t) => [t.name, t]));

  /**
   * The job's tree; for a root command whose job is not written yet (just submitted, maybe on
   * another node), waits for it until JOB_APPEAR_MS after the command was created. Null if
   * there is no such job.
   */
  const jobTree = async (m: JobMonitor, id: number): Promise<JobTree | null> => {
    const tree = await m.getTree(id);
    if (tree) return tree;
    const root = await engine().get(id);
    if (!root || root.parentId !== null) return null;
    // Counted from the command's creation: an old root without a job will not get one now.
    for (const until = root.createdAt + JOB_APPEAR_MS; Date.now() < until;) {
      await new Promise((r) => setTimeout(r, JOB_APPEAR_POLL_MS));
      const later = await m.getTree(id);
      if (later) return later;
    }
    return null;
  };
  const app = Fastify({ logger: false, bodyLimit: 4 * 1024 * 1024 });

  app.addHook('onRequest', async (request, reply) => {
    if (!token || request.url === '/v1/health' || request.routeOptions.config?.public) return;
    if (!tokenMatches(token, request.headers.authorization)) {
      request.log.warn(
        { url: request.url, ip: request.ip },
        'API call refused: bad or missing token',
      );
      return reply.code(401).send({
        error: {
          code: ErrorCode.Unauthorized,
          message: 'a valid "Authorization: Bearer <token>" header is required',
        },
      });
    }
  });
  app.setErrorHandler((error, _request, reply) => {
    const e = error as { statusCode?: number; message?: string };
    if (e.statusCode && e.statusCode < 500) {
      return reply
        .code(e.statusCode)
        .send({ error: { code: ErrorCode.BadRequest, message: e.message ?? 'bad request' } });
    }
    return fail(reply, error);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      error: { code: ErrorCode.NotFound, message: `no route ${request.method} ${request.url}` },
    }),
  );

  dashboardRoutes(app);

  // Liveness: the process answers. `ok` says whether its engine runs: a halted engine (its lease
  // lost) is never reported ok, and answers 503 so that probes see it.
  app.get('/v1/health', async (_request, reply) => {
    const e = engine();
    const ok = e.state === 'running';
    return reply.code(ok ? 200 : 503).send({
      ok,
      state: e.state,
      ...(e.haltError ? { haltedBy: e.haltError } : {}),
      rejoining: options.rejoining?.() ?? false,
      nodeId: e.nodeId,
      storeId: e.storeId,
      version: options.version ?? '0',
      commandTypes: [...types.keys()].sort(),
      ...e.stats(),
    });
  });

  // Readiness: whether this node takes work now, and why not.
  app.get('/v1/ready', async (_request, reply) => {
    const e = engine();
    const rejoining = options.rejoining?.() ?? false;
    const reason =
      e.state !== 'running'
        ? `the engine is ${e.state}${e.haltError ? ` (${e.haltError.code}: ${e.haltError.message})` : ''}`
        : rejoining
          ? 'the node is rejoining its cluster after losing its lease'
          : null;
    return reply
      .code(reason === null ? 200 : 503)
      .send({ ready: reason === null, nodeId: e.nodeId, ...(reason ? { reason } : {}) });
  });

  app.post('/v1/commands', async (request, reply) => {
    try {
      const body = parse(submitBody, request.body, 'submit request');
      const type = types.get(body.type);
      if (!type) {
        const renamed = options.commands.find((t) => t.aliases.includes(body.type));
        throw new CocoError(
          ErrorCode.InvalidDefinition,
          renamed
            ? `command type "${body.type}" was renamed "${renamed.name}"; submit that`
            : `unknown command type "${body.type}"; known: ${[...types.keys()].sort().join(', ')}`,
        );
      }
      const { id } = await engine().submit(
        type,
        body.params,
        body.idempotencyKey === undefined ? {} : { idempotencyKey: body.idempotencyKey },
      );
      return await reply.code(201).send({ id });
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.get('/v1/commands', async (request, reply) => {
    try {
      const q = parse(commandListQuery, request.query, 'query');
      // The page: the commands, the matching rows that could not be read (each naming the row
      // and why), and the next page's beforeId.
      return await engine().list({
        ...(q.status ? { status: q.status } : {}),
        ...(q.type ? { type: q.type } : {}),
        ...(q.rootsOnly ? { rootsOnly: true } : {}),
        ...(q.beforeId ? { beforeId: q.beforeId } : {}),
        limit: q.limit,
      });
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.get('/v1/commands/:id', async (request, reply) => {
    try {
      const { id } = parse(idParam, request.params, 'command id');
      const details = await engine().inspect(id);
      if (!details) throw new CocoError(ErrorCode.CommandNotFound, `command ${id} does not exist`);
      return details;
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.post('/v1/commands/:id/cancel', async (request, reply) => {
    try {
      const { id } = parse(idParam, request.params, 'command id');
      await engine().cancel(id);
      return await reply.code(202).send({ id, cancelRequested: true });
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.get('/v1/jobs', async (request, reply) => {
    try {
      const m = monitor();
      if (!m) throw new CocoError(ErrorCode.NotFound, 'this node keeps no job view (jobs: false)');
      const q = parse(jobListQuery, request.query, 'query');
      return {
        jobs: await m.listJobs({
          ...(q.status ? { status: q.status } : {}),
          ...(q.type ? { type: q.type } : {}),
          ...(q.beforeId ? { beforeId: q.beforeId } : {}),
          limit: q.limit,
        }),
      };
    } catch (error) {
      return fail(reply, error);
    }
  });

  app.get('/v1/jobs/:id', async (request, reply) => {
    try {
      const m = monitor();
      if (!m) throw new CocoError(ErrorCode.NotFound, 'this node keeps no job view (jobs: false)');
      const { id } = parse(idParam, request.params, 'job id');
      const tree = await jobTree(m, id);
      if (!tree) throw new CocoError(ErrorCode.NotFound, `job ${id} does not exist`);
      return tree;
    } catch (error) {
      return fail(reply, error);
    }
  });

  // Server-sent events: the job's tree now, then again after each change, until it ends.
  app.get('/v1/jobs/:id/events', async (request, reply) => {
    const m = monitor();
    if (!m)
      return fail(
        reply,
        new CocoError(ErrorCode.NotFound, 'this node keeps no job view (jobs: false)'),
      );
    let id: number;
    try {
      id = parse(idParam, request.params, 'job id').id;
    } catch (error) {
      return fail(reply, error);
    }
    const first = await jobTree(m, id);
    if (!first) return fail(reply, new CocoError(ErrorCode.NotFound, `job ${id} does not exist`));
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    let sending = false;
    let again = false;
    let closed = false;
    let last = '';
    const offs: (() => void)[] = [];
    const close = (): void => {
      if (closed) return;
      closed = true;
      for (const off of offs) off();
      res.end();
    };
    const send = async (): Promise<void> => {
      if (sending) {
        again = true;
        return;
      }
      sending = true;
      do {
        again = false;
        const tree = await m.getTree(id);
        if (closed || !tree) break;
        const data = JSON.stringify(tree);
        if (data !== last) res.write(`event: job\ndata: ${data}\n\n`);
        last = data;
        if (tree.job.endedAt !== null) {
          close();
          break;
        }
      } while (again);
      sending = false;
    };
    offs.push(m.on('job', (job) => job.id === id && void send()));
    offs.push(m.on('step', (step) => step.jobId === id && void send()));
    // On a shared store another node may run the job: its changes reach the job tables but not
    // this node's monitor events, so the tree is also re-read every JOB_REFRESH_MS.
    const refresh = setInterval(() => void send(), JOB_REFRESH_MS);
    offs.push(() => clearInterval(refresh));
    request.raw.on('close', close);
    await send();
    return reply;
  });

  app.get('/v1/agents', async () => ({ agents: await engine().agents() }));

  // role: admin
  // Retention (jobs/retention.ts): deletes the trees that ended at least `olderThanMs` ago, with
  // their jobs, in bounded batches through this node's engine, for at most the prune's default
  // budget (engine/retention.ts); `more: true` asks for another call. `dryRun` only counts.
  app.post('/v1/admin/prune', async (request, reply) => {
    try {
      const body = parse(pruneBody, request.body, 'prune request');
      const e = engine();
      const r = await runRetention(
        {
          prune: (req, onBatch) => e.prune(req, onBatch),
          get: (id) => e.get(id),
          jobs: monitor()?.jobStore ?? null,
        },
        { olderThanMs: body.olderThanMs, dryRun: body.dryRun },
      );
      const { trees, commands, tasks, undo, jobs, more } = r;
      return { trees, commands, tasks, undo, jobs, more };
    } catch (error) {
      return fail(reply, error);
    }
  });

  return app;
}
