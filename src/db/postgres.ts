/**
 * PostgreSQL driver facts shared by the engine's store (store/postgres) and the job store
 * (jobs/postgres): quoting a schema name, which driver errors mean a lost connection or a
 * transaction worth another try, how a driver error becomes `STORE_FAILED`, and how long a
 * connection may stay silent (keepalive, the statement deadline).
 *
 * @module
 */
import type pg from 'pg';
import { CocoError, ErrorCode } from '../core/errors.js';

/** A schema name, quoted (names are validated first; this is belt and braces). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Idle time before TCP keepalive probes start on the stores' connections. The OS default (2 h,
 * then 9 probes 75 s apart) would leave a listener or an idle apply connection on a server that
 * vanished without closing anything (a failed-over primary, a dropped route) for over two hours;
 * with Node's probes (10, 1 s apart) such a connection is found dead within ~20 s of going quiet.
 * Probes cost one empty packet each way per idle connection every 10 s.
 */
export const KEEPALIVE_IDLE_MS = 10_000;

/**
 * A statement not answered this long after the `statement_timeout` (a half more) is waited for no
 * longer: its connection is taken as lost. A live server cancels a statement at its timeout and
 * answers at once, and a batch's statements before it (it is pipelined behind them) take well
 * under a second; a server that does not answer by then is gone without closing the connection,
 * which TCP alone would report only after ~15 min of retransmissions (or never, behind a proxy
 * that stays up). The connection is then treated like a cut one: destroyed, the statement's
 * outcome settled by the batch ledgers (the engine store), reads and writes tried again.
 * 30 s statements: 45 s.
 */
export function queryDeadlineMs(statementTimeoutMs: number): number | undefined {
  return statementTimeoutMs > 0 ? Math.round(statementTimeoutMs * 1.5) : undefined;
}

/**
 * `query_timeout` of statements that may rightly run longer than the deadline: the migration
 * (an index built on a big table, the lock of another node's migration). node-postgres reads 0
 * as "the pool's", so "none" is the longest delay a timer takes (~24.8 days).
 */
const NO_QUERY_DEADLINE_MS = 2_147_483_647;

/** A statement exempt from the pool's query deadline (node-postgres reads it off the query). */
export function withoutDeadline(text: string, values: unknown[] = []): pg.QueryConfig {
  const query: pg.QueryConfig & { query_timeout: number } = {
    text,
    values,
    query_timeout: NO_QUERY_DEADLINE_MS,
  };
  return query;
}

/** SQLSTATEs of a connection the server ended or refused. */
const CONNECTION_SQLSTATES = new Set([
  '53300', // too_many_connections
  '57P01', // admin_shutdown: the server (or pg_terminate_backend) ended the connection
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: the server is starting up
]);

/** Socket errors of a lost or refused connection. */
const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/**
 * Messages of `pg`'s own connection errors, which carry no code. "Query read timeout" is its
 * `query_timeout` deadline: the server never answered, the connection still waits for it, so it
 * is as lost as a cut one (destroyed; the statement may have run).
 */
const CONNECTION_MESSAGE =
  /connection terminated|timeout exceeded when trying to connect|connection error and is not queryable|Client was closed|not queryable|query read timeout/i;

/** Whether an error means the connection is gone (so the statement may or may not have run). */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (code.startsWith('08') || CONNECTION_SQLSTATES.has(code) || CONNECTION_ERRNOS.has(code))
      return true;
  }
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' && CONNECTION_MESSAGE.test(message);
}

/** Whether the server rolled the transaction back for a reason a new try will not meet again. */
export function isRetryableTransaction(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40001' || code === '40P01'; // serialization_failure, deadlock_detected
}

/** Wraps a failure in `STORE_FAILED` (keeping `CocoError`s as they are), retryable when
 * the connection was lost or the transaction may pass on a new try; `details.sqlstate` names the
 * server's code. */
export function storeFailed(what: string, error: unknown): CocoError {
  if (error instanceof CocoError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  return new CocoError(
    ErrorCode.StoreFailed,
    `${what}: ${(error as Error | null)?.message ?? String(error)}`,
    {
      cause: error,
      retryable: isConnectionError(error) || isRetryableTransaction(error),
      ...(typeof code === 'string' ? { details: { sqlstate: code } } : {}),
    },
  );
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
