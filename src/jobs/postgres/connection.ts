/**
 * Options, connections and errors of the PostgreSQL job store: option validation, the pool the
 * store owns (or borrows), and which driver errors are worth another try.
 *
 * @module
 */
import type pg from 'pg';
import {
  isConnectionError,
  isRetryableTransaction,
  ownPool,
  quoteIdent,
} from '../../db/postgres.js';
import { z } from 'zod';
import { systemClock, type Clock } from '../../core/clock.js';
import { CocoError, ErrorCode, ValidationError } from '../../core/errors.js';

/** Options of {@link postgresJobStore}. Give exactly one of `url` and `pool`. */
export interface PostgresJobStoreOptions {
  /** `postgres://` URL of the database; the store opens (and on close ends) its own pool. */
  readonly url?: string;
  /** An existing pool to use instead of `url`. The store never ends it, nor changes its settings. */
  readonly pool?: pg.Pool;
  /**
   * Schema holding the job tables (created by `open` if missing): a lower-case SQL identifier,
   * not starting with `pg_`. Can be the engine store's schema, as the SQLite job store shares the
   * engine's file. @default 'coco'
   */
  readonly schema?: string;
  /** Connections of the pool opened for `url` (ignored with `pool`). @default 4 */
  readonly maxConnections?: number;
  /**
   * `statement_timeout` of the pool opened for `url`, in ms (0: none), and from it the pool's
   * client-side deadline, half as long again (`queryDeadlineMs` in db/postgres.ts): a statement
   * not answered by then has its connection dropped as lost and is tried again, so a server gone
   * silent holds the monitor's writes that long at most. Ignored with `pool`.
   * @default 30000 (see {@link DEFAULT_JOB_STATEMENT_TIMEOUT_MS})
   */
  readonly statementTimeoutMs?: number;
  /** Time source of the migration ledger. @default systemClock */
  readonly clock?: Clock;
}

/** {@link PostgresJobStoreOptions}, validated and defaulted. */
export interface CompiledJobStoreOptions {
  readonly pool: pg.Pool;
  /** Whether the store created the pool (and so ends it on close). */
  readonly ownsPool: boolean;
  readonly schema: string;
  readonly clock: Clock;
}

/** The default schema of the job tables. */
export const DEFAULT_JOB_SCHEMA = 'coco';

/**
 * Connections of the pool opened for a `url`. The monitor calls the store one call at a time;
 * the others serve concurrent reads (the HTTP API's job queries) without queueing behind a write.
 */
const DEFAULT_MAX_CONNECTIONS = 4;

/**
 * Default `statement_timeout` of the job store's own pool. Its statements are bounded: an
 * `apply` is sliced into upserts of at most 5,000 rows (50–140 ms measured), reads are keyed or
 * paged. So a statement still running after 30 s waits behind a lock (another monitor's write)
 * and is better failed (the monitor tries again later) than waited for; and from it the
 * deadline (45 s) bounds a server gone silent. The migration runs without either.
 */
export const DEFAULT_JOB_STATEMENT_TIMEOUT_MS = 30_000;

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

const optionsSchema = z
  .strictObject({
    url: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
      .optional(),
    pool: z
      .custom<pg.Pool>(
        (p) =>
          typeof p === 'object' &&
          p !== null &&
          typeof (p as { query?: unknown }).query === 'function' &&
          typeof (p as { connect?: unknown }).connect === 'function',
        'must be a pg.Pool',
      )
      .optional(),
    schema: z
      .string()
      .regex(IDENTIFIER, 'must be a lower-case SQL identifier (a-z, 0-9, _; at most 63 characters)')
      .refine((s) => !s.startsWith('pg_'), 'must not start with pg_ (reserved by PostgreSQL)')
      .default(DEFAULT_JOB_SCHEMA),
    maxConnections: z.number().int().min(1).max(100).default(DEFAULT_MAX_CONNECTIONS),
    statementTimeoutMs: z
      .number()
      .int()
      .min(0)
      .max(86_400_000)
      .default(DEFAULT_JOB_STATEMENT_TIMEOUT_MS),
    clock: z
      .custom<Clock>(
        (c) =>
          typeof c === 'object' && c !== null && typeof (c as { now?: unknown }).now === 'function',
        'must be a Clock',
      )
      .optional(),
  })
  .refine((o) => (o.url === undefined) !== (o.pool === undefined), {
    message: 'give exactly one of url and pool',
    path: ['url'],
  });

/**
 * Validates and defaults the options, creating the pool for a `url` (which connects nothing yet).
 * Throws an `INVALID_OPTIONS` {@link ValidationError} naming each bad field; the URL itself (which
 * may hold a password) never appears in the message.
 */
export function compileJobStoreOptions(options: unknown): CompiledJobStoreOptions {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new ValidationError(
      'invalid PostgreSQL job store options',
      parsed.error.issues.map((i) => ({
        path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)).join('.'),
        message: i.message,
      })),
      ErrorCode.InvalidOptions,
    );
  }
  const o = parsed.data;
  const clock = o.clock ?? systemClock;
  if (o.pool !== undefined) return { pool: o.pool, ownsPool: false, schema: o.schema, clock };
  const pool = ownPool({
    connectionString: o.url!,
    max: o.maxConnections,
    statementTimeoutMs: o.statementTimeoutMs,
    // Named in pg_stat_activity beside the engine store's `coco/<schema>` connections.
    applicationName: `coco/jobs/${o.schema}`,
  });
  return { pool, ownsPool: true, schema: o.schema, clock };
}

/**
 * Whether an error is a lost connection (or another failure that a new try may not meet), as
 * opposed to a statement the server refuses (a constraint, bad SQL), which fails the same way
 * every time. The engine store's classification, plus the transaction conflicts two monitors
 * on one schema can meet.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof CocoError) return error.retryable;
  return isConnectionError(error) || isRetryableTransaction(error);
}

export { quoteIdent };
