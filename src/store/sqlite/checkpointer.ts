/**
 * The SQLite store's checkpointer thread. In WAL mode a commit appends pages to the `-wal` file;
 * a checkpoint copies them back into the database file and syncs it. By default SQLite runs that
 * checkpoint inside whichever commit finds the WAL over 1,000 pages — on coco's writer thread,
 * so every few hundred light commits, or every few batches under load, one commit also paid for
 * copying and syncing the database (a light-load p99 of 2–3 ms against a p50 of 0.3, and the
 * writer thread's time taken from the batches behind it).
 *
 * Here a thread of its own, with its own connection, runs `PRAGMA wal_checkpoint(PASSIVE)` every
 * {@link CHECKPOINT_INTERVAL_MS}: a passive checkpoint never waits for the writer and never
 * blocks it (it copies what is committed, up to the oldest reader's snapshot), and the writer
 * restarts the WAL from its start once everything was copied. The coco connections that write
 * keep SQLite's own checkpoint only as a backstop (`WAL_BACKSTOP_PAGES`, db/sqlite.ts), so the
 * WAL stays bounded if this thread falls behind or stops.
 *
 * Durability is unchanged: commits are durable in the WAL (synchronous FULL: synced at each
 * commit) whoever checkpoints; the checkpoint syncs the WAL before copying and the database
 * file after, at the store's `synchronous` level.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import type { ConnectionSettings } from '../../db/sqlite.js';

/**
 * How often the thread checkpoints. Why 200 ms: often enough that the WAL between two runs stays
 * a few megabytes at full speed (tens of thousands of commands per second), rarely enough that
 * the database file's sync (one per run that copied anything) does not contend with every
 * commit's WAL sync on the same disk at light load.
 */
export const CHECKPOINT_INTERVAL_MS = 200;

const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 0');
db.pragma('synchronous = ' + workerData.synchronous);
db.pragma('wal_autocheckpoint = 0');
const stats = { runs: 0, busy: 0, framesCopied: 0, errors: 0, lastError: null };
let backfilled = 0;
const checkpoint = () => {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    stats.runs++;
    if (r.busy) stats.busy++;
    // checkpointed counts the WAL's frames copied so far (the WAL restarts from 0).
    if (r.checkpointed >= 0) {
      stats.framesCopied += r.checkpointed >= backfilled ? r.checkpointed - backfilled : r.checkpointed;
      backfilled = r.checkpointed;
    }
  } catch (error) {
    // SQLITE_BUSY (another checkpoint running): the next run does it.
    if (!String(error && error.code).startsWith('SQLITE_BUSY')) {
      stats.errors++;
      stats.lastError = String(error && error.message);
    }
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m.kind === 'close') {
    clearInterval(timer);
    checkpoint();
    db.close();
    parentPort.postMessage({ id: m.id, stats });
    return;
  }
  if (m.kind === 'stats') {
    if (m.now) checkpoint();
    parentPort.postMessage({ id: m.id, stats });
  }
});
parentPort.postMessage({ id: 0, stats });
`;

/** What the checkpointer has done since it started. */
export interface CheckpointStats {
  /** Checkpoints run. */
  readonly runs: number;
  /** Runs that could not copy everything (a reader's snapshot, or the writer, in the way). */
  readonly busy: number;
  /** WAL frames (pages) copied into the database file. */
  readonly framesCopied: number;
  /** Runs that failed with something other than SQLITE_BUSY, and the last such error. */
  readonly errors: number;
  readonly lastError: string | null;
}

const replySchema = z.object({
  id: z.number(),
  stats: z.object({
    runs: z.number(),
    busy: z.number(),
    framesCopied: z.number(),
    errors: z.number(),
    lastError: z.string().nullable(),
  }),
});

/** The main thread's side of the checkpointer thread. */
export class SqliteCheckpointer {
  readonly #settings: ConnectionSettings;
  readonly #intervalMs: number;
  #worker: Worker | null = null;
  #nextId = 1;
  readonly #pending = new Map<number, (stats: CheckpointStats | null) => void>();

  constructor(settings: ConnectionSettings, intervalMs = CHECKPOINT_INTERVAL_MS) {
    this.#settings = settings;
    this.#intervalMs = intervalMs;
  }

  /** Starts the thread; resolves once its connection is open. */
  start(): Promise<void> {
    if (this.#worker) return Promise.resolve();
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // Plain CommonJS, as the writer's: the parent's loader flags must not apply.
      execArgv: [],
      workerData: {
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        path: this.#settings.path,
        synchronous: this.#settings.synchronous,
        intervalMs: this.#intervalMs,
      },
    });
    this.#worker = worker;
    // The thread never keeps the process alive: it has nothing to do once the store is idle.
    worker.unref();
    worker.on('message', (message: unknown) => {
      const reply = replySchema.safeParse(message);
      if (!reply.success) return;
      const waiter = this.#pending.get(reply.data.id);
      this.#pending.delete(reply.data.id);
      waiter?.(reply.data.stats);
    });
    const stopped = (): void => {
      if (this.#worker === worker) this.#worker = null;
      for (const w of this.#pending.values()) w(null);
      this.#pending.clear();
    };
    worker.on('error', stopped);
    worker.on('exit', stopped);
    return new Promise<void>((resolve) => this.#pending.set(0, () => resolve()));
  }

  /**
   * What the thread has done (null once it stopped); with `now`, after a checkpoint run at once.
   */
  stats(now = false): Promise<CheckpointStats | null> {
    return this.#ask({ kind: 'stats', now });
  }

  /** Runs a last checkpoint, closes the connection and ends the thread. */
  async close(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    await this.#ask({ kind: 'close' });
    this.#worker = null;
    await worker.terminate();
  }

  #ask(message: { kind: string; now?: boolean }): Promise<CheckpointStats | null> {
    const worker = this.#worker;
    if (!worker) return Promise.resolve(null);
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      worker.postMessage({ ...message, id });
    });
  }
}
