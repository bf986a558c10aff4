/**
 * Options of the PostgreSQL store: what a caller passes ({@link PostgresStoreOptions}) and the
 * validated, defaulted, frozen form the store runs on ({@link CompiledPostgresOptions}).
 *
 * @module
 */
import type pg from 'pg';
import { z } from 'zod';
import { CocoError, ErrorCode } from '../../core/errors.js';

/**
 * Default length of a node's lease and of an agent lease. A node renews its leases every third
 * of the lease: two missed renewals in a row (a GC pause, a slow failover of the database) still
 * keep them. An agent poll may only start if it can end (the engine's agent call timeout, 10 s by
 * default) before the agent's lease could expire, so the lease must be at least three call
 * timeouts for polls to fit between renewals. The work of a node that died is claimed by another
 * node within about 30 s plus one claim poll.
 */
export const DEFAULT_LEASE_MS = 30_000;

/**
 * Default size of the pool the store creates: the apply connections are held for `apply` (two by
 * default, {@link DEFAULT_APPLY_CONNECTIONS}), one by each `listen`, and the rest serve reads,
 * claims and heartbeats, which are short. Ten covers a busy node; a bigger pool does not make
 * batches faster.
 */
export const DEFAULT_POOL_SIZE = 10;

/**
 * Default `statement_timeout` of the store's connections. A batch of thousands of rows takes
 * well under a second; a statement still running after 30 s is stuck behind a lock (a wedged
 * transaction elsewhere) and is better reported than waited for forever. Migrations run without
 * it: building an index on a big table may rightly take longer.
 */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;

/** Smallest pool: the apply connection, one listener, and one connection for everything else. */
export const MIN_POOL_SIZE = 3;

/**
 * Default number of apply connections per node: two — batches touching different commands run
 * their statements on two server backends side by side, their COMMITs still in call order. The
 * server's statements bound a node (its one apply backend on CPU ~90 % of a run), and with two
 * a node on the 2-core bench machine ran +13 % one-task, +10 % fan-out, +20 % chain (33
 * interleaved pairs; 3 nodes of two lanes still above one node: BENCHMARKS.md, issue 15, stop
 * 27). It was one until then: with the statements cheap and the commits the bound, the round
 * trip through the node before each COMMIT that follows one on another connection had cost
 * −33 % (stop 20). A pool too small for two (fewer than 4 connections) gets one.
 */
export const DEFAULT_APPLY_CONNECTIONS = 2;

/**
 * Most apply connections per node: each holds a server backend, and past a few the COMMITs,
 * which stay in call order, are the limit, not the statements running beside each other.
 */
export const MAX_APPLY_CONNECTIONS = 8;

/** Options of {@link postgresStore}. Give exactly one of `url` and `pool`. */
export interface PostgresStoreOptions {
  /** Connection string, e.g. `postgres://user@host:5432/db`. The store creates and ends its pool. */
  readonly url?: string;
  /**
   * An existing pool to use instead of `url`; the store never ends it. It holds its apply
   * connections (`applyConnections`) and one per `listen` while open (so give it at least
   * {@link MIN_POOL_SIZE}; below 4, one apply connection by default), and uses schema-qualified
   * names, so the pool's `search_path` does not matter. `statementTimeoutMs` applies only to the
   * connections the store holds. Give the pool an `'error'` listener, and each client one on
   * `'connect'` (the store does both on a pool it creates): a server restart can end a connection
   * before the store adds its own listener. The store sets no deadline on a pool of yours: give
   * it `keepAlive` and a `query_timeout` (as `queryDeadlineMs` in db/postgres.ts), or a server
   * that vanishes without closing its connections holds the node's statements until TCP gives up
   * (~15 min).
   */
  readonly pool?: pg.Pool;
  /**
   * Schema holding coco's tables (created if missing): lower-case letters, digits and `_`,
   * at most 58 characters (so the notification channel `coco_<schema>` fits PostgreSQL's 63).
   * @default 'coco'
   */
  readonly schema?: string;
  /** Size of the pool the store creates from `url`. @default 10 (see {@link DEFAULT_POOL_SIZE}) */
  readonly poolSize?: number;
  /** Length of node and agent leases, in ms. @default 30000 (see {@link DEFAULT_LEASE_MS}) */
  readonly leaseMs?: number;
  /**
   * `statement_timeout` of the store's statements, in ms; 0 disables it. On the pool the store
   * creates it also sets the client-side deadline, half as long again (`queryDeadlineMs`):
   * a statement not answered by then has its connection dropped as lost.
   * @default 30000 (see {@link DEFAULT_STATEMENT_TIMEOUT_MS})
   */
  readonly statementTimeoutMs?: number;
  /**
   * Connections a node applies its batches through ("lanes", src/store/postgres/lanes.ts): with
   * more than one, batches touching different commands run on the server side by side, their
   * COMMITs still in call order. Each is held while the store is open, so the pool needs this
   * many plus two (a listener, and reads).
   * @default 2, or 1 when the pool holds fewer than 4 (see {@link DEFAULT_APPLY_CONNECTIONS})
   */
  readonly applyConnections?: number;
}

/** Where connections come from. */
export type ConnectionSource =
  | { readonly kind: 'url'; readonly url: string; readonly poolSize: number }
  | { readonly kind: 'pool'; readonly pool: pg.Pool };

/** {@link PostgresStoreOptions}, validated and defaulted. */
export interface CompiledPostgresOptions {
  readonly source: ConnectionSource;
  readonly schema: string;
  readonly leaseMs: number;
  readonly statementTimeoutMs: number;
  readonly applyConnections: number;
}

/** A schema name the store accepts (it is also spliced, quoted, into SQL text). */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,57}$/;

function isPool(value: unknown): value is pg.Pool {
  const v = value as Partial<Record<'connect' | 'query' | 'end', unknown>> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.connect === 'function' &&
    typeof v.query === 'function' &&
    typeof v.end === 'function'
  );
}

const optionsSchema = z.strictObject({
  url: z.string().min(1, 'must be a non-empty connection string').optional(),
  pool: z.custom<pg.Pool>(isPool, 'must be a pg.Pool').optional(),
  schema: z
    .string()
    .regex(
      SCHEMA_NAME,
      'must be lower-case letters, digits and _, not starting with a digit, at most 58 characters',
    )
    .refine((s) => !s.startsWith('pg_'), 'must not start with pg_ (reserved by PostgreSQL)')
    .default('coco'),
  poolSize: z.number().int().min(MIN_POOL_SIZE).max(1_000).default(DEFAULT_POOL_SIZE),
  leaseMs: z.number().int().min(100).max(86_400_000).default(DEFAULT_LEASE_MS),
  statementTimeoutMs: z.number().int().min(0).max(86_400_000).default(DEFAULT_STATEMENT_TIMEOUT_MS),
  applyConnections: z.number().int().min(1).max(MAX_APPLY_CONNECTIONS).optional(),
});

function invalid(message: string): CocoError {
  return new CocoError(ErrorCode.InvalidOptions, `postgresStore: ${message}`);
}

/** Connections a pool needs for `lanes` apply connections: theirs, a listener, one for reads. */
function poolNeeds(lanes: number): number {
  return Math.max(MIN_POOL_SIZE, lanes + 2);
}

/** Validates and defaults the options; throws `INVALID_OPTIONS` naming the offending field. */
export function compileOptions(options: PostgresStoreOptions): CompiledPostgresOptions {
  const parsed = optionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.map(String).join('.') || '(options)';
    const keys = issue?.code === 'unrecognized_keys' ? ` ${issue.keys.join(', ')}` : '';
    throw invalid(`${field}${keys}: ${issue?.message ?? 'invalid'}`);
  }
  const o = parsed.data;
  if ((o.url === undefined) === (o.pool === undefined)) {
    throw invalid('url / pool: give exactly one of them');
  }
  if (o.pool !== undefined && options.poolSize !== undefined) {
    throw invalid('poolSize: only applies to the pool created from url');
  }
  const poolMax = (o.pool as { options?: { max?: unknown } } | undefined)?.options?.max;
  const capacity = o.pool !== undefined ? poolMax : o.poolSize;
  // Unset: the default, or one where the pool has no room for it.
  const applyConnections =
    o.applyConnections ??
    (typeof capacity === 'number' && capacity < poolNeeds(DEFAULT_APPLY_CONNECTIONS)
      ? 1
      : DEFAULT_APPLY_CONNECTIONS);
  const needed = poolNeeds(applyConnections);
  if (typeof poolMax === 'number' && poolMax < needed) {
    throw invalid(`pool: needs at least ${needed} connections (max is ${poolMax})`);
  }
  if (o.pool === undefined && o.poolSize < needed) {
    throw invalid(
      `poolSize: ${o.poolSize} is too small for ${applyConnections} apply connections (at least ${needed})`,
    );
  }
  const source: ConnectionSource =
    o.pool !== undefined
      ? { kind: 'pool', pool: o.pool }
      : { kind: 'url', url: o.url!, poolSize: o.poolSize };
  return Object.freeze({
    source,
    schema: o.schema,
    leaseMs: o.leaseMs,
    statementTimeoutMs: o.statementTimeoutMs,
    applyConnections,
  });
}
