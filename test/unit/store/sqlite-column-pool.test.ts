/**
 * The SQLite writer thread's column buffers (writer.ts `ColumnPool`): the thread hands each
 * batch's buffers back once committed, and the next batches are encoded into them; a reused
 * buffer holds the last batch's values, which must not show through.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ColumnPool,
  SqliteWriter,
  encodeOps,
  type WriteOp,
} from '../../../src/store/sqlite/writer.js';
import { raw } from '../../support/sqlite-rows.js';

/** Tags and numbers of an encoded operation (see writer.ts `WireOp`). */
function columns(op: unknown): { tags: Uint8Array; numbers: Float64Array } {
  const o = op as unknown[];
  return { tags: o[4] as Uint8Array, numbers: o[5] as Float64Array };
}

describe('sqlite writer column buffers', () => {
  it('a buffer given back is taken again, its stale tags cleared: a null reads as null', () => {
    const pool = new ColumnPool();
    const numbers: WriteOp = ['putEntity', [[1, 2, 3, 4, 5]], false];
    const transfer: ArrayBuffer[] = [];
    const [first] = encodeOps([numbers], transfer, pool);
    expect(transfer).toHaveLength(1);
    expect(columns(first).tags).toEqual(Uint8Array.from([1, 1, 1, 1, 1]));
    pool.give(transfer[0]!);
    expect(pool.size).toBe(1);
    const nulls: WriteOp = ['putEntity', [[null, 7, null, null, null]], false];
    const again: ArrayBuffer[] = [];
    const [second] = encodeOps([nulls], again, pool);
    expect(again[0]).toBe(transfer[0]);
    expect(pool.size).toBe(0);
    expect(columns(second).tags).toEqual(Uint8Array.from([0, 1, 0, 0, 0]));
    expect(columns(second).numbers[1]).toBe(7);
  });

  it('takes the smallest buffer that fits, and a new one when none does', () => {
    const pool = new ColumnPool();
    const small = new ArrayBuffer(2048);
    const large = new ArrayBuffer(8192);
    pool.give(large);
    pool.give(small);
    expect(pool.take(1500)).toBe(small);
    expect(pool.take(1500)).toBe(large);
    const fresh = pool.take(1500);
    expect(fresh).not.toBe(small);
    expect(fresh.byteLength).toBeGreaterThanOrEqual(1500);
  });

  describe('in the writer thread', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'coco-column-pool-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("the thread hands a batch's buffers back; the next batch reuses them and stores what it was given", async () => {
      const path = join(dir, 'w.db');
      raw(path, (db) => db.exec('CREATE TABLE scratch (n INTEGER, a INTEGER, b TEXT)'));
      const w = new SqliteWriter(
        { path, synchronous: 'FULL', busyTimeoutMs: 5_000 },
        { put: 'INSERT INTO scratch (n, a, b) VALUES (?, ?, ?)' },
      );
      try {
        // The first batch's values are all numbers and strings; the second's, in the same
        // operation of the same size, are NULL where the first had values.
        const rows = (n: number, a: number | null): unknown[][] =>
          Array.from({ length: 30 }, (_, i) => [n, a === null ? null : a + i, i % 2 ? null : 'b']);
        await w.write([['put', rows(1, 100), false]]);
        expect(w.pooledBuffers).toBe(1);
        await w.write([['put', rows(2, null), false]]);
        expect(w.pooledBuffers).toBe(1);
        const read = (n: number): unknown[] =>
          raw(path, (db) =>
            db.prepare('SELECT a, b FROM scratch WHERE n = ? ORDER BY rowid').all(n),
          );
        expect(read(1)).toEqual(
          Array.from({ length: 30 }, (_, i) => ({ a: 100 + i, b: i % 2 ? null : 'b' })),
        );
        expect(read(2)).toEqual(
          Array.from({ length: 30 }, (_, i) => ({ a: null, b: i % 2 ? null : 'b' })),
        );
      } finally {
        await w.close();
      }
    });
  });
});
