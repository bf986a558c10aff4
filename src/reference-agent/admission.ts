/**
 * Admitting a request to the reference agent, in two steps around reading its body:
 *
 * 1. {@link Gate.authenticate}, from the headers alone, before the body is read: the signature
 *    (which covers the body's SHA-256, carried in a header), the agent id, the timestamp (not
 *    before this process started: the nonces of a previous run are not remembered), and the
 *    nonce, which is then remembered (a request is used once).
 * 2. {@link Gate.admitBody}, once the body is read (up to the size limit): its SHA-256 against
 *    the signed one, then JSON, then the call's zod schema.
 *
 * What is refused gets the protocol's `errorResponse` body with one of the
 * {@link AgentErrorCode}s.
 *
 * @module
 */
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { ErrorCode, type ErrorInfo } from '../core/errors.js';
import { PROTOCOL_VERSION, pathVersion, type errorResponse } from '../protocol/agent-v2.js';
import { NonceMemory } from '../protocol/replay.js';
import { bodySha256, HEADERS, verifyRequest, type ReceivedHeaders } from '../protocol/signature.js';

/** Error codes of the agent's refusals (the `error.code` of an `errorResponse` body), from the catalogue. */
export const AgentErrorCode = {
  /** Missing, wrong, stale or replayed signature, or one made for another agent (401). */
  Unauthorized: ErrorCode.Unauthorized,
  /** Malformed JSON or a body failing the call's schema (400). */
  BadRequest: ErrorCode.BadRequest,
  /** No such call (404). */
  NotFound: ErrorCode.NotFound,
  /** A path of another protocol version than the agent speaks (404). */
  ProtocolVersion: ErrorCode.ProtocolVersion,
  /** Body over `BODY_LIMIT_BYTES` (413). */
  PayloadTooLarge: ErrorCode.PayloadTooLarge,
  /** The agent failed (500). */
  Internal: ErrorCode.Internal,
  /** The memory of accepted nonces is full: try again shortly (503). */
  Busy: ErrorCode.Busy,
} as const;

/** The body of an error answer. */
export type ErrorBody = z.infer<typeof errorResponse>;

/** An admitted request's body, or why and with which HTTP status it is refused. */
export type Admission<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly status: number; readonly error: ErrorInfo };

/** An error answer's body. */
export function errorBody(code: string, message: string, details?: unknown): ErrorBody {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

/** A header's value when sent once, else undefined. */
export function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The refusal of a request to a path the agent does not serve: 404 `PROTOCOL_VERSION` naming
 * both versions for a path of another protocol version (an engine of another release), else
 * 404 `NOT_FOUND`. Answered without checking the signature: it reveals nothing but the version.
 */
export function unknownPath(method: string, url: string): ErrorInfo {
  const version = pathVersion(url);
  if (version !== null && version !== PROTOCOL_VERSION) {
    return {
      code: AgentErrorCode.ProtocolVersion,
      message:
        `this agent speaks coco agent protocol ${PROTOCOL_VERSION} (paths /v${PROTOCOL_VERSION}/...), ` +
        `not protocol ${version} (${method} ${url}): run an engine that speaks protocol ${PROTOCOL_VERSION}`,
      details: { protocol: PROTOCOL_VERSION, requested: version },
    };
  }
  return { code: AgentErrorCode.NotFound, message: `no call ${method} ${url}` };
}

/** What {@link Gate} needs. */
export interface GateOptions {
  readonly agentId: string;
  /** The secrets a request may be signed with (several during a rotation). */
  readonly secrets: readonly string[];
  readonly log: FastifyBaseLogger;
  /** @default a memory of `MAX_REMEMBERED_NONCES` nonces */
  readonly nonces?: NonceMemory;
  /** @default Date.now */
  readonly clock?: () => number;
}

/** The agent's admission of requests: authentication from the headers, then the body. */
export class Gate {
  readonly #agentId: string;
  #secrets: readonly string[];
  readonly #log: FastifyBaseLogger;
  readonly #nonces: NonceMemory;
  readonly #clock: () => number;
  /** The latest time read: the gate's clock never goes backwards (see {@link Gate.#now}). */
  #latest = 0;
  /**
   * When this process began admitting requests. The nonce memory starts empty, so a request
   * signed earlier may have been accepted by the previous run of the agent: it is refused.
   */
  readonly #notBefore: number;
  /** The SHA-256 each authenticated request signed for its body. */
  readonly #signedSha = new WeakMap<FastifyRequest, string>();

  constructor(options: GateOptions) {
    this.#agentId = options.agentId;
    this.#secrets = [...options.secrets];
    this.#log = options.log;
    this.#nonces = options.nonces ?? new NonceMemory();
    this.#clock = options.clock ?? Date.now;
    this.#notBefore = this.#now();
  }

  /** Accepts requests signed with these secrets from now on, and no others (a rotation). */
  setSecrets(secrets: readonly string[]): void {
    this.#secrets = [...secrets];
  }

  /**
   * Checks a request from its headers (before its body is read) and remembers its nonce. A
   * refusal is logged with its reason and the claimed caller.
   */
  authenticate(request: FastifyRequest): Admission<undefined> {
    const received: ReceivedHeaders = {
      timestamp: header(request, HEADERS.timestamp),
      caller: header(request, HEADERS.caller),
      agent: header(request, HEADERS.agent),
      nonce: header(request, HEADERS.nonce),
      contentSha256: header(request, HEADERS.contentSha256),
      signature: header(request, HEADERS.signature),
    };
    const now = this.#now();
    const checked = verifyRequest(
      this.#secrets,
      this.#agentId,
      request.method,
      request.url,
      received,
      now,
    );
    if (!checked.ok) return this.#unauthorized(request, checked.reason);
    const { nonce, timestamp, bodySha256: signed } = checked.fields;
    if (timestamp < this.#notBefore) {
      const started = new Date(this.#notBefore).toISOString();
      return this.#unauthorized(
        request,
        `signed before this agent started (${started}): a request of its previous run is not accepted again`,
      );
    }
    switch (this.#nonces.remember(nonce, timestamp, now)) {
      case 'fresh':
        this.#signedSha.set(request, signed);
        return { ok: true, value: undefined };
      case 'replayed':
        return this.#unauthorized(
          request,
          `nonce ${JSON.stringify(nonce)} already used: a signed request is accepted once`,
        );
      case 'stale':
        return this.#unauthorized(request, `${HEADERS.timestamp} is out of the accepted window`);
      case 'full': {
        const message = `the agent remembers ${this.#nonces.capacity} recent requests, its most; try again shortly`;
        this.#log.warn({ caller: received.caller ?? null }, message);
        return { ok: false, status: 503, error: { code: AgentErrorCode.Busy, message } };
      }
    }
  }

  /**
   * Checks an authenticated request's body (`raw`: the bytes as read; none for a GET) against
   * its signed SHA-256, then parses and validates it (`schema` null: a call without a body).
   */
  admitBody<T>(
    request: FastifyRequest,
    raw: Buffer | undefined,
    schema: z.ZodType<T> | null,
  ): Admission<T | undefined> {
    const bytes = raw ?? Buffer.alloc(0);
    const signed = this.#signedSha.get(request);
    if (signed === undefined || bodySha256(bytes) !== signed) {
      return this.#unauthorized(
        request,
        `the body does not match its signed ${HEADERS.contentSha256}`,
      );
    }
    if (schema === null) return { ok: true, value: undefined };
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      const message = `the body is not valid JSON: ${(error as Error).message}`;
      return { ok: false, status: 400, error: { code: AgentErrorCode.BadRequest, message } };
    }
    const parsed = schema.safeParse(json);
    if (parsed.success) return { ok: true, value: parsed.data };
    const issues = parsed.error.issues.map((i) => ({
      path: i.path.map(String).join('.'),
      message: i.message,
    }));
    const list = issues.map((i) => `${i.path === '' ? '(root)' : i.path}: ${i.message}`).join('; ');
    const error = {
      code: AgentErrorCode.BadRequest,
      message: `invalid request: ${list}`,
      details: { issues },
    };
    return { ok: false, status: 400, error };
  }

  /**
   * The clock, held at its latest reading if the system clock is set back: nonces forgotten
   * because their window had passed must not become acceptable again.
   */
  #now(): number {
    this.#latest = Math.max(this.#latest, this.#clock());
    return this.#latest;
  }

  #unauthorized(request: FastifyRequest, reason: string): Admission<never> {
    request.log.warn(
      {
        reason,
        caller: header(request, HEADERS.caller) ?? null,
        method: request.method,
        url: request.url,
        remoteAddress: request.ip,
      },
      `refused an unauthenticated request: ${reason}`,
    );
    return {
      ok: false,
      status: 401,
      error: { code: AgentErrorCode.Unauthorized, message: reason },
    };
  }
}
