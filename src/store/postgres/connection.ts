/**
 * Connections of the PostgreSQL store: the pool, how values come back (64-bit integers as
 * numbers), which driver errors mean a lost connection, error mapping, back-off, and the
 * migration run (one transaction under an advisory lock keyed on the schema).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import {
  BatchRefusedError,
  CocoError,
  ErrorCode,
  IdempotencyKeyTakenError,
  IllegalTransitionError,
} from '../../core/errors.js';
import { migrations } from '../../generated/postgres-migrations.js';
import { pgDriver } from '../../db/drivers.js';
import {
  isConnectionError,
  ownPool,
  quoteIdent,
  storeFailed,
  withoutDeadline,
} from '../../db/postgres.js';
import type { MigrationReport } from '../port.js';
import type { CompiledPostgresOptions } from './options.js';

/**
 * First pause before reconnecting after a lost connection. A connection cut by a proxy or an
 * administrator is usually replaced at once, so the first retry comes quickly.
 */
export const RECONNECT_MIN_MS = 50;

/**
 * Longest pause between reconnection attempts (the pause doubles up to it). A database restart
 * or failover takes seconds: trying every 2 s finds it back soon without flooding its log.
 */
export const RECONNECT_MAX_MS = 2_000;

/**
 * How long reads (and other calls safe to repeat) keep trying on connection errors. The engine
 * waits for its reads — a handler reading an entity, a claim, a lease renewal — and a failed read
 * would cost a handler one of its retries: 30 s rides out a server restart or a failover (a few
 * seconds) with room to spare, yet a server that is really gone is reported within the minute.
 */
export const READ_RETRY_WINDOW_MS = 30_000;

/** SQLSTATE of the transition triggers (migrations/0001_init.sql). */
export const TRANSITION_SQLSTATE = 'CO001';

/** Type OID of `int8` (bigint). */
const INT8_OID = 20;

/** `int8` (bigint) comes back as a number when it is a safe integer, else as its text (refused later). */
function parseInt8(text: string): unknown {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

/**
 * Type parsers of the store's queries, passed with each query (so a caller's pool keeps its own
 * settings): ids and millisecond times are `bigint` columns, which `pg` returns as strings by default.
 */
export const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format: 'text' | 'binary' = 'text'): unknown =>
    oid === INT8_OID
      ? parseInt8
      : (pgDriver().types.getTypeParser(
          oid,
          format,
        ) as unknown)) as pg.CustomTypesConfig['getTypeParser'],
};

/** The pool of a store: the caller's, or one created from the URL (which connects nothing yet). */
export function createPool(o: CompiledPostgresOptions): { pool: pg.Pool; owned: boolean } {
  if (o.source.kind === 'pool') return { pool: o.source.pool, owned: false };
  const pool = ownPool({
    connectionString: o.source.url,
    max: o.source.poolSize,
    statementTimeoutMs: o.statementTimeoutMs,
    applicationName: `coco/${o.schema}`,
  });
  return { pool, owned: true };
}

/** The `LEASE_LOST` error of a node that was fenced (or never registered). */
export function leaseLost(nodeId: string, what: string): CocoError {
  return new CocoError(
    ErrorCode.LeaseLost,
    `${what}: node "${nodeId}" no longer holds its lease (it expired and another node fenced it, ` +
      'the node was closed, or another process opened the same node id)',
    { details: { nodeId } },
  );
}

const TRANSITION_PREFIX = 'ILLEGAL_TRANSITION|';

/**
 * Maps an error raised inside `apply`: the transition triggers' SQLSTATE CO001 (message
 * `ILLEGAL_TRANSITION|machine|subject|from|to`) becomes an {@link IllegalTransitionError},
 * anything else `STORE_FAILED`.
 */
export function applyError(error: unknown): CocoError {
  const e = error as { code?: unknown; message?: unknown } | null;
  if (
    e?.code === TRANSITION_SQLSTATE &&
    typeof e.message === 'string' &&
    e.message.startsWith(TRANSITION_PREFIX)
  ) {
    const [machine = '?', subject = '?', from = '?', to = '?'] = e.message
      .slice(TRANSITION_PREFIX.length)
      .split('|');
    return new IllegalTransitionError(machine, from, to, subject);
  }
  if (e?.code === UNIQUE_VIOLATION && (error as { constraint?: unknown }).constraint === KEY_INDEX)
    return new IdempotencyKeyTakenError(error);
  if (typeof e?.code === 'string' && REFUSED_CLASSES.has(e.code.slice(0, 2)))
    return new BatchRefusedError(typeof e.message === 'string' ? e.message : e.code, error);
  return storeFailed('apply failed, nothing of the batch was stored', error);
}

/**
 * The SQLSTATE classes of a batch refused for what it holds, on every try: 22 data exception (a
 * value the column cannot hold: U+0000 in text, a number out of range), 23 integrity constraint
 * violation, 54 program limit exceeded (a value or a statement too large).
 */
const REFUSED_CLASSES: ReadonlySet<string> = new Set(['22', '23', '54']);

/** PostgreSQL's `unique_violation`. */
const UNIQUE_VIOLATION = '23505';
/** The unique index of the commands' idempotency keys (0001_init.sql). */
const KEY_INDEX = 'commands_idempotency';

/** The pause before reconnection attempt `attempt` (0-based): doubling, capped, with jitter. */
export function backoff(attempt: number): number {
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(attempt, 16));
  // Jitter: nodes that lost the server together do not all come back in the same instant.
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

/** A new store id: 'c' and 10 lowercase hex digits (no '-', since it prefixes agent task ids). */
export function newStoreId(): string {
  return `c${randomBytes(5).toString('hex')}`;
}

/** Replaces the schema placeholder of a migration file with the quoted schema. */
export function migrationSql(sql: string, schema: string): string {
  return sql.replaceAll(/:COCO_SCHEMA\b/g, quoteIdent(schema));
}

/**
 * Creates the schema if missing and applies pending migrations, in one transaction on `client`
 * under `pg_advisory_xact_lock` keyed on the schema name: concurrent migrators (nodes starting
 * at once) take turns, and the later ones find everything applied. The lock is taken before
 * anything else, since even `CREATE SCHEMA IF NOT EXISTS` fails when two run at once. Creates
 * the store id once. Refuses a schema migrated by newer code.
 */
export async function migrateSchema(
  client: pg.ClientBase,
  schema: string,
): Promise<MigrationReport & { storeId: string }> {
  const s = quoteIdent(schema);
  const latest = migrations.at(-1)?.version ?? 0;
  await client.query('BEGIN');
  try {
    // Migrations may take longer than a statement should (an index on a big table).
    await client.query('SET LOCAL statement_timeout = 0');
    // hashtextextended: a 64-bit key from the schema, so stores of other schemas never wait.
    await client.query(
      withoutDeadline('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
        `coco:store:${schema}`,
      ]),
    );
    // Looked up first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the database
    // even when the schema exists, and a role may only have been granted the schema.
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${s}.coco_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const rows = await client.query<{ version: number }>(
      `SELECT version FROM ${s}.coco_migrations ORDER BY version`,
    );
    const done = new Set(rows.rows.map((r) => Number(r.version)));
    const newest = Math.max(0, ...done);
    if (newest > latest) {
      throw new CocoError(
        ErrorCode.StoreFailed,
        `schema ${schema} is at version ${newest}, newer than this code knows (${latest}); upgrade coco`,
        { details: { schema, version: newest, known: latest } },
      );
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await client.query(withoutDeadline(migrationSql(m.sql, schema)));
      await client.query(`INSERT INTO ${s}.coco_migrations (version, name) VALUES ($1, $2)`, [
        m.version,
        m.name,
      ]);
      applied.push(m.version);
    }
    await client.query(
      `INSERT INTO ${s}.coco_meta (key, value) VALUES ('store_id', $1) ON CONFLICT (key) DO NOTHING`,
      [newStoreId()],
    );
    const id = await client.query<{ value: string }>(
      `SELECT value FROM ${s}.coco_meta WHERE key = 'store_id'`,
    );
    await client.query('COMMIT');
    return { applied, current: latest, storeId: String(id.rows[0]?.value) };
  } catch (error) {
    // A lost connection has nothing to roll back (and one past its deadline would queue it).
    if (!isConnectionError(error)) await client.query('ROLLBACK').catch(() => undefined);
    throw storeFailed('migration failed', error);
  }
}
