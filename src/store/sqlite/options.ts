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
}

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
  return { path, synchronous, busyTimeoutMs };
}
