/**
 * PostgreSQL driver facts shared by the engine's store (store/postgres) and the job store
 * (jobs/postgres): quoting a schema name, which driver errors mean a lost connection or a
 * transaction worth another try, how a driver error becomes `STORE_FAILED`, and how long a
 * connection may stay silent (keepalive, the statement deadline).
 *
 * @module
 */
import net from 'node:net';
import type pg from 'pg';
import { CocoError, ErrorCode } from '../core/errors.js';
import { pgDriver } from './drivers.js';

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

/**
 * How long a store's own pool waits for a new connection. `pg` waits forever by default, which
 * turns an unreachable server into a hung call; 10 s is far above a healthy connect (milliseconds,
 * even with TLS) and leaves room for a server that is still starting.
 */
export const CONNECT_TIMEOUT_MS = 10_000;

/** What {@link ownPool} takes. */
export interface OwnPoolOptions {
  readonly connectionString: string;
  readonly max: number;
  /** `statement_timeout` of its connections, and from it their deadline; 0: neither. */
  readonly statementTimeoutMs: number;
  readonly applicationName?: string;
}

/**
 * The pool a store creates from a URL (the engine's store and the job store alike): a bounded
 * connect, keepalive from {@link KEEPALIVE_IDLE_MS} (an idle connection to a vanished server is
 * found dead; a statement in flight on one meets the deadline instead), the statement timeout
 * and its {@link queryDeadlineMs}, and the listeners without which a connection lost at the
 * wrong moment would crash the process. Connects nothing yet.
 */
export function ownPool(o: OwnPoolOptions): pg.Pool {
  const own: OwnSockets = { open: new Set(), dropped: false };
  const pool = new (pgDriver().Pool)({
    // Sockets of our own making, so that they can be destroyed (destroyConnections) when the
    // server stops answering: ending a connection waits for the server's goodbye.
    stream: () => {
      const socket = new net.Socket();
      // Dropped: a connection asked for now fails at once (pg connects it right after this).
      if (own.dropped) process.nextTick(() => socket.destroy(new Error('connection dropped')));
      own.open.add(socket);
      socket.once('close', () => own.open.delete(socket));
      return socket;
    },
    connectionString: o.connectionString,
    max: o.max,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MS,
    ...(o.applicationName !== undefined ? { application_name: o.applicationName } : {}),
    ...(o.statementTimeoutMs > 0
      ? {
          statement_timeout: o.statementTimeoutMs,
          query_timeout: queryDeadlineMs(o.statementTimeoutMs),
        }
      : {}),
  });
  // An idle connection that the server drops (restart, a proxy's idle timeout) makes the pool
  // emit 'error', which would crash the process without a listener. The pool has already
  // discarded the connection, and the next query opens a new one: nothing else to do.
  pool.on('error', () => undefined);
  // A client the pool has just handed out has no 'error' listener until its user adds one, a
  // microtask later; a server shutting down can send a FATAL in the same chunk as a new
  // connection's ReadyForQuery, which would be emitted in between and crash the process. Every
  // client gets a listener of its own for its whole life; its users still see the loss on their
  // next query (or through their own listener).
  pool.on('connect', (client) => client.on('error', () => undefined));
  ownSockets.set(pool, own);
  return pool;
}

/**
 * How long the connections of a pool made by {@link ownPool} may take to close once it has ended
 * ({@link endPool}). A live server closes a connection within milliseconds of its Terminate; one
 * that does not answer (frozen, or gone behind an address that stays up) never sends its
 * goodbye, and the half-closed socket would hold the process open for as long. 1 s is far above
 * the first and bounds the second.
 */
export const END_GRACE_MS = 1_000;

/**
 * Ends a pool (once its connections in use are given back; each is told goodbye), then gives the
 * connections of a pool made by {@link ownPool} {@link END_GRACE_MS} to close before destroying
 * those left. Calls still waiting for a connection are not served by an ended pool: let them end
 * first.
 */
export async function endPool(pool: pg.Pool): Promise<void> {
  await pool.end();
  const own = ownSockets.get(pool);
  if (own === undefined || own.open.size === 0) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, END_GRACE_MS);
    let left = own.open.size;
    for (const socket of own.open)
      socket.once('close', () => {
        if (--left > 0) return;
        clearTimeout(timer);
        resolve();
      });
  });
  destroyConnections(pool);
}

/**
 * A pool's connections now (the stores' metrics): open, idle, the calls waiting for one, and, for
 * a pool made by {@link ownPool}, those it has let go of whose sockets have not closed yet.
 */
export function poolFigures(pool: pg.Pool): {
  open: number;
  idle: number;
  waiting: number;
  closing: number;
} {
  const sockets = ownSockets.get(pool)?.open.size ?? 0;
  return {
    open: pool.totalCount,
    idle: pool.idleCount,
    waiting: pool.waitingCount,
    closing: Math.max(0, sockets - pool.totalCount),
  };
}

/** The sockets of a pool made by {@link ownPool}, and whether they were dropped. */
interface OwnSockets {
  readonly open: Set<net.Socket>;
  dropped: boolean;
}
const ownSockets = new WeakMap<pg.Pool, OwnSockets>();

/**
 * Destroys every connection of a pool made by {@link ownPool}, in use or idle, and fails every
 * one it is asked to open from now on, without waiting for the server: what is in flight fails
 * at once as a lost connection. For a store closing that was told to stop waiting on a database
 * that does not answer (ending a connection would wait for the server's goodbye). A pool made
 * elsewhere is not touched.
 */
export function destroyConnections(pool: pg.Pool): void {
  const own = ownSockets.get(pool);
  if (own === undefined) return;
  own.dropped = true;
  for (const socket of [...own.open]) {
    socket.destroy();
    own.open.delete(socket); // closed now, though its 'close' event comes a turn later
  }
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
