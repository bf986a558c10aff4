/**
 * SQLite's state-only command updates (`CommandUpdate.stateOnly`, operations.ts
 * `splitCommandUpdates`): written as their `state` and `updated_at` alone, in the writer thread
 * (20 rows per run, then one by one) and inline; each must still change its row.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import type { CommandUpdate } from '../../src/store/port.js';
import { splitCommandUpdates } from '../../src/store/sqlite/operations.js';
import { sqliteStore, type SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { MULTI_ROWS } from '../../src/store/sqlite/statements.js';
import { T0, batch, command, commandUpdate } from './fixtures.js';
import { rejectsWith } from './harness.js';

/** Two multi-row runs and five one-row runs of each kind. */
const N = 2 * MULTI_ROWS + 5;
const ids = Array.from({ length: 2 * N }, (_, i) => 1 + i);

/** Every other command a state-only update (next stage), the others ended whole. */
function updates(): CommandUpdate[] {
  return ids.map((id, i) => {
    const u = commandUpdate(
      i % 2 === 0
        ? command(id, { stage: 1, journalSeq: 2, updatedAt: T0 + 100 + i })
        : command(id, { status: 'succeeded', endedAt: T0 + 100 + i, updatedAt: T0 + 100 + i }),
    );
    return i % 2 === 0 ? { ...u, stateOnly: true } : u;
  });
}

describe.each([
  ['writer thread', true],
  ['inline', false],
])('sqlite state-only command updates (%s)', (_name, writerThread) => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coco-state-only-'));
    store = sqliteStore({ path: join(dir, 's.db'), writerThread });
    await store.open('n1');
    await store.apply(batch({ commandInserts: ids.map((id) => command(id)) }));
  });
  afterEach(async () => {
    await store.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the state and the time alone; the whole updates beside them are written whole', async () => {
    await store.apply(batch({ commandUpdates: updates() }));
    for (const [i, id] of ids.entries()) {
      const stored = await store.getCommand(id);
      if (i % 2 === 0) {
        expect(stored).toMatchObject({ status: 'pending', stage: 1, journalSeq: 2 });
        expect(stored?.updatedAt).toBe(T0 + 100 + i);
        expect(stored?.endedAt).toBeNull();
      } else {
        expect(stored).toMatchObject({ status: 'succeeded', stage: 0, endedAt: T0 + 100 + i });
      }
    }
    // The status history saw no write of a status for the state-only rows.
    expect(await store.getStatusHistory?.(ids[0]!)).toEqual([{ status: 'pending', at: T0 }]);
  });

  it('a state-only update leaves the columns it does not write as they are', async () => {
    // The flag is the engine's word that they are unchanged; a store may take it.
    const u = { ...commandUpdate(command(1, { status: 'waiting', stage: 3 })), stateOnly: true };
    await store.apply(batch({ commandUpdates: [u] }));
    expect(await store.getCommand(1)).toMatchObject({ status: 'pending', stage: 3 });
  });

  it('a missing row among the state-only ones fails the batch, naming it; nothing is stored', async () => {
    const before = await Promise.all(ids.map((id) => store.getCommand(id)));
    for (const at of [4, 2 * MULTI_ROWS + 2, 2 * N - 2]) {
      const bad = updates().map((u, i) => (i === at ? { ...u, id: 777_777 } : u));
      const error = await rejectsWith(
        store.apply(batch({ commandUpdates: bad })),
        ErrorCode.BatchRefused,
      );
      expect(error.message).toMatch(/no such row \(777777\)/);
    }
    expect(await Promise.all(ids.map((id) => store.getCommand(id)))).toEqual(before);
  });
});

describe('splitCommandUpdates', () => {
  it('keeps each kind in its order, and the batch own list when none is state-only', () => {
    const all = updates();
    const [whole, stateOnly] = splitCommandUpdates(all);
    expect(whole.map((u) => u.id)).toEqual(ids.filter((_, i) => i % 2 === 1));
    expect(stateOnly.map((u) => u.id)).toEqual(ids.filter((_, i) => i % 2 === 0));
    const plain = all.filter((u) => u.stateOnly !== true);
    const [same, none] = splitCommandUpdates(plain);
    expect(same).toBe(plain);
    expect(none).toEqual([]);
  });
});
