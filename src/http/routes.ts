/**
 * A route of the API as one value: method, path, role, contracts (zod) and the errors it may
 * answer. {@link Routes.add} registers it with fastify (its role in the route config, where the
 * access hook finds it) and keeps it for the OpenAPI document, so the routes served and the
 * routes described are the same list.
 *
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { CocoError, ErrorCode, ValidationError, toErrorInfo } from '../core/errors.js';
import { toIssues } from '../core/params.js';
import type { RouteRole } from './auth.js';

/** One route: what it takes, answers and needs. */
export interface RouteSpec {
  readonly method: 'GET' | 'POST';
  /** fastify's path syntax (`/v1/commands/:id`). */
  readonly url: string;
  readonly role: RouteRole;
  /** One line for the OpenAPI document and docs/API.md. */
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  readonly params?: z.ZodType;
  readonly query?: z.ZodType;
  readonly body?: z.ZodType;
  /** The success status and its answer; `sse` for a server-sent event stream. */
  readonly ok: {
    readonly status: number;
    readonly schema: z.ZodType | 'sse';
    /** Other success statuses with the same answer. */
    readonly also?: readonly number[];
    /** Answers 304 with no body when `If-None-Match` holds the answer's current `ETag`. */
    readonly notModified?: boolean;
  };
  /** Other answers besides the access hook's (401, 403, 415, 421): status → error codes. */
  readonly errors?: Readonly<Record<number, readonly string[]>>;
}

/** The status each error code answers with (500 for any other). */
export const STATUS_OF: Readonly<Record<string, number>> = {
  [ErrorCode.ParametersInvalid]: 400,
  [ErrorCode.InvalidDefinition]: 400,
  [ErrorCode.InvalidOptions]: 400,
  [ErrorCode.BadRequest]: 400,
  [ErrorCode.UnknownCommandType]: 400,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.Forbidden]: 403,
  [ErrorCode.CommandNotFound]: 404,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.CommandState]: 409,
  [ErrorCode.AgentInUse]: 409,
  [ErrorCode.IdempotencyConflict]: 409,
  [ErrorCode.PayloadTooLarge]: 413,
  [ErrorCode.UnsupportedMediaType]: 415,
  // Well-formed and of a known type, but the type cannot be a root.
  [ErrorCode.CommandTypeNotSubmittable]: 422,
  // A stored command whose parameters this code cannot bring to its type's version (a rerun).
  [ErrorCode.ParameterUpgradeFailed]: 422,
  [ErrorCode.ParameterVersionTooNew]: 422,
  [ErrorCode.RateLimited]: 429,
  [ErrorCode.EngineStopped]: 503,
  [ErrorCode.StoreFailed]: 503,
  // Another node stored the key meanwhile, and this one is rejoining: asked again, either answers
  // with that command.
  [ErrorCode.IdempotencyKeyTaken]: 503,
};

/**
 * The `Retry-After` of a 503 (seconds): a store counts as out after 5 s without a write
 * (`storeOutageMs`) and its commits are retried up to every 10 s, so a client asking again every
 * 5 s neither hammers a node that is recovering nor waits long past its return; a stopping node's
 * clients reach another node behind the balancer as soon.
 */
export const RETRY_AFTER_S = 5;

/**
 * Answers an error with its code's status and `{ error: { code, message, details? } }`; a 503
 * (the node stopping, its store out) with a `Retry-After`. A 503 is logged as a warning with its
 * code, without a stack: it is expected while it lasts (the outage or the stop is logged once
 * where it happens), and an error line per refused call would page for each; other 5xx are
 * errors, with the stack.
 */
export function fail(reply: FastifyReply, error: unknown): FastifyReply {
  const info = toErrorInfo(error, ErrorCode.Internal);
  const status = STATUS_OF[info.code] ?? 500;
  if (status === 503) {
    void reply.header('retry-after', String(RETRY_AFTER_S));
    reply.log.warn({ code: info.code }, `API call refused for now: ${info.message}`);
  } else if (status >= 500) reply.log.error({ err: error }, 'API call failed');
  return reply.code(status).send({ error: info });
}

/** Parses a request part; a `BAD_REQUEST` naming each bad field otherwise. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success)
    throw new ValidationError(
      `invalid ${what}`,
      toIssues(result.error.issues),
      ErrorCode.BadRequest,
    );
  return result.data;
}

/**
 * What a handler returns when it answered itself (`reply.code(…).send(…)`, a 304, an open event
 * stream). A handler must not return the reply: fastify's reply is a thenable, so an async
 * function returning it resolves only when the response is finished, with `undefined` — the
 * route would then answer a second time (fastify logs "Reply was already sent" at warn).
 */
export const ANSWERED: unique symbol = Symbol('answered by the handler');

/** A route's input, parsed by its contracts. */
export interface RouteInput<P, Q, B> {
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
}

type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

/** The routes of an API, as registered. */
export class Routes {
  readonly #app: FastifyInstance;
  readonly #specs: RouteSpec[] = [];

  constructor(app: FastifyInstance) {
    this.#app = app;
  }

  /** Every route added, in order. */
  get specs(): readonly RouteSpec[] {
    return this.#specs;
  }

  /**
   * Registers a route: its input parsed by its contracts (a `BAD_REQUEST` naming each bad field
   * otherwise), errors answered with their code's status. The handler returns the answer (sent
   * with `ok.status`), or {@link ANSWERED} when it answered itself (another status, a stream).
   */
  add<S extends RouteSpec>(
    spec: S,
    handler: (input: RouteInput<Out<S['params']>, Out<S['query']>, Out<S['body']>>) => unknown,
  ): void {
    this.#specs.push(spec);
    this.#app.route({
      method: spec.method,
      url: spec.url,
      config: { role: spec.role },
      handler: async (request, reply) => {
        try {
          const input = {
            params: (spec.params ? parse(spec.params, request.params, 'path') : undefined) as Out<
              S['params']
            >,
            query: (spec.query ? parse(spec.query, request.query, 'query') : undefined) as Out<
              S['query']
            >,
            body: (spec.body ? parse(spec.body, request.body, 'body') : undefined) as Out<
              S['body']
            >,
            request,
            reply,
          };
          const answer = await handler(input);
          if (answer === ANSWERED) return reply;
          return await reply.code(spec.ok.status).send(answer);
        } catch (error) {
          if (reply.sent) {
            request.log.error({ err: error }, 'API stream failed');
            return reply;
          }
          return fail(reply, error);
        }
      },
    });
  }
}

/** A `NOT_FOUND` error. */
export function notFound(message: string): CocoError {
  return new CocoError(ErrorCode.NotFound, message);
}
