/**
 * SQLite's status history since migration 0008: a command's first status is kept in its own row
 * (first_status, first_at, written by the insert), its terminal status is its row's status at its
 * end, and only the statuses between them are history rows. `getStatusHistory` reads the three
 * as one (what it reads for any store: the conformance suite, "the status history: …"); rows
 * stored before 0008 and rows left by hand read as they did.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CommandStatus } from '../../src/core/states.js';
import { sqliteStore, type SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { MULTI_ROWS } from '../../src/store/sqlite/statements.js';
import { T0, batch, command, commandUpdate } from './fixtures.js';
import { raw } from '../support/sqlite-rows.js';

/** Two multi-row runs and five one-row runs of the writer thread's inserts and updates. */
const N = 2 * MULTI_ROWS + 5;
const ids = Array.from({ length: N }, (_, i) => 1 + i);

/** The history rows of the file, as `[command id, status, at]`. */
function historyRows(path: string): [number, string, number][] {
  return raw(path, (db) =>
    db
      .prepare('SELECT command_id, status, at FROM command_status_history ORDER BY command_id, at')
      .raw(true)
      .all(),
  ) as [number, string, number][];
}

describe.each([
  ['writer thread', true],
  ['inline', false],
])('sqlite status history (%s)', (_name, writerThread) => {
  let dir: string;
  let path: string;
  let store: SqliteStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coco-history-'));
    path = join(dir, 's.db');
    store = sqliteStore({ path, writerThread, inlineMaxRows: 0 });
    await store.open('n1');
  });
  afterEach(async () => {
    await store.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('writes no history row for a first or a terminal status, and reads them from the row', async () => {
    // Each row its own first status and time, so that a value read from another row's place
    // (the multi-row insert's numbering) would show.
    const first = (i: number): CommandStatus => (i % 2 === 0 ? 'waiting' : 'pending');
    await store.apply(
      batch({
        commandInserts: ids.map((id, i) =>
          command(id, { status: first(i), updatedAt: T0 + i, createdAt: T0 }),
        ),
      }),
    );
    // Two commands in three pass through `aborting` on their way to their end (a multi-row run
    // and one-row runs of the update, its trigger fired once per row).
    const aborts = (i: number): boolean => i % 3 !== 0;
    await store.apply(
      batch({
        commandUpdates: ids
          .filter((_, i) => aborts(i))
          .map((id) => commandUpdate(command(id, { status: 'aborting', updatedAt: T0 + 500 }))),
      }),
    );
    const end = (i: number): CommandStatus =>
      !aborts(i) ? 'succeeded' : i % 2 === 0 ? 'failed' : 'cancelled';
    await store.apply(
      batch({
        commandUpdates: ids.map((id, i) =>
          commandUpdate(
            command(id, { status: end(i), updatedAt: T0 + 1000 + i, endedAt: T0 + 1000 + i }),
          ),
        ),
      }),
    );
    // Only the statuses between the first and the end are history rows.
    expect(historyRows(path)).toEqual(
      ids.filter((_, i) => aborts(i)).map((id) => [id, 'aborting', T0 + 500]),
    );
    for (const [i, id] of ids.entries()) {
      expect(await store.getStatusHistory(id)).toEqual([
        { status: first(i), at: T0 + i },
        ...(aborts(i) ? [{ status: 'aborting', at: T0 + 500 }] : []),
        { status: end(i), at: T0 + 1000 + i },
      ]);
    }
  });

  it('reads a command stored before 0008 (no first status, history rows) as before', async () => {
    await store.apply(
      batch({
        commandInserts: [
          command(1, { updatedAt: 1 }),
          command(2, { updatedAt: 1 }),
          command(3, { updatedAt: 1 }),
        ],
      }),
    );
    // As 0004's backfill and triggers left them: every stored status a history row, the
    // terminal one at the command's last update.
    raw(path, (db) => {
      db.exec('UPDATE commands SET first_status = NULL, first_at = NULL');
      db.exec(
        "INSERT INTO command_status_history VALUES (1, 'pending', 1), (1, 'waiting', 2), (1, 'succeeded', 3), " +
          "(2, 'pending', 1), (2, 'waiting', 2), (3, 'pending', 1)",
      );
      db.exec("UPDATE commands SET status = 'waiting' WHERE id IN (1, 2)");
      db.exec(
        "UPDATE commands SET status = 'succeeded', updated_at = 9, ended_at = 9 WHERE id = 1",
      );
    });
    expect(await store.getStatusHistory(1)).toEqual([
      { status: 'pending', at: 1 },
      { status: 'waiting', at: 2 },
      { status: 'succeeded', at: 3 },
    ]);
    // Commands active at the migration end after it: their end is read from the row.
    await store.apply(
      batch({
        commandUpdates: [
          commandUpdate(command(2, { status: 'failed', updatedAt: 7, endedAt: 7 })),
          commandUpdate(command(3, { status: 'aborting', updatedAt: 7 })),
        ],
      }),
    );
    expect(await store.getStatusHistory(2)).toEqual([
      { status: 'pending', at: 1 },
      { status: 'waiting', at: 2 },
      { status: 'failed', at: 7 },
    ]);
    expect(await store.getStatusHistory(3)).toEqual([
      { status: 'pending', at: 1 },
      { status: 'aborting', at: 7 },
    ]);
  });

  it('a history row left by hand for a first or terminal status wins, and fails no batch', async () => {
    raw(path, (db) =>
      db.exec(
        "INSERT INTO command_status_history VALUES (1, 'pending', 7), (1, 'waiting', 8), (1, 'succeeded', 9)",
      ),
    );
    await store.apply(batch({ commandInserts: [command(1, { updatedAt: 1 })] }));
    // The update trigger meets the row left by hand (ON CONFLICT DO NOTHING keeps it).
    await store.apply(
      batch({ commandUpdates: [commandUpdate(command(1, { status: 'waiting', updatedAt: 2 }))] }),
    );
    await store.apply(
      batch({
        commandUpdates: [
          commandUpdate(command(1, { status: 'succeeded', updatedAt: 3, endedAt: 3 })),
        ],
      }),
    );
    expect(await store.getStatusHistory(1)).toEqual([
      { status: 'pending', at: 7 },
      { status: 'waiting', at: 8 },
      { status: 'succeeded', at: 9 },
    ]);
  });
});
