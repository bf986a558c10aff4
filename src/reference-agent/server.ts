/**
 * The reference agent's HTTP server: every call of the agent protocol v2
 * (src/protocol/agent-v2.ts) over fastify, on top of the persistent {@link TaskTable} and the
 * {@link ChangeFeed}.
 *
 * Every request is authenticated before its body is read: in an `onRequest` hook, from the
 * signature headers alone (they carry the body's SHA-256), and its nonce is remembered (a
 * request is used once). A refusal there answers at once and closes the connection, so an
 * unauthenticated caller cannot make the agent read, let alone buffer, a body. Only then is the
 * body read (up to {@link BODY_LIMIT_BYTES}), checked against its signed hash, parsed (JSON, then
 * the call's zod schema) and acted on. A refusal answers with the protocol's `errorResponse`
 * body: 401 `UNAUTHORIZED` (logged with the reason and the claimed caller), 400 `BAD_REQUEST`
 * (naming the offending fields), 404 `NOT_FOUND` or `PROTOCOL_VERSION` (a path of another
 * protocol version), 413 `PAYLOAD_TOO_LARGE`, 500 `INTERNAL`, 503 `BUSY`.
 *
 * @module
 */
import { resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { z } from 'zod';
import type { Logger } from '../core/command-type.js';
import { CocoError, ErrorCode } from '../core/errors.js';
import {
  PATHS,
  PROTOCOL_VERSION,
  changesRequest,
  idsRequest,
  listRequest,
  startRequest,
  statusRequest,
  type changesResponse,
  type healthResponse,
  type listResponse,
  type okResponse,
  type startResponse,
  type statusResponse,
} from '../protocol/agent-v2.js';
import type { NonceMemory } from '../protocol/replay.js';
import type { UsedIdsOptions } from '../protocol/used-ids.js';
import { HEADERS } from '../protocol/signature.js';
import {
  AgentErrorCode,
  errorBody,
  Gate,
  header,
  unknownPath,
  type Admission,
  type ErrorBody,
} from './admission.js';
import { ChangeFeed } from './changes.js';
import { TaskTable } from './task-table.js';
import { AGENT_TRACER_NAME } from './tracing.js';
import { trace, type Tracer } from '@opentelemetry/api';
import {
  builtinVerbs,
  checkVerbs,
  toAgentLogger,
  type AgentLogger,
  type VerbRegistry,
} from './verbs.js';

/**
 * Largest request body, read only once the request is authenticated (see the module doc): it
 * bounds what one signed request can make the agent buffer; 8 MiB still fits a start of
 * `MAX_BATCH` (10,000) tasks with arguments of several hundred bytes each.
 */
export const BODY_LIMIT_BYTES = 8 * 1024 * 1024;

/** Options of {@link createAgentServer} and {@link startAgent}. */
export interface AgentOptions {
  /** The agent id, as the engine knows it. */
  readonly id: string;
  /**
   * The secret shared with the engine; requests are signed with it. Several are accepted alike
   * (a rotation: the new one and the old, until every engine signs with the new).
   */
  readonly secret: string | readonly string[];
  /** Directory of the agent's task table (created if missing); one agent per directory. */
  readonly dataDir: string;
  /** Interface to listen on. @default '127.0.0.1' */
  readonly host?: string;
  /** Port to listen on; 0 picks a free one. @default 0 */
  readonly port?: number;
  /** Verbs added to (or replacing) the built-in ones, e.g. from {@link loadVerbModules}. */
  readonly verbs?: VerbRegistry;
  /**
   * The root folder of the agent's storage, given to every verb as
   * `AgentVerbContext.storageRoot` (plug-in verbs keep their files beneath it). Resolved to an
   * absolute path. @default none (`undefined` in the context)
   */
  readonly storageRoot?: string;
  /** Whether the built-in verbs are offered. @default true */
  readonly builtins?: boolean;
  /**
   * A pino logger (or coco's minimal `Logger`, see {@link toAgentLogger}); by default fastify's
   * pino logger at level `info` on stdout.
   */
  readonly logger?: Logger | AgentLogger;
  /** Software version reported by health. @default 'unknown' */
  readonly version?: string;
  /**
   * Bounds of the memory of used task ids (stopped before their start arrived, or cleared),
   * whose starts are refused. @default MAX_USED_IDS ids, for USED_ID_RETENTION_MS
   */
  readonly usedIds?: UsedIdsOptions;
  /** The memory of accepted request nonces (tests give a small one). @default one of `MAX_REMEMBERED_NONCES` */
  readonly nonces?: NonceMemory;
  /**
   * Where the spans of task runs go (tracing.ts); null: none.
   * @default `trace.getTracer('coco-agent')`: the registered provider's (a no-op without an SDK)
   */
  readonly tracer?: Tracer | null;
}

/** A created, not yet listening agent (see {@link createAgentServer}). */
export interface AgentServer {
  /** The fastify instance (`inject` works on it without listening). */
  readonly app: FastifyInstance;
  readonly agentId: string;
  /** This process's boot id. */
  readonly bootId: string;
  /** The boot id of the previous start on the same data directory, if any. */
  readonly previousBootId: string | null;
  readonly table: TaskTable;
  readonly feed: ChangeFeed;
  /**
   * Accepts requests signed with these secrets from the next request on, and no others (a
   * rotation without a restart). Throws `INVALID_OPTIONS` for an empty list or an empty secret.
   */
  readonly setSecrets: (secrets: readonly string[]) => void;
  /** Answers pending long-polls, stops the server, aborts running verbs, closes the table. */
  close(): Promise<void>;
}

/** A listening agent (see {@link startAgent}). */
export interface RunningAgent {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  readonly bootId: string;
  readonly previousBootId: string | null;
  /** Replaces the secrets accepted (see {@link AgentServer.setSecrets}). */
  readonly setSecrets: (secrets: readonly string[]) => void;
  /** Stops the agent (see {@link AgentServer.close}). */
  close(): Promise<void>;
}

type Health = z.infer<typeof healthResponse>;

const nonEmpty = (value: unknown): boolean => typeof value === 'string' && value !== '';

/** Whether `secrets` is a list of at least one non-empty secret (options, and a rotation's). */
function isSecretList(secrets: unknown): secrets is readonly string[] {
  return Array.isArray(secrets) && secrets.length > 0 && secrets.every(nonEmpty);
}

/** The agent's secrets as a list (`AgentOptions.secret` takes one or several). */
function secretList(secret: string | readonly string[]): readonly string[] {
  return typeof secret === 'string' ? [secret] : secret;
}

function checkOptions(options: AgentOptions): void {
  const problems: string[] = [];
  if (!nonEmpty(options.id)) problems.push('id must be a non-empty string');
  if (!isSecretList(secretList(options.secret)))
    problems.push('secret must be a non-empty string, or an array of them');
  if (!nonEmpty(options.dataDir)) problems.push('dataDir must be a non-empty string');
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) problems.push('port must be 0..65535');
  if (problems.length > 0) {
    throw new CocoError(ErrorCode.InvalidOptions, `agent options: ${problems.join('; ')}`);
  }
}

/**
 * Creates the agent: opens its task table (marking tasks of a crashed previous boot failed)
 * and builds the fastify server with every protocol route, without listening.
 *
 * @throws CocoError `INVALID_OPTIONS`, `STORE_IN_USE` (another agent holds `dataDir`),
 *   `STORE_FAILED`.
 */
export function createAgentServer(options: AgentOptions): AgentServer {
  checkOptions(options);
  const { id: agentId } = options;
  const secrets = secretList(options.secret);
  const version = options.version ?? 'unknown';
  const verbs: VerbRegistry = {
    ...(options.builtins === false ? {} : builtinVerbs),
    ...checkVerbs(options.verbs ?? {}, 'agent options'),
  };
  // No "incoming request" / "request completed" lines: the engine polls every agent all the
  // time, so those would drown what matters (refusals, stops, failures).
  const common = {
    bodyLimit: BODY_LIMIT_BYTES,
    logController: new LogController({ disableRequestLogging: true }),
  };
  const app: FastifyInstance =
    options.logger === undefined
      ? Fastify({ ...common, logger: { level: 'info' } })
      : Fastify({ ...common, loggerInstance: toAgentLogger(options.logger) });
  const bootId = randomUUID();
  const feed = new ChangeFeed(bootId);
  const table = TaskTable.open({
    dataDir: options.dataDir,
    agentId,
    bootId,
    verbs,
    log: app.log,
    ...(options.storageRoot !== undefined ? { storageRoot: resolve(options.storageRoot) } : {}),
    listener: feed,
    usedIds: options.usedIds,
    tracer: options.tracer === undefined ? trace.getTracer(AGENT_TRACER_NAME) : options.tracer,
  });
  const warnShort = (secrets: readonly string[]): void => {
    if (secrets.some((s) => s.length < 16))
      app.log.warn('an agent secret is shorter than 16 characters');
  };
  warnShort(secrets);
  const gate = new Gate({
    agentId,
    secrets,
    log: app.log,
    ...(options.nonces ? { nonces: options.nonces } : {}),
  });

  // Before the body is read: unknown paths and unauthenticated requests are answered here, and
  // their connections closed (an unread body is not drained: the caller stops sending).
  app.addHook('onRequest', async (request, reply) => {
    const refusal: Admission<undefined> = request.is404
      ? { ok: false, status: 404, error: unknownPath(request.method, request.url) }
      : gate.authenticate(request);
    if (refusal.ok) return;
    void reply.header('connection', 'close').code(refusal.status).send({ error: refusal.error });
    return reply;
  });

  // The signature covers the exact body bytes, so every body is read as bytes, whatever its
  // content type, and hashed, then parsed, only once the request is authenticated.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  /** The body of an authenticated request, checked against its signed hash, then parsed. */
  function admitBody<T>(
    request: FastifyRequest,
    schema: z.ZodType<T> | null,
  ): Admission<T | undefined> {
    const raw = Buffer.isBuffer(request.body) ? request.body : undefined;
    return gate.admitBody(request, raw, schema);
  }

  /** A route: admit the body, then act; the response type is checked against the protocol's schema. */
  function post<T, R>(
    path: string,
    schema: z.ZodType<T>,
    act: (body: T, request: FastifyRequest, reply: FastifyReply) => R | Promise<R>,
  ): void {
    app.post(path, async (request, reply): Promise<R | ErrorBody> => {
      const admitted = admitBody(request, schema);
      if (!admitted.ok) {
        reply.code(admitted.status);
        return { error: admitted.error };
      }
      return act(admitted.value as T, request, reply);
    });
  }

  app.get(PATHS.health, async (request, reply): Promise<Health | ErrorBody> => {
    const admitted = admitBody(request, null);
    if (!admitted.ok) {
      reply.code(admitted.status);
      return { error: admitted.error };
    }
    return {
      protocol: PROTOCOL_VERSION,
      agentId,
      bootId,
      version,
      verbs: table.verbNames(),
      tasks: table.size,
      time: Date.now(),
    };
  });

  post(PATHS.start, startRequest, (body, request): z.infer<typeof startResponse> => {
    const results = table.start(body.tasks);
    const refused = results.filter((r) => !r.accepted).length;
    request.log.debug(
      { caller: header(request, HEADERS.caller), tasks: results.length, refused },
      'start',
    );
    return { bootId, results };
  });

  post(PATHS.status, statusRequest, (body): z.infer<typeof statusResponse> => ({
    bootId,
    tasks: body.taskIds.map((taskId) => table.status(taskId)),
  }));

  post(PATHS.stop, idsRequest, (body, request): z.infer<typeof okResponse> => {
    const stopped = table.stop(body.taskIds);
    if (stopped > 0)
      request.log.info({ caller: header(request, HEADERS.caller), stopped }, 'stopped tasks');
    return { bootId, ok: true };
  });

  post(PATHS.clear, idsRequest, (body): z.infer<typeof okResponse> => {
    table.clear(body.taskIds);
    return { bootId, ok: true };
  });

  post(PATHS.list, listRequest, (body): z.infer<typeof listResponse> => ({
    bootId,
    taskIds: table.list(body.prefix),
  }));

  post(
    PATHS.changes,
    changesRequest,
    async (body, _request, reply): Promise<z.infer<typeof changesResponse>> => {
      const from = feed.from(body.cursor, body.bootId);
      let page = feed.since(from, body.prefix);
      if (page.taskIds.length === 0 && body.waitMs > 0) {
        // A caller that hangs up stops waiting (its waiter would otherwise live until waitMs).
        const hangUp = new AbortController();
        const onClose = (): void => hangUp.abort();
        reply.raw.once('close', onClose);
        try {
          await feed.wait(page.cursor, body.prefix, body.waitMs, hangUp.signal);
        } finally {
          reply.raw.off('close', onClose);
        }
        page = feed.since(page.cursor, body.prefix);
      }
      return {
        bootId,
        cursor: page.cursor,
        tasks: page.taskIds.map((taskId) => table.status(taskId)),
      };
    },
  );

  // Reached only if the onRequest hook let an unknown path through; answers as it would.
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: unknownPath(request.method, request.url) }),
  );

  app.setErrorHandler((error: unknown, request, reply) => {
    const status = (error as { statusCode?: unknown } | null)?.statusCode;
    const message = error instanceof Error ? error.message : String(error);
    if (status === 413)
      return reply.code(413).send(errorBody(AgentErrorCode.PayloadTooLarge, message));
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return reply.code(status).send(errorBody(AgentErrorCode.BadRequest, message));
    }
    request.log.error({ err: error }, 'request failed');
    return reply.code(500).send(errorBody(AgentErrorCode.Internal, message));
  });

  // Long-polls would hold the close for up to their wait: answer them first, and end their
  // connections (the server closes only the connections idle when the close began; one that
  // turns idle later would be kept alive until its keep-alive timeout).
  let closingDown = false;
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closingDown) void reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('preClose', (done) => {
    closingDown = true;
    feed.close();
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    table.close();
    done();
  });

  let closing: Promise<void> | undefined;
  return {
    app,
    agentId,
    bootId,
    previousBootId: table.previousBootId,
    table,
    feed,
    setSecrets: (secrets) => {
      if (!isSecretList(secrets))
        throw new CocoError(
          ErrorCode.InvalidOptions,
          'agent secrets: give at least one, each a non-empty string',
        );
      warnShort(secrets);
      gate.setSecrets(secrets);
    },
    close: () => (closing ??= app.close()),
  };
}

/**
 * Starts an agent: {@link createAgentServer}, then listens on `host:port`.
 *
 * @example
 * const agent = await startAgent({ id: 'host-1', secret, dataDir: '/var/lib/coco-agent', port: 7411 });
 * // ... later
 * await agent.close();
 */
export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const server = createAgentServer(options);
  const host = options.host ?? '127.0.0.1';
  try {
    await server.app.listen({ host, port: options.port ?? 0 });
  } catch (error) {
    await server.close();
    throw error;
  }
  const address = server.app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : (options.port ?? 0);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  server.app.log.info(
    {
      agentId: server.agentId,
      url,
      bootId: server.bootId,
      previousBootId: server.previousBootId,
      restartedTasks: server.table.restartedTasks,
      verbs: server.table.verbNames(),
    },
    'agent listening',
  );
  return {
    url,
    port,
    bootId: server.bootId,
    previousBootId: server.previousBootId,
    setSecrets: server.setSecrets,
    close: () => server.close(),
  };
}
