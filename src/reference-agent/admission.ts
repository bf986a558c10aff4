/**
 * Admitting a request to the reference agent: checking its signature over the exact body text,
 * then parsing it (JSON, then the call's zod schema). What is refused gets the protocol's
 * `errorResponse` body with one of the {@link AgentErrorCode}s.
 *
 * @module
 */
import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { ErrorCode, type ErrorInfo } from '../core/errors.js';
import { HEADERS, verifyRequest, type errorResponse } from '../protocol/agent-v1.js';

/** Error codes of the agent's refusals (the `error.code` of an `errorResponse` body), from the catalogue. */
export const AgentErrorCode = {
  /** Missing, wrong or stale signature (401). */
  Unauthorized: ErrorCode.Unauthorized,
  /** Malformed JSON or a body failing the call's schema (400). */
  BadRequest: ErrorCode.BadRequest,
  /** No such call (404). */
  NotFound: ErrorCode.NotFound,
  /** Body over `BODY_LIMIT_BYTES` (413). */
  PayloadTooLarge: ErrorCode.PayloadTooLarge,
  /** The agent failed (500). */
  Internal: ErrorCode.Internal,
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
 * Authenticates, parses and validates a request (`schema` null: a call without a body). The
 * signature is checked over the body text exactly as received, before any parsing; a refusal
 * is logged with its reason and the claimed caller.
 */
export function admit<T>(
  secret: string,
  request: FastifyRequest,
  schema: z.ZodType<T> | null,
): Admission<T | undefined> {
  const raw = typeof request.body === 'string' ? request.body : '';
  const caller = header(request, HEADERS.caller);
  const reason = verifyRequest(
    secret,
    request.method,
    request.url,
    {
      timestamp: header(request, HEADERS.timestamp),
      caller,
      signature: header(request, HEADERS.signature),
    },
    raw,
    Date.now(),
  );
  if (reason !== null) {
    request.log.warn(
      {
        reason,
        caller: caller ?? null,
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
  if (schema === null) return { ok: true, value: undefined };
  let json: unknown;
  try {
    json = JSON.parse(raw);
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
