/**
 * Retention on SQLite, beside what the conformance suite checks on every store: the candidates
 * come from the partial index in its order, the deletes check the rule again inside their write
 * (a tree that changed after the read stays whole), and a prune goes through the engine's writer
 * thread in turn with its batches without joining their chain (a failed batch does not refuse it).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import { sqliteStore, type SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import {
  PRUNE_READS,
  PRUNE_WRITES,
  deleted,
  prepareRetention,
  pruneOps,
  readCandidates,
  runInline,
} from '../../src/store/sqlite/retention.js';
import { SqliteWriter } from '../../src/store/sqlite/writer.js';
import { T0, batch, commandUpdate, endedCommand } from './fixtures.js';
import { rejectsWith } from './harness.js';
import { rowsOf, settledTree, storedRows, writeTrees } from './suite-retention.js';
import { raw } from '../support/sqlite-rows.js';

const CUTOFF = T0 + 1_000_000;

describe('sqlite retention', () => {
  let dir: string;
  let path: string;
  const stores: SqliteStore[] = [];
  const open = async (writerThread = true): Promise<SqliteStore> => {
    const s = sqliteStore({ path, writerThread });
    stores.push(s);
    await s.open('node-a');
    return s;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coco-retention-'));
    path = join(dir, 'coco.db');
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('reads candidates through commands_ended_roots, in its order, without a sort', async () => {
    await open();
    raw(path, (db) => {
      const plan = (
        db.prepare(`EXPLAIN QUERY PLAN ${PRUNE_READS.pruneCandidates}`).all(0, 0, 0, 1) as {
          detail: string;
        }[]
      )
        .map((r) => r.detail)
        .join(' | ');
      // The cursor and the cutoff bound one range of the index.
      expect(plan).toMatch(
        /^SEARCH r USING INDEX commands_ended_roots \(ended_at>\? AND ended_at<\?\)/,
      );
      expect(plan).toContain('USING INDEX commands_root');
      expect(plan).not.toContain('TEMP B-TREE');
    });
  });

  it('the deletes check the rule again inside their write: a tree that became live after the read stays whole', async () => {
    const store = await open();
    const tree = settledTree(1, T0);
    await writeTrees(store, [tree]);
    const db = new Database(path);
    db.pragma('busy_timeout = 5000');
    try {
      const q = prepareRetention(db);
      const candidates = readCandidates(q, { endedBefore: CUTOFF, limit: 10 });
      expect(candidates.roots.map((r) => r.id)).toEqual([1]);
      // Between the read and the write, a child becomes active again (what the engine never
      // does; a hand on the file could).
      db.prepare('UPDATE commands SET active = 1 WHERE id = 3').run();
      const ops = pruneOps(candidates, CUTOFF);
      // Inline, as the store runs it without a writer thread...
      const inline = db.transaction(() => runInline(q, ops)).immediate();
      expect(deleted(candidates, inline)).toMatchObject({ trees: 0, commands: 0, tasks: 0 });
      // ...and in a writer thread.
      const writer = new SqliteWriter(
        { path, synchronous: 'FULL', busyTimeoutMs: 5_000 },
        PRUNE_WRITES,
      );
      try {
        const changes = await writer.count(ops);
        expect(deleted(candidates, changes)).toMatchObject({ trees: 0, undo: 0 });
      } finally {
        await writer.close();
      }
      db.prepare('UPDATE commands SET active = 0 WHERE id = 3').run();
    } finally {
      db.close();
    }
    expect(await storedRows(store, tree)).toEqual(rowsOf(tree));
    // Settled again: it goes.
    expect(await store.prune({ endedBefore: CUTOFF, limit: 10 })).toMatchObject({ rootIds: [1] });
  });

  it('a prune runs in turn with the batches in the writer thread, even behind a failed batch, and refuses none', async () => {
    const store = await open();
    const trees = [settledTree(1, T0), settledTree(10, T0 + 1)];
    await writeTrees(store, trees);
    // A batch that fails (an update of a missing row), then a prune and a good batch sent
    // behind it before the failure is known.
    const failing = store.apply(batch({ commandUpdates: [commandUpdate(endedCommand(999))] }));
    const pruning = store.prune({ endedBefore: CUTOFF, limit: 10 });
    const good = store.apply(batch({ commandInserts: [endedCommand(20, { endedAt: T0 })] }));
    await rejectsWith(failing, ErrorCode.BatchRefused);
    // The batch sent behind the failed one is refused (the chain's rule); the prune is not.
    await rejectsWith(good, ErrorCode.StoreFailed);
    expect(await pruning).toMatchObject({ rootIds: [1, 10], trees: 2 });
    // The chain goes on after the failure was reported.
    await store.apply(batch({ commandInserts: [endedCommand(30, { endedAt: T0 })] }));
    expect(await store.prune({ endedBefore: CUTOFF, limit: 10 })).toMatchObject({
      rootIds: [30],
    });
  });
});
