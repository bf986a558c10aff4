/**
 * Options of the SQLite store ({@link SqliteStoreOptions}), their validation into connection
 * settings, and the page limits of `listCommands`. Re-exported by `sqlite-store.ts`.
 *
 * @module
 */
import type { Clock } from '../../core/clock.js';
import { CocoError, ErrorCode } from '../../core/errors.js';
import { DEFAULT_BUSY_TIMEOUT_MS, type ConnectionSettings } from '../../db/sqlite.js';

/** Options of `sqliteStore`. */
export interface SqliteStoreOptions {
  /** Path of the database file (created if missing). */
  readonly path: string;
  /**
   * `FULL` makes every committed batch survive a power loss; `NORMAL` (WAL) may lose the last
   * batches on power loss, never on a process crash, and commits faster.
   * @default 'FULL'
   */
  readonly synchronous?: 'FULL' | 'NORMAL';
  /** @default 5000 (see {@link DEFAULT_BUSY_TIMEOUT_MS}) */
  readonly busyTimeoutMs?: number;
  /** Time source for heartbeats and the migration ledger. @default systemClock */
  readonly clock?: Clock;
  /**
   * Run `apply` in a writer thread (its own connection) instead of on the event loop, so the
   * engine builds the next batch while SQLite writes this one. @default true
   */
  readonly writerThread?: boolean;
  /**
   * With the writer thread on: a batch of at most this many rows, applied while the thread has
   * nothing queued, is committed on the event loop instead. At light load the two hand-offs
   * (to the thread and back, each a thread wake-up) cost more than such a commit, and on a busy
   * machine a wake-up can wait milliseconds for a core (BENCHMARKS.md, "Latency at light
   * load"). Larger batches, and every batch while one is in the thread, go through the thread,
   * so under load the engine never waits for the disk. 0: every batch through the thread.
   * @default {@link DEFAULT_INLINE_MAX_ROWS}
   */
  readonly inlineMaxRows?: number;
}

/**
 * Default of {@link SqliteStoreOptions.inlineMaxRows}: a command's start (its row and its
 * tasks') or end (its row, its tasks' ends) at light load is a handful of rows; a batch of 16
 * commits in ~0.2–0.5 ms on the event loop, about what the hand-offs to the thread cost, while
 * the batches of a loaded engine hold hundreds to thousands of rows.
 */
export const DEFAULT_INLINE_MAX_ROWS = 16;

/** Default page size of `Store.listCommands`. */
export const DEFAULT_LIST_LIMIT = 100;
/** Largest page of `Store.listCommands`; bigger limits are capped to it. */
export const MAX_LIST_LIMIT = 1_000;

/** The connection settings of valid options; `INVALID_OPTIONS` otherwise. */
export function validateOptions(options: SqliteStoreOptions): ConnectionSettings {
  const { path, synchronous = 'FULL', busyTimeoutMs = DEFAULT_BUSY_TIMEOUT_MS } = options;
  const invalid = (message: string): CocoError =>
    new CocoError(ErrorCode.InvalidOptions, `sqliteStore: ${message}`);
  if (typeof path !== 'string' || path === '' || path === ':memory:') {
    throw invalid('path must name a database file');
  }
  if (synchronous !== 'FULL' && synchronous !== 'NORMAL') {
    throw invalid(`synchronous must be 'FULL' or 'NORMAL', not ${String(synchronous)}`);
  }
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw invalid('busyTimeoutMs must be a non-negative integer');
  }
  const { inlineMaxRows = DEFAULT_INLINE_MAX_ROWS } = options;
  if (!Number.isSafeInteger(inlineMaxRows) || inlineMaxRows < 0) {
    throw invalid('inlineMaxRows must be a non-negative integer');
  }
  return { path, synchronous, busyTimeoutMs };
}
