/**
 * SQLite connections as coco opens them — WAL, a `synchronous` level, a busy timeout, a large
 * page cache — and driver errors wrapped as `STORE_FAILED`: shared by the engine's store
 * (store/sqlite) and the job store (jobs/sqlite), which open the same file.
 *
 * @module
 */
import type Database from 'better-sqlite3';
import { CocoError, ErrorCode } from '../core/errors.js';
import { sqliteDriver } from './drivers.js';

/**
 * How long a connection waits for another connection's write lock before failing with
 * SQLITE_BUSY. Writers hold the lock for one batch (milliseconds) or one migration (well under a
 * second), so 5 s rides out a concurrent migrator or a checkpoint, yet a lock that is really
 * stuck still surfaces as an error instead of a hang.
 */
export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

/** Connection settings, already validated. */
export interface ConnectionSettings {
  readonly path: string;
  readonly synchronous: 'FULL' | 'NORMAL';
  readonly busyTimeoutMs: number;
}

/** Opens the file with WAL, the requested `synchronous` level and a busy timeout. */
export function connect(settings: ConnectionSettings): Database.Database {
  // Loaded before the try: a missing driver is DRIVER_MISSING, not a failure of this file.
  const Driver = sqliteDriver();
  let db: Database.Database | undefined;
  try {
    db = new Driver(settings.path);
    // Set first: switching to WAL may need to wait for another process's lock.
    db.pragma(`busy_timeout = ${settings.busyTimeoutMs}`);
    const conn = db;
    const mode: unknown = whileBusy(
      () => conn.pragma('journal_mode = WAL', { simple: true }),
      settings.busyTimeoutMs,
    );
    if (mode !== 'wal') {
      throw new CocoError(
        ErrorCode.StoreFailed,
        `${settings.path}: cannot use WAL (journal_mode is ${String(mode)}); a real file is needed`,
      );
    }
    db.pragma(`synchronous = ${settings.synchronous}`);
    // Group commit writes thousands of rows per transaction; with SQLite's default 2 MB page
    // cache those spill mid-transaction and pages are re-read. 64 MB keeps a batch in memory.
    db.pragma('cache_size = -65536');
    return db;
  } catch (error) {
    db?.close();
    throw storeFailed(`cannot open ${settings.path}`, error);
  }
}

/**
 * Runs `fn`, again after a short pause each time SQLite answers `SQLITE_BUSY`, until
 * `budgetMs` has passed. For what SQLite refuses without calling its busy handler: switching a
 * new file to WAL while another process switches it too (each holds a shared lock and wants the
 * exclusive one; to avoid a deadlock one of them is told "busy" at once — seen as a failed start
 * when three processes open one new file together).
 */
export function whileBusy<T>(fn: () => T, budgetMs: number): T {
  const deadline = Date.now() + budgetMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  // 1 ms, doubling to 50: the other opener holds the lock for a pragma or a migration.
  for (let ms = 1; ; ms = Math.min(ms * 2, 50)) {
    try {
      return fn();
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      if (code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw error;
      Atomics.wait(pause, 0, 0, ms);
    }
  }
}

/** Wraps a failure in `STORE_FAILED` (keeping `CocoError`s as they are). */
export function storeFailed(what: string, error: unknown): CocoError {
  if (error instanceof CocoError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  // SQLITE_BUSY (another process holds the lock too long) may pass on a later try.
  const retryable = typeof code === 'string' && code.startsWith('SQLITE_BUSY');
  return new CocoError(
    ErrorCode.StoreFailed,
    `${what}: ${(error as Error | null)?.message ?? String(error)}`,
    {
      cause: error,
      retryable,
    },
  );
}
