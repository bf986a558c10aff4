/**
 * The SQLite store's small batches on the event loop (`inlineMaxRows`): with the writer thread
 * on, a small batch applied while the thread has nothing queued commits on the event loop; a
 * larger one, or any batch behind one still in the thread, goes through the thread, so nothing
 * overtakes; a commit on the event loop that was slow sends the next batches through the thread.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CocoError, ErrorCode } from '../../src/core/errors.js';
import {
  InlineCommitGuard,
  sqliteStore,
  type SqliteStore,
} from '../../src/store/sqlite/sqlite-store.js';
import { batch, command, commandUpdate, T0 } from './fixtures.js';
import { raw } from '../support/sqlite-rows.js';

describe('sqlite store: small batches on the event loop', () => {
  let dir: string;
  let path: string;
  const stores: SqliteStore[] = [];
  const open = async (inlineMaxRows?: number): Promise<SqliteStore> => {
    const s = sqliteStore({ path, ...(inlineMaxRows === undefined ? {} : { inlineMaxRows }) });
    stores.push(s);
    await s.open('n1');
    return s;
  };
  const stats = (s: SqliteStore) => s.writerStats()!;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coco-inline-'));
    path = join(dir, 'coco.db');
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('commits a small batch on the event loop while the thread is idle, not a large one', async () => {
    const store = await open();
    await store.apply(batch({ commandInserts: [command(1)] }));
    expect(stats(store).inlineBatches).toBe(1);
    expect(stats(store).commitMs).toBe(0);
    await store.apply(
      batch({ commandInserts: Array.from({ length: 17 }, (_, i) => command(10 + i)) }),
    );
    expect(stats(store).inlineBatches).toBe(1);
    expect(stats(store).commitMs).toBeGreaterThan(0);
    expect(raw(path, (db) => db.prepare('SELECT count(*) AS n FROM commands').get())).toEqual({
      n: 18,
    });
  });

  it('sends a small batch through the thread while an earlier one is there (never overtakes)', async () => {
    const store = await open();
    const big = Array.from({ length: 40 }, (_, i) => command(100 + i));
    // Not awaited: the large batch is in the thread when the small one, which updates one of
    // its rows, is applied. Committed first on the event loop, the update would find no row.
    const first = store.apply(batch({ commandInserts: big }));
    const second = store.apply(
      batch({
        commandUpdates: [commandUpdate(command(139, { status: 'waiting', updatedAt: T0 + 1 }))],
      }),
    );
    await Promise.all([first, second]);
    expect(stats(store).inlineBatches).toBe(0);
    expect(
      raw(path, (db) => db.prepare('SELECT status FROM commands WHERE id = 139').get()),
    ).toEqual({ status: 'waiting' });
  });

  it('refuses an inlineMaxRows that is not a non-negative integer, naming it', () => {
    for (const inlineMaxRows of [-1, 1.5, Number.NaN])
      expect(() => sqliteStore({ path, inlineMaxRows })).toThrow(
        expect.objectContaining({
          code: ErrorCode.InvalidOptions,
          message: expect.stringContaining('inlineMaxRows') as string,
        }),
      );
  });

  it('with inlineMaxRows 0, every batch goes through the thread', async () => {
    const store = await open(0);
    await store.apply(batch({ commandInserts: [command(1)] }));
    expect(stats(store).inlineBatches).toBe(0);
    expect(stats(store).commitMs).toBeGreaterThan(0);
  });

  it('after a slow commit on the event loop, sends the next batches through the thread', async () => {
    const store = await open();
    // Another connection holds the write lock for a while: the next inline commit waits for it
    // (busy timeout) and so takes longer than the store allows the event loop to be held.
    const holder = holdWriteLock(path, 60);
    await holder.locked;
    await store.apply(batch({ commandInserts: [command(1)] }));
    await holder.done;
    expect(stats(store).inlineBatches).toBe(1);
    const commitMs = stats(store).commitMs;
    await store.apply(batch({ commandInserts: [command(2)] }));
    expect(stats(store).inlineBatches).toBe(1);
    expect(stats(store).commitMs).toBeGreaterThan(commitMs);
  });

  it('refuses a batch behind a failed inline one until the failure is seen, then goes on', async () => {
    const store = await open();
    await store.apply(batch({ commandInserts: [command(1)] }));
    // A duplicate id: refused by the database, on the event loop.
    const failed = store.apply(batch({ commandInserts: [command(1)] }));
    const behind = store.apply(batch({ commandInserts: [command(2)] }));
    await expect(failed).rejects.toBeInstanceOf(CocoError);
    await expect(behind).rejects.toMatchObject({ code: ErrorCode.StoreFailed });
    await store.apply(batch({ commandInserts: [command(2)] }));
    expect(raw(path, (db) => db.prepare('SELECT count(*) AS n FROM commands').get())).toEqual({
      n: 2,
    });
  });
});

/** Holds the database's write lock from another thread for `ms` (a second connection). */
function holdWriteLock(path: string, ms: number): { locked: Promise<void>; done: Promise<void> } {
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const Database = require(workerData.driver);
    const db = new Database(workerData.path);
    db.exec('BEGIN IMMEDIATE');
    parentPort.postMessage('locked');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.ms);
    db.exec('COMMIT');
    db.close();
    `,
    {
      eval: true,
      workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), path, ms },
    },
  );
  const locked = new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  const done = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return { locked, done };
}

describe('InlineCommitGuard', () => {
  it('lets a lone hiccup of the disk pass and pauses on commits slow on average', () => {
    const guard = new InlineCommitGuard();
    let now = 0;
    const commit = (ms: number): void => {
      now += ms;
      guard.took(ms, now);
    };
    for (let i = 0; i < 100; i++) commit(0.3);
    commit(9); // one hiccup
    expect(guard.allows(now)).toBe(true);
    for (let i = 0; i < 20; i++) commit(0.3);
    // A disk that stays slow: paused within a few commits.
    let slow = 0;
    while (guard.allows(now) && slow < 10) {
      commit(5);
      slow++;
    }
    expect(slow).toBeLessThanOrEqual(5);
    expect(guard.allows(now)).toBe(false);
    expect(guard.allows(now + 9_999)).toBe(false);
    // After the pause, judged afresh: one fast commit does not pause it again.
    now += 10_000;
    expect(guard.allows(now)).toBe(true);
    commit(0.3);
    expect(guard.allows(now)).toBe(true);
  });
});
