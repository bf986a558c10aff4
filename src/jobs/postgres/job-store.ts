/**
 * The PostgreSQL job store: the job monitor's tables (`job_jobs`, `job_steps`, `coco_job_meta`)
 * and their migration ledger (`coco_jobs_migrations`) in one schema (`coco` by default, which
 * can be the engine store's), through a pool of its own or one it is given.
 *
 * Every statement names its tables with the schema, so the store never changes the settings of
 * a pooled connection (the pool may be shared); only the migrations run with a transaction-local
 * `search_path`. Each {@link JobStore.apply} is one statement — set-based upserts fed by `unnest`
 * arrays, joined by data-modifying CTEs — and so one transaction and one round trip, whatever
 * the number of rows.
 *
 * @example
 * ```ts
 * const jobs = postgresJobStore({ url: 'postgres://coco@db/coco' });
 * const monitor = createJobMonitor({ engine, store: jobs });
 * ```
 * @module
 */
import type pg from 'pg';
import { whenAborted, type Clock } from '../../core/clock.js';
import { CocoError, ErrorCode } from '../../core/errors.js';
import { migrations } from '../../generated/jobs-postgres-migrations.js';
import {
  checkJobIds,
  checkOldJobQuery,
  type Job,
  type JobAge,
  type JobChanges,
  type JobPruneCounts,
  type JobQuery,
  type JobStore,
  type JobStoreOpenReport,
  type OldJobQuery,
  type PoolFigures,
  type Step,
} from '../port.js';
import { jobRetentionSql, oldJobRows, oldJobValues } from './retention.js';
import {
  compileJobStoreOptions,
  isTransient,
  quoteIdent,
  type PostgresJobStoreOptions,
} from './connection.js';
import {
  destroyConnections,
  endPool,
  isConnectionError,
  poolFigures,
  sleep,
  storeFailed,
  withoutDeadline,
} from '../../db/postgres.js';
import {
  JOB_COLUMNS,
  STEP_COLUMNS,
  columnList as list,
  forwardOnly,
  type Column,
} from '../rows.js';
import { int8, jobArrays, parseJobRow, parseStepRow, stepArrays } from './rows.js';

export type { PostgresJobStoreOptions } from './connection.js';

/** Default page size of {@link JobStore.listJobs}. */
export const DEFAULT_JOB_LIST_LIMIT = 100;
/** Largest page of {@link JobStore.listJobs}; bigger limits are capped to it. */
export const MAX_JOB_LIST_LIMIT = 1_000;
/** Page size when listing running job ids (bounded memory per query, few round trips). */
const RUNNING_PAGE = 1_000;

/**
 * Tries of an `apply` (or a read) that fails on a lost connection, and the delays between them
 * (100, 400, 1600 ms). The pool drops a broken connection, so when the server closed an idle one
 * (restart, failover, a proxy's idle timeout) the first retry on a new connection passes at once:
 * hence the short first delay. A server that is restarting takes seconds, which the longer ones
 * cover. Past ~2 s the store gives up: the tables are a derived view, and the monitor keeps the
 * changes and writes them later with its own back-off, so waiting here would only hold up its
 * queue and its stop (a reader gets `STORE_FAILED`, retryable). Retrying is safe even when the
 * commit's outcome is unknown: `apply` is idempotent (upserts that replace, and a watermark that
 * only rises), and reads change nothing.
 */
const APPLY_ATTEMPTS = 4;
const APPLY_RETRY_BASE_MS = 100;
const APPLY_RETRY_FACTOR = 4;

/**
 * Most rows (jobs and steps) of one statement of an `apply`. The monitor folds everything it has
 * queued into one `apply`, so one far behind (stopped for minutes, a slow server) could send a
 * statement of any size; slices of 5,000 rows (an upsert of ~0.1 s) keep each statement well
 * inside a statement timeout, all in one transaction, so the tables still hold a prefix of the
 * engine's history.
 */
const ROWS_PER_STATEMENT = 5_000;

/** The PostgreSQL type of each column kind (the element type of its `unnest` array). */
const PG_TYPES = { int: 'bigint', text: 'text', real: 'float8', flag: 'boolean' } as const;

/**
 * `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE` of every column: the whole row is
 * replaced, as the SQLite store's upserts do, unless that would take it back (see
 * {@link forwardOnly}). Parameters start at `$first`.
 */
function upsertSql(
  table: string,
  columns: readonly Column[],
  key: string[],
  first: number,
): string {
  const arrays = columns.map((c, i) => `$${first + i}::${PG_TYPES[c.kind]}[]`).join(', ');
  const updates = columns
    .filter((c) => !key.includes(c.name))
    .map((c) => `${c.name} = EXCLUDED.${c.name}`)
    .join(', ');
  return (
    `INSERT INTO ${table} AS cur (${list(columns)}) SELECT * FROM unnest(${arrays}) ` +
    `ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${updates} WHERE ${forwardOnly('cur', 'EXCLUDED')}`
  );
}

/**
 * Runs `fn` on `client` between BEGIN and COMMIT (ROLLBACK when it throws) and gives the client
 * back, destroyed if its connection failed.
 */
async function inTransaction<T>(
  client: pg.PoolClient,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  // A checked-out client has no 'error' listener of the pool's: a connection lost between two
  // statements would otherwise crash the process. The statement in flight fails anyway.
  let lost: unknown;
  const onError = (error: unknown): void => void (lost ??= error);
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    // A lost connection (or one past its deadline, still waiting) has nothing to roll back.
    if (isConnectionError(error)) lost ??= error;
    lost ??= await client.query('ROLLBACK').then(
      () => undefined,
      (e: unknown) => e,
    );
    throw error;
  } finally {
    client.off('error', onError);
    // A connection that failed is destroyed rather than returned to the pool.
    client.release(lost !== undefined);
  }
}

/** A {@link JobStore} on PostgreSQL. */
export class PostgresJobStore implements JobStore {
  readonly #pool: pg.Pool;
  readonly #ownsPool: boolean;
  readonly #schema: string;
  readonly #clock: Clock;
  /** Qualified table names. */
  readonly #t: { jobs: string; steps: string; meta: string; ledger: string };
  readonly #retention: ReturnType<typeof jobRetentionSql>;
  #opened = false;
  #closed = false;
  /** Calls under way (apply, reads), which close lets end before it ends the pool. */
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(options: PostgresJobStoreOptions) {
    const o = compileJobStoreOptions(options);
    this.#pool = o.pool;
    this.#ownsPool = o.ownsPool;
    this.#schema = o.schema;
    this.#clock = o.clock;
    const s = quoteIdent(o.schema);
    this.#t = {
      jobs: `${s}.job_jobs`,
      steps: `${s}.job_steps`,
      meta: `${s}.coco_job_meta`,
      ledger: `${s}.coco_jobs_migrations`,
    };
    this.#retention = jobRetentionSql(this.#t);
  }

  /** The schema holding the tables. */
  get schema(): string {
    return this.#schema;
  }

  #checkOpen(): void {
    if (this.#closed)
      throw new CocoError(ErrorCode.StoreFailed, `job store (schema ${this.#schema}) is closed`);
    if (!this.#opened)
      throw new CocoError(
        ErrorCode.StoreFailed,
        `job store (schema ${this.#schema}) is not open; call open() first`,
      );
  }

  /**
   * Creates the schema if missing and applies pending migrations, all in one transaction under
   * an advisory lock keyed on the schema: concurrent openers (several nodes starting at once)
   * take turns, and the later ones find the migrations applied.
   */
  async open(): Promise<JobStoreOpenReport> {
    if (this.#closed)
      throw new CocoError(ErrorCode.StoreFailed, `job store (schema ${this.#schema}) is closed`);
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw storeFailed('job tables: cannot connect', error);
    }
    try {
      const report = await inTransaction(client, (c) => this.#migrate(c));
      this.#opened = true;
      return report;
    } catch (error) {
      throw storeFailed('job tables: migration failed', error);
    }
  }

  async #migrate(client: pg.PoolClient): Promise<JobStoreOpenReport> {
    const latest = migrations.at(-1)?.version ?? 0;
    // A migration may take longer than a statement should (an index on a big table), and may
    // wait for another opener's: no statement timeout, no client deadline.
    await client.query('SET LOCAL statement_timeout = 0');
    // hashtextextended: a 64-bit key from the schema, so stores of other schemas never wait.
    await client.query(
      withoutDeadline('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
        `coco:jobs:${this.#schema}`,
      ]),
    );
    // Looked up first: CREATE SCHEMA IF NOT EXISTS checks the CREATE privilege on the database
    // even when the schema exists, and a role may only have been granted the schema.
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [
      this.#schema,
    ]);
    if (exists.rowCount === 0) await this.#createSchema(client);
    await client.query(`SET LOCAL search_path TO ${quoteIdent(this.#schema)}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${this.#t.ledger} (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`,
    );
    const { rows } = await client.query<{ version: number }>(
      `SELECT version FROM ${this.#t.ledger} ORDER BY version`,
    );
    const done = new Set(rows.map((r) => Number(r.version)));
    const newest = Math.max(0, ...done);
    if (newest > latest) {
      throw new CocoError(
        ErrorCode.StoreFailed,
        `the job tables in schema ${this.#schema} are at version ${newest}, newer than this code knows (${latest}); upgrade coco`,
      );
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await client.query(withoutDeadline(m.sql));
      await client.query(
        `INSERT INTO ${this.#t.ledger} (version, name, applied_at) VALUES ($1, $2, $3)`,
        [m.version, m.name, Math.trunc(this.#clock.now())],
      );
      applied.push(m.version);
    }
    return { applied, current: latest };
  }

  /**
   * Creates the schema. Someone not under our lock (the engine's PostgreSQL store opening the
   * same schema, say) may create it at the same moment: CREATE SCHEMA IF NOT EXISTS then fails on
   * the catalog's unique index, which means the schema is there, so the migration goes on.
   */
  async #createSchema(client: pg.PoolClient): Promise<void> {
    await client.query('SAVEPOINT coco_create_schema');
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.#schema)}`);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code !== '23505' && code !== '42P06') throw error; // unique_violation, duplicate_schema
      await client.query('ROLLBACK TO SAVEPOINT coco_create_schema');
    }
  }

  /**
   * Upserts in one transaction: one statement, or several for a change of more than
   * {@link ROWS_PER_STATEMENT} rows. A lost connection is retried a few times (see
   * {@link APPLY_ATTEMPTS}); anything else fails at once with `STORE_FAILED`.
   */
  async apply(changes: JobChanges): Promise<void> {
    this.#checkOpen();
    const statements = this.#applyStatements(changes);
    const [first] = statements;
    if (first === undefined) return;
    await this.#again(
      (tries) => `job tables: apply failed${tries}, nothing of the changes was stored`,
      async () => {
        if (statements.length === 1) return void (await this.#pool.query(first));
        await inTransaction(await this.#pool.connect(), async (client) => {
          for (const statement of statements) await client.query(statement);
        });
      },
    );
  }

  /**
   * The statements of an `apply`: one when it has at most {@link ROWS_PER_STATEMENT} rows, else
   * one per such slice of its jobs, then of its steps (run in one transaction), the watermark
   * with the last: it is written with the rows it stands for.
   */
  #applyStatements(changes: JobChanges): pg.QueryConfig[] {
    const { jobs, steps, watermark } = changes;
    const parts: JobChanges[] = [];
    if (jobs.length + steps.length <= ROWS_PER_STATEMENT) parts.push(changes);
    else {
      for (let i = 0; i < jobs.length; i += ROWS_PER_STATEMENT)
        parts.push({ jobs: jobs.slice(i, i + ROWS_PER_STATEMENT), steps: [] });
      for (let i = 0; i < steps.length; i += ROWS_PER_STATEMENT)
        parts.push({ jobs: [], steps: steps.slice(i, i + ROWS_PER_STATEMENT) });
      const last = parts.pop()!;
      parts.push({ ...last, watermark });
    }
    return parts.flatMap((part) => this.#applyStatement(part) ?? []);
  }

  /**
   * Runs `run`, tried again while it fails on a lost connection (or a transaction conflict), up
   * to {@link APPLY_ATTEMPTS} times; then fails with `STORE_FAILED` saying `what(tries)`.
   */
  async #again<T>(what: (tries: string) => string, run: () => Promise<T>): Promise<T> {
    const call = this.#tries(what, run);
    this.#inFlight.add(call);
    try {
      return await call;
    } finally {
      this.#inFlight.delete(call);
    }
  }

  async #tries<T>(what: (tries: string) => string, run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        if (attempt >= APPLY_ATTEMPTS || !isTransient(error) || this.#closed) {
          throw storeFailed(what(attempt === 1 ? '' : ` (after ${attempt} tries)`), error);
        }
      }
      await sleep(APPLY_RETRY_BASE_MS * APPLY_RETRY_FACTOR ** (attempt - 1));
      this.#checkOpen();
    }
  }

  /** The single statement of an `apply`, or null when there is nothing to write. */
  #applyStatement(changes: JobChanges): pg.QueryConfig | null {
    const parts: string[] = [];
    const values: unknown[] = [];
    if (changes.jobs.length > 0) {
      parts.push(upsertSql(this.#t.jobs, JOB_COLUMNS, ['id'], values.length + 1));
      values.push(...jobArrays(changes.jobs));
    }
    if (changes.steps.length > 0) {
      parts.push(upsertSql(this.#t.steps, STEP_COLUMNS, ['job_id', 'key'], values.length + 1));
      values.push(...stepArrays(changes.steps));
    }
    if (changes.watermark !== undefined) {
      values.push(changes.watermark);
      parts.push(
        `INSERT INTO ${this.#t.meta} AS m (key, value) VALUES ('watermark', $${values.length}::bigint) ` +
          'ON CONFLICT (key) DO UPDATE SET value = GREATEST(m.value, EXCLUDED.value)',
      );
    }
    if (parts.length === 0) return null;
    // Data-modifying CTEs all run, to completion, within the statement's one transaction.
    const ctes = parts.slice(0, -1).map((p, i) => `w${i} AS (${p})`);
    const text = (ctes.length === 0 ? '' : `WITH ${ctes.join(', ')} `) + parts.at(-1)!;
    return { text, values };
  }

  async getJob(id: number): Promise<Job | null> {
    this.#checkOpen();
    if (!Number.isSafeInteger(id)) return null; // no such row (and not a bigint parameter)
    const rows = await this.#read(
      `SELECT ${list(JOB_COLUMNS)} FROM ${this.#t.jobs} WHERE id = $1`,
      [id],
    );
    return rows[0] === undefined ? null : parseJobRow(rows[0]);
  }

  async listJobs(query: JobQuery = {}): Promise<Job[]> {
    const limit = query.limit ?? DEFAULT_JOB_LIST_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `listJobs: limit must be a positive integer, not ${limit}`,
      );
    }
    if (query.beforeId !== undefined && !Number.isFinite(query.beforeId)) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `listJobs: beforeId must be a finite number, not ${query.beforeId}`,
      );
    }
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.status !== undefined) {
      params.push([...query.status]);
      where.push(`status = ANY($${params.length}::text[])`);
    }
    if (query.type !== undefined) {
      params.push(query.type);
      where.push(`type = $${params.length}`);
    }
    if (query.beforeId !== undefined) {
      // Ids are integers: below 2.5 is below 3, and the bigint parameter keeps the index usable.
      params.push(Math.ceil(query.beforeId));
      where.push(`id < $${params.length}::bigint`);
    }
    params.push(Math.min(limit, MAX_JOB_LIST_LIMIT));
    const clause = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
    const rows = await this.#read(
      `SELECT ${list(JOB_COLUMNS)} FROM ${this.#t.jobs}${clause} ORDER BY id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(parseJobRow);
  }

  async getSteps(jobId: number): Promise<Step[]> {
    this.#checkOpen();
    if (!Number.isSafeInteger(jobId)) return [];
    const rows = await this.#read(
      `SELECT ${list(STEP_COLUMNS)} FROM ${this.#t.steps} WHERE job_id = $1`,
      [jobId],
    );
    return rows.map(parseStepRow);
  }

  async listRunningJobIds(): Promise<number[]> {
    const ids: number[] = [];
    let before = Number.MAX_SAFE_INTEGER;
    for (;;) {
      const page = await this.#read(
        `SELECT id FROM ${this.#t.jobs} WHERE status = 'running' AND id < $1 ORDER BY id DESC LIMIT $2`,
        [before, RUNNING_PAGE],
      );
      for (const row of page) {
        const id = int8.safeParse(row.id);
        if (!id.success) {
          throw new CocoError(
            ErrorCode.CorruptRow,
            `job_jobs row has a non-integer id (${String(row.id)})`,
          );
        }
        ids.push(id.data);
        before = id.data;
      }
      if (page.length < RUNNING_PAGE) return ids;
    }
  }

  async pruneJobs(ids: readonly number[], dryRun = false): Promise<JobPruneCounts> {
    this.#checkOpen();
    checkJobIds(ids);
    if (ids.length === 0) return { jobs: 0, steps: 0 };
    let rows: Record<string, unknown>[];
    try {
      rows = (
        await this.#pool.query<Record<string, unknown>>(
          dryRun ? this.#retention.count : this.#retention.prune,
          [[...ids]],
        )
      ).rows;
    } catch (error) {
      throw storeFailed('job tables: prune failed, nothing was deleted', error);
    }
    return { jobs: Number(rows[0]?.jobs ?? 0), steps: Number(rows[0]?.steps ?? 0) };
  }

  async listOldJobs(query: OldJobQuery): Promise<JobAge[]> {
    this.#checkOpen();
    checkOldJobQuery(query);
    return oldJobRows(await this.#read(this.#retention.old, oldJobValues(query)));
  }

  async getWatermark(): Promise<number | null> {
    const rows = await this.#read(`SELECT value FROM ${this.#t.meta} WHERE key = 'watermark'`, []);
    if (rows[0] === undefined) return null;
    const value = int8.safeParse(rows[0].value);
    if (!value.success) {
      throw new CocoError(
        ErrorCode.CorruptRow,
        `coco_job_meta row watermark is not an integer (${String(rows[0].value)})`,
      );
    }
    return value.data;
  }

  /** Runs a read, tried again on a lost connection as `apply` is; errors become `STORE_FAILED`. */
  async #read(text: string, values: unknown[]): Promise<Record<string, unknown>[]> {
    this.#checkOpen();
    const result = await this.#again(
      (tries) => `job tables: read failed${tries}`,
      () => this.#pool.query<Record<string, unknown>>(text, values),
    );
    return result.rows;
  }

  /** The pool's connections now (a pool given in the options too). */
  connections(): PoolFigures {
    return poolFigures(this.#pool);
  }

  /**
   * Ends the pool if the store opened it (a pool given in the options is left as it is), once the
   * calls in flight have ended (a pool ended under a call waiting for a connection would leave it
   * waiting). Once `options.signal` aborts, the pool's connections are destroyed: those calls
   * fail at once (no more tries: the store is closed).
   */
  async close(options: { readonly signal?: AbortSignal } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#opened = false;
    if (!this.#ownsPool) return;
    void whenAborted(options.signal).then(() => destroyConnections(this.#pool));
    await Promise.allSettled([...this.#inFlight]);
    await endPool(this.#pool);
  }
}

/**
 * Creates a PostgreSQL job store. Nothing is connected until {@link JobStore.open}.
 * Throws `INVALID_OPTIONS` naming the bad field.
 */
export function postgresJobStore(options: PostgresJobStoreOptions): PostgresJobStore {
  return new PostgresJobStore(options);
}
