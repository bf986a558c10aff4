/**
 * The SQLite writer thread's updates taken straight from the columns (writer.ts
 * `updateColumns`): the rows left after the last multi-row run go one by one, each still
 * required to change its row.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import type { ChangeBatch } from '../../src/store/port.js';
import { sqliteStore, type SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { MULTI_ROWS } from '../../src/store/sqlite/statements.js';
import { T0, batch, command, commandUpdate, task, taskUpdate } from './fixtures.js';
import { rejectsWith } from './harness.js';

/** Two multi-row runs and five one-row runs per update. */
const N = 2 * MULTI_ROWS + 5;
const ids = Array.from({ length: N }, (_, i) => 1 + i);

function seed(): ChangeBatch {
  return batch({
    commandInserts: ids.map((id) => command(id)),
    taskInserts: ids.map((id) => task(id, 0)),
  });
}

function ends(): ChangeBatch {
  return batch({
    commandUpdates: ids.map((id, i) =>
      commandUpdate(command(id, { status: 'succeeded', updatedAt: T0 + i, endedAt: T0 + i })),
    ),
    taskUpdates: ids.map((id, i) =>
      taskUpdate(task(id, 0, { status: 'succeeded', result: { i }, endedAt: T0 + i })),
    ),
  });
}

describe('sqlite writer thread, updates from columns', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coco-writer-columns-'));
    store = sqliteStore({ path: join(dir, 'w.db'), writerThread: true });
    await store.open('n1');
  });
  afterEach(async () => {
    await store.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  const stored = (): Promise<unknown[]> =>
    Promise.all(ids.map(async (id) => [await store.getCommand(id), await store.getTasks(id)]));

  it('a missing row after the last multi-row run fails the batch, naming it; nothing is stored', async () => {
    await store.apply(seed());
    const before = await stored();
    const good = ends();
    const last = 2 * MULTI_ROWS + 2;
    for (const [bad, named] of [
      [
        {
          commandUpdates: good.commandUpdates.map((u, i) =>
            i === last ? { ...u, id: 888_888 } : u,
          ),
        },
        /no such row \(888888\)/,
      ],
      [
        { taskUpdates: good.taskUpdates.map((u, i) => (i === last ? { ...u, ordinal: 66 } : u)) },
        /no such row \(66\)/,
      ],
    ] as const) {
      const error = await rejectsWith(store.apply({ ...good, ...bad }), ErrorCode.BatchRefused);
      expect(error.message).toMatch(named);
    }
    expect(await stored()).toEqual(before);
    await store.apply(good);
    expect((await store.getCommand(ids[N - 1]!))?.status).toBe('succeeded');
    expect((await store.getTasks(ids[N - 1]!))[0]?.status).toBe('succeeded');
  });
});
