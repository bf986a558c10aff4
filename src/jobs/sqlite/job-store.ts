/**
 * The SQLite job store: the job monitor's tables (`job_jobs`, `job_steps`, `coco_job_meta`) on
 * the same database file as the engine's store, through a second connection.
 *
 * Both connections write the same WAL file, so they take turns on SQLite's single write lock:
 * this connection sets a busy timeout and waits while the engine commits (and the engine waits
 * for ours). Each {@link JobStore.apply} is one `BEGIN IMMEDIATE` transaction, so a monitor
 * group commit takes the lock once.
 *
 * @example
 * ```ts
 * const jobs = sqliteJobStore({ path: './coco.db' }); // the engine's file
 * const monitor = createJobMonitor({ engine, store: jobs });
 * ```
 * @module
 */
import type Database from 'better-sqlite3';
import { systemClock, type Clock } from '../../core/clock.js';
import { CocoError, ErrorCode } from '../../core/errors.js';
import { migrations } from '../../generated/jobs-sqlite-migrations.js';
import { DEFAULT_BUSY_TIMEOUT_MS, connect, storeFailed } from '../../db/sqlite.js';
import { z } from 'zod';
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
  type Step,
} from '../port.js';
import {
  oldJobs,
  prepareJobRetention,
  pruneJobRows,
  type JobRetentionStatements,
} from './retention.js';
import {
  JOB_COLUMNS,
  STEP_COLUMNS,
  columnList,
  forwardOnly,
  jobRows,
  type Column,
} from '../rows.js';

/** SQLite hands integers over as numbers and flags as 0/1. */
const { jobValues, parseJobRow, parseStepRow, stepValues } = jobRows({
  int: z.number().int(),
  flag: z.union([z.literal(0), z.literal(1)]).transform((v) => v === 1),
  flagValue: (value) => (value ? 1 : 0),
});

/** Options of {@link sqliteJobStore}. */
export interface SqliteJobStoreOptions {
  /** Path of the database file: the engine store's file. */
  readonly path: string;
  /** @default 5000 (see the engine store's DEFAULT_BUSY_TIMEOUT_MS) */
  readonly busyTimeoutMs?: number;
  /**
   * `NORMAL` is the default here, unlike the engine's store: the job tables are a derived view
   * that the monitor rebuilds from the engine's tables on start (reconcile), so a transaction
   * lost to a power failure costs nothing but a rewrite, while skipping the fsync of every
   * monitor commit keeps the view from competing with the engine for the disk.
   * @default 'NORMAL'
   */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** Time source of the migration ledger. @default systemClock */
  readonly clock?: Clock;
}

/** Default page size of {@link JobStore.listJobs}. */
export const DEFAULT_JOB_LIST_LIMIT = 100;
/** Largest page of {@link JobStore.listJobs}; bigger limits are capped to it. */
export const MAX_JOB_LIST_LIMIT = 1_000;
/** Page size when listing running job ids (bounded memory per query, few round trips). */
const RUNNING_PAGE = 1_000;
/** The statement cache of `listJobs` is dropped past this many query shapes. */
const LIST_CACHE_MAX = 32;

const LEDGER_DDL =
  'CREATE TABLE IF NOT EXISTS coco_jobs_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)';

type Stmt = Database.Statement<unknown[], unknown>;

interface Statements {
  readonly upsertJob: Stmt;
  readonly upsertStep: Stmt;
  readonly raiseWatermark: Stmt;
  readonly getWatermark: Stmt;
  readonly getJob: Stmt;
  readonly getSteps: Stmt;
  readonly runningIds: Stmt;
  readonly retention: JobRetentionStatements;
}

function upsert(table: string, columns: readonly Column[], key: string): string {
  const updates = columns
    .filter((c) => !key.split(', ').includes(c.name))
    .map((c) => `${c.name} = excluded.${c.name}`);
  return (
    `INSERT INTO ${table} (${columnList(columns)}) VALUES (${columns.map(() => '?').join(', ')}) ` +
    `ON CONFLICT (${key}) DO UPDATE SET ${updates.join(', ')} WHERE ${forwardOnly(table, 'excluded')}`
  );
}

function prepare(db: Database.Database): Statements {
  return {
    upsertJob: db.prepare(upsert('job_jobs', JOB_COLUMNS, 'id')),
    upsertStep: db.prepare(upsert('job_steps', STEP_COLUMNS, 'job_id, key')),
    raiseWatermark: db.prepare(
      "INSERT INTO coco_job_meta (key, value) VALUES ('watermark', ?) ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
    ),
    getWatermark: db.prepare("SELECT value FROM coco_job_meta WHERE key = 'watermark'").pluck(),
    getJob: db.prepare(`SELECT ${columnList(JOB_COLUMNS)} FROM job_jobs WHERE id = ?`),
    getSteps: db.prepare(`SELECT ${columnList(STEP_COLUMNS)} FROM job_steps WHERE job_id = ?`),
    runningIds: db
      .prepare(
        "SELECT id FROM job_jobs WHERE status = 'running' AND id < ? ORDER BY id DESC LIMIT ?",
      )
      .pluck(),
    retention: prepareJobRetention(db),
  };
}

/** A {@link JobStore} on a SQLite file. */
export class SqliteJobStore implements JobStore {
  readonly #settings: { path: string; synchronous: 'FULL' | 'NORMAL'; busyTimeoutMs: number };
  readonly #clock: Clock;
  #db: Database.Database | undefined;
  #q: Statements | undefined;
  #applyTx: Database.Transaction<(changes: JobChanges) => void> | undefined;
  #closed = false;
  readonly #listCache = new Map<string, Stmt>();

  constructor(options: SqliteJobStoreOptions) {
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    const synchronous = options.synchronous ?? 'NORMAL';
    if (typeof options.path !== 'string' || options.path === '' || options.path === ':memory:') {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        'sqliteJobStore: path must name a database file',
      );
    }
    if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        'sqliteJobStore: busyTimeoutMs must be a non-negative integer',
      );
    }
    if (synchronous !== 'FULL' && synchronous !== 'NORMAL') {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `sqliteJobStore: synchronous must be 'FULL' or 'NORMAL', not ${String(synchronous)}`,
      );
    }
    this.#settings = { path: options.path, synchronous, busyTimeoutMs };
    this.#clock = options.clock ?? systemClock;
  }

  #conn(): Database.Database {
    if (this.#closed)
      throw new CocoError(ErrorCode.StoreFailed, `job store ${this.#settings.path} is closed`);
    this.#db ??= connect(this.#settings);
    return this.#db;
  }

  #ready(): Statements {
    if (this.#q === undefined)
      throw new CocoError(
        ErrorCode.StoreFailed,
        `job store ${this.#settings.path} is not open; call open() first`,
      );
    return this.#q;
  }

  /**
   * Applies pending migrations in one `BEGIN IMMEDIATE` transaction, so that concurrent openers
   * serialise on the write lock and the later one finds them applied.
   */
  open(): Promise<JobStoreOpenReport> {
    return settle(() => this.#open());
  }

  #open(): JobStoreOpenReport {
    const db = this.#conn();
    const latest = migrations.at(-1)?.version ?? 0;
    const run = db.transaction((): JobStoreOpenReport => {
      db.exec(LEDGER_DDL);
      const rows: unknown[] = db
        .prepare('SELECT version FROM coco_jobs_migrations ORDER BY version')
        .pluck()
        .all();
      const done = new Set(rows.map((v) => Number(v)));
      const newest = Math.max(0, ...done);
      if (newest > latest) {
        throw new CocoError(
          ErrorCode.StoreFailed,
          `the job tables are at schema version ${newest}, newer than this code knows (${latest}); upgrade coco`,
        );
      }
      const applied: number[] = [];
      const record = db.prepare(
        'INSERT INTO coco_jobs_migrations (version, name, applied_at) VALUES (?, ?, ?)',
      );
      for (const m of migrations) {
        if (done.has(m.version)) continue;
        db.exec(m.sql);
        record.run(m.version, m.name, this.#clock.now());
        applied.push(m.version);
      }
      return { applied, current: latest };
    });
    let report: JobStoreOpenReport;
    try {
      report = run.immediate();
    } catch (error) {
      throw storeFailed('job tables: migration failed', error);
    }
    if (this.#q === undefined) {
      try {
        const q = prepare(db);
        this.#q = q;
        this.#applyTx = db.transaction((changes: JobChanges) => {
          for (const j of changes.jobs) q.upsertJob.run(jobValues(j));
          for (const s of changes.steps) q.upsertStep.run(stepValues(s));
          if (changes.watermark !== undefined) q.raiseWatermark.run(changes.watermark);
        });
      } catch (error) {
        throw storeFailed('job tables: cannot prepare statements', error);
      }
    }
    return report;
  }

  apply(changes: JobChanges): Promise<void> {
    return settle(() => {
      this.#ready();
      try {
        this.#applyTx!.immediate(changes);
      } catch (error) {
        throw storeFailed('job tables: apply failed, nothing of the changes was stored', error);
      }
    });
  }

  getJob(id: number): Promise<Job | null> {
    return settle(() => {
      const row = this.#read((q) => q.getJob.get(id));
      return row === undefined ? null : parseJobRow(row);
    });
  }

  listJobs(query: JobQuery = {}): Promise<Job[]> {
    return settle(() => this.#listJobs(query));
  }

  #listJobs(query: JobQuery): Job[] {
    const limit = query.limit ?? DEFAULT_JOB_LIST_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `listJobs: limit must be a positive integer, not ${limit}`,
      );
    }
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.status !== undefined) {
      where.push(
        query.status.length === 0 ? '0' : `status IN (${query.status.map(() => '?').join(', ')})`,
      );
      params.push(...query.status);
    }
    if (query.type !== undefined) {
      where.push('type = ?');
      params.push(query.type);
    }
    if (query.beforeId !== undefined) {
      where.push('id < ?');
      params.push(query.beforeId);
    }
    params.push(Math.min(limit, MAX_JOB_LIST_LIMIT));
    const clause = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
    const sql = `SELECT ${columnList(JOB_COLUMNS)} FROM job_jobs${clause} ORDER BY id DESC LIMIT ?`;
    const rows = this.#read(() => {
      let stmt = this.#listCache.get(sql);
      if (stmt === undefined) {
        if (this.#listCache.size >= LIST_CACHE_MAX) this.#listCache.clear();
        stmt = this.#conn().prepare<unknown[], unknown>(sql);
        this.#listCache.set(sql, stmt);
      }
      return stmt.all(params);
    });
    return rows.map(parseJobRow);
  }

  getSteps(jobId: number): Promise<Step[]> {
    return settle(() => this.#read((q) => q.getSteps.all(jobId)).map(parseStepRow));
  }

  listRunningJobIds(): Promise<number[]> {
    return settle(() => this.#listRunningJobIds());
  }

  #listRunningJobIds(): number[] {
    const ids: number[] = [];
    let before = Number.MAX_SAFE_INTEGER;
    for (;;) {
      const page = this.#read((q) => q.runningIds.all(before, RUNNING_PAGE));
      for (const id of page) {
        if (typeof id !== 'number' || !Number.isSafeInteger(id)) {
          throw new CocoError(
            ErrorCode.CorruptRow,
            `job_jobs row has a non-integer id (${String(id)})`,
          );
        }
        ids.push(id);
        before = id;
      }
      if (page.length < RUNNING_PAGE) return ids;
    }
  }

  pruneJobs(ids: readonly number[], dryRun = false): Promise<JobPruneCounts> {
    return settle(() => {
      checkJobIds(ids);
      const q = this.#ready();
      try {
        return this.#conn()
          .transaction(() => pruneJobRows(q.retention, ids, dryRun))
          .immediate();
      } catch (error) {
        throw storeFailed('job tables: prune failed, nothing was deleted', error);
      }
    });
  }

  listOldJobs(query: OldJobQuery): Promise<JobAge[]> {
    return settle(() => {
      checkOldJobQuery(query);
      return this.#read((q) => oldJobs(q.retention, query));
    });
  }

  getWatermark(): Promise<number | null> {
    return settle(() => {
      const value: unknown = this.#read((q) => q.getWatermark.get());
      if (value === undefined) return null;
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
        throw new CocoError(
          ErrorCode.CorruptRow,
          `coco_job_meta row watermark is not an integer (${JSON.stringify(value) ?? typeof value})`,
        );
      }
      return value;
    });
  }

  /** Runs a read, mapping driver errors to `STORE_FAILED`. */
  #read<T>(fn: (q: Statements) => T): T {
    const q = this.#ready();
    try {
      return fn(q);
    } catch (error) {
      throw storeFailed('job tables: read failed', error);
    }
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.#closed) return;
      this.#closed = true;
      this.#q = undefined;
      this.#applyTx = undefined;
      this.#listCache.clear();
      this.#db?.close();
      this.#db = undefined;
    });
  }
}

/** Runs synchronous driver work behind the port's promise (a throw becomes a rejection). */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

/** Creates a SQLite job store. Nothing is opened until {@link JobStore.open}. */
export function sqliteJobStore(options: SqliteJobStoreOptions): SqliteJobStore {
  return new SqliteJobStore(options);
}
