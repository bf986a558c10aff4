/**
 * The SQLite file behind the agent's task table: opening it (WAL, an exclusive lock held for
 * the agent's life), its schema, and typed, validated reads and writes. What the rows mean
 * (restart marking, idempotent starts, single-use ids) is the task table's business.
 *
 * @module
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { z } from 'zod';
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { UsedHow } from '../protocol/used-ids.js';
import { sqliteDriver } from '../db/drivers.js';

/** Name of the task table's SQLite file inside the agent's data directory. */
export const TASKS_FILE = 'agent-tasks.sqlite';

/**
 * How long opening the file waits for another process's lock. A previous agent process on the
 * same directory that is still shutting down gets a moment to let go; a live one keeps it, and
 * the second agent fails instead of sharing (and corrupting the meaning of) the task table.
 */
export const LOCK_WAIT_MS = 2_000;

/**
 * The file's schema, one entry per version: `MIGRATIONS[i]` brings a file from version `i` to
 * `i + 1` (`user_version` holds the version). Append only; an applied entry never changes.
 */
const MIGRATIONS: readonly string[] = [
  // 1: the tasks.
  `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
  CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL UNIQUE,
    verb TEXT NOT NULL,
    args TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    progress REAL NOT NULL,
    result TEXT,
    error TEXT,
    boot_id TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER
  ) STRICT;`,
  // 2: used task ids (stopped before their start arrived, or cleared): a start of one is refused.
  `
  CREATE TABLE used_ids (
    task_id TEXT PRIMARY KEY,
    how TEXT NOT NULL CHECK (how IN ('stopped', 'cleared')),
    at INTEGER NOT NULL
  ) STRICT;`,
];
const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings a file at version `from` to {@link SCHEMA_VERSION}, in one transaction. */
function migrate(db: Database.Database, from: number): void {
  db.transaction(() => {
    for (const statements of MIGRATIONS.slice(from)) db.exec(statements);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

/** A task's state as stored (`unknown` is never stored). */
export type StoredState = 'running' | 'succeeded' | 'failed' | 'cancelled';

/** A used task id, as loaded at open. */
export interface UsedId {
  readonly taskId: string;
  readonly how: UsedHow;
  /** When it was stopped or cleared (ms since the epoch). */
  readonly at: number;
}

/** A stored task, as loaded at open. */
export interface StoredTask {
  readonly taskId: string;
  readonly state: StoredState;
  readonly progress: number;
  readonly result: unknown;
  readonly error: ErrorInfo | undefined;
  /** The boot that started it. */
  readonly bootId: string;
}

const rowSchema = z.object({
  task_id: z.string(),
  state: z.enum(['running', 'succeeded', 'failed', 'cancelled']),
  progress: z.number(),
  result: z.string().nullable(),
  error: z.string().nullable(),
  boot_id: z.string(),
});
const errorSchema = z.object({
  code: z.string(),
  message: z.string(),
  details: z.unknown().optional(),
});
const metaSchema = z.object({ value: z.string() }).optional();
const usedRowSchema = z.object({
  task_id: z.string(),
  how: z.enum(['stopped', 'cleared']),
  at: z.number().int(),
});

/** JSON text of a value (`undefined` and unserialisable values become `null`). */
export function toJson(value: unknown): string {
  try {
    return JSON.stringify(value ?? null) ?? 'null';
  } catch {
    return 'null';
  }
}

function statements(db: Database.Database) {
  return {
    getMeta: db.prepare('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)'),
    all: db.prepare(
      'SELECT task_id, state, progress, result, error, boot_id FROM tasks ORDER BY seq',
    ),
    insert: db.prepare(
      `INSERT INTO tasks (task_id, verb, args, state, progress, boot_id, started_at)
       VALUES (?, ?, ?, 'running', 0, ?, ?)`,
    ),
    end: db.prepare(
      'UPDATE tasks SET state = ?, progress = ?, result = ?, error = ?, ended_at = ? WHERE task_id = ?',
    ),
    progress: db.prepare("UPDATE tasks SET progress = ? WHERE task_id = ? AND state = 'running'"),
    delete: db.prepare('DELETE FROM tasks WHERE task_id = ?'),
    allUsed: db.prepare('SELECT task_id, how, at FROM used_ids ORDER BY at, task_id'),
    markUsed: db.prepare(
      `INSERT INTO used_ids (task_id, how, at) VALUES (?, ?, ?)
       ON CONFLICT (task_id) DO UPDATE SET how = excluded.how, at = excluded.at`,
    ),
    forgetUsed: db.prepare('DELETE FROM used_ids WHERE task_id = ?'),
  };
}

/** The open task file. Every method throws what SQLite throws (the caller decides). */
export class TaskFile {
  readonly #db: Database.Database;
  readonly #sql: ReturnType<typeof statements>;

  private constructor(db: Database.Database) {
    this.#db = db;
    this.#sql = statements(db);
  }

  /**
   * Opens (creating if needed) `dataDir/agent-tasks.sqlite` and takes its lock for good.
   *
   * @throws CocoError `STORE_IN_USE` when another live process holds it, `STORE_FAILED` on
   *   I/O errors or a file written by a newer agent.
   */
  static open(dataDir: string, lockWaitMs: number = LOCK_WAIT_MS): TaskFile {
    const Driver = sqliteDriver();
    let db: Database.Database | undefined;
    try {
      mkdirSync(dataDir, { recursive: true });
      db = new Driver(join(dataDir, TASKS_FILE));
      db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(lockWaitMs))}`);
      // One agent process per directory: the lock is taken by the first write and kept.
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode: a commit survives the agent process crashing (the WAL is in the
      // OS's hands), only an OS crash or power loss may drop the last commits. Then a task
      // either is unknown (the engine reports it vanished) or is still "running" on disk and
      // fails with AGENT_RESTARTED at the next start: never a false success. FULL would fsync
      // every end, which a busy agent pays thousands of times per second.
      db.pragma('synchronous = NORMAL');
      const version = db.pragma('user_version', { simple: true });
      if (typeof version === 'number' && version > SCHEMA_VERSION) {
        throw new CocoError(
          ErrorCode.StoreFailed,
          `${dataDir}: task table version ${version} is newer than this agent (${SCHEMA_VERSION})`,
        );
      }
      migrate(db, typeof version === 'number' ? version : 0);
      return new TaskFile(db);
    } catch (error) {
      db?.close();
      if (error instanceof CocoError) throw error;
      const code = (error as { code?: unknown } | null)?.code;
      if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) {
        const message = `data directory ${dataDir} is in use by another agent process`;
        throw new CocoError(ErrorCode.StoreInUse, message, { cause: error });
      }
      const message = `cannot open the task table in ${dataDir}: ${String(error)}`;
      throw new CocoError(ErrorCode.StoreFailed, message, { cause: error });
    }
  }

  /** Runs `fn` in one transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  /** A value of the `meta` table (`agent_id`, `boot_id`). */
  getMeta(key: string): string | undefined {
    return metaSchema.parse(this.#sql.getMeta.get(key))?.value;
  }

  /** Sets a value of the `meta` table. */
  setMeta(key: string, value: string): void {
    this.#sql.setMeta.run(key, value);
  }

  /** Every stored task, in start order, validated. */
  loadAll(): StoredTask[] {
    return this.#sql.all.all().map((raw) => {
      const row = rowSchema.parse(raw);
      return {
        taskId: row.task_id,
        state: row.state,
        progress: row.progress,
        result: row.result === null ? undefined : (JSON.parse(row.result) as unknown),
        error: row.error === null ? undefined : errorSchema.parse(JSON.parse(row.error)),
        bootId: row.boot_id,
      };
    });
  }

  /** Stores a new task as running, started by `bootId` at `at`. */
  insertRunning(taskId: string, verb: string, args: unknown, bootId: string, at: number): void {
    this.#sql.insert.run(taskId, verb, toJson(args), bootId, at);
  }

  /** Records an end: `result` is stored for `succeeded` only, `error` when given. */
  end(
    taskId: string,
    state: Exclude<StoredState, 'running'>,
    progress: number,
    result: unknown,
    error: ErrorInfo | undefined,
    at: number,
  ): void {
    const resultText = state === 'succeeded' ? toJson(result) : null;
    const errorText = error === undefined ? null : toJson(error);
    this.#sql.end.run(state, progress, resultText, errorText, at, taskId);
  }

  /** Stores a running task's progress. */
  progress(taskId: string, progress: number): void {
    this.#sql.progress.run(progress, taskId);
  }

  /** Forgets a task. */
  delete(taskId: string): void {
    this.#sql.delete.run(taskId);
  }

  /** Every used task id, oldest first, validated. */
  loadUsed(): UsedId[] {
    return this.#sql.allUsed.all().map((raw) => {
      const row = usedRowSchema.parse(raw);
      return { taskId: row.task_id, how: row.how, at: row.at };
    });
  }

  /** Stores a used task id (replacing what was stored of it). */
  markUsed(taskId: string, how: UsedHow, at: number): void {
    this.#sql.markUsed.run(taskId, how, at);
  }

  /** Forgets used task ids. */
  forgetUsed(taskIds: readonly string[]): void {
    for (const taskId of taskIds) this.#sql.forgetUsed.run(taskId);
  }

  /** Closes the file (and releases its lock). */
  close(): void {
    this.#db.close();
  }
}
