/**
 * The SQLite writer thread's batch path beyond the conformance suite: updates run
 * {@link MULTI_ROWS} rows per statement (`UPDATE ... FROM (VALUES ...)`) with the one-row runs'
 * guarantees, and the rows it is sent in columns reach SQLite as they were given.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import type { ChangeBatch } from '../../src/store/port.js';
import { batchOps } from '../../src/store/sqlite/operations.js';
import { sqliteStore, type SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import {
  MULTI_ROWS,
  MULTI_ROW_SQL,
  MULTI_ROW_UPDATES,
  SQL,
} from '../../src/store/sqlite/statements.js';
import { SqliteWriter, type WriteOp } from '../../src/store/sqlite/writer.js';
import { raw } from '../support/sqlite-rows.js';
import {
  T0,
  batch,
  command,
  commandUpdate,
  task,
  taskUpdate,
  undo,
  undoUpdate,
} from './fixtures.js';
import { rejectsWith } from './harness.js';

/** Two multi-row runs and five one-row runs per update. */
const N = 2 * MULTI_ROWS + 5;
const FIRST = 1;
const ids = Array.from({ length: N }, (_, i) => FIRST + i);

/** N commands, each with a task and an undo step. */
function seed(): ChangeBatch {
  return batch({
    commandInserts: ids.map((id) => command(id)),
    taskInserts: ids.map((id) => task(id, 0)),
    undoInserts: ids.map((id) => undo(id, 0)),
  });
}

/** Every command, task and undo step of {@link seed} ended, each with values of its own. */
function ends(): ChangeBatch {
  return batch({
    commandUpdates: ids.map((id, i) =>
      commandUpdate(
        command(id, {
          status: i % 3 === 0 ? 'failed' : 'succeeded',
          result: { i },
          error: i % 3 === 0 ? { code: 'E', message: `m${i}` } : null,
          updatedAt: T0 + i,
          endedAt: T0 + 1_000 + i,
          owner: i % 2 === 0 ? `node-${i}` : null,
        }),
      ),
    ),
    taskUpdates: ids.map((id, i) =>
      taskUpdate(task(id, 0, { status: 'succeeded', result: { t: i }, endedAt: T0 + 2_000 + i })),
    ),
    undoUpdates: ids.map((id, i) =>
      undoUpdate(undo(id, 0, { status: i % 2 === 0 ? 'done' : 'failed' })),
    ),
  });
}

describe('sqlite writer thread', () => {
  let dir: string;
  const stores: SqliteStore[] = [];
  const writers: SqliteWriter[] = [];
  const open = (name: string, writerThread = true): SqliteStore => {
    const s = sqliteStore({ path: join(dir, name), writerThread });
    stores.push(s);
    return s;
  };
  /** A writer thread on a migrated file, with every multi-row statement. */
  const writer = async (name: string): Promise<SqliteWriter> => {
    const path = join(dir, name);
    await sqliteStore({ path, writerThread: false }).migrate();
    const w = new SqliteWriter(
      { path, synchronous: 'FULL', busyTimeoutMs: 5_000 },
      SQL,
      MULTI_ROW_SQL,
      MULTI_ROW_UPDATES,
    );
    writers.push(w);
    return w;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coco-writer-'));
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    for (const w of writers.splice(0)) await w.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Everything stored of the commands of {@link ids}. */
  async function stored(store: SqliteStore): Promise<unknown[]> {
    return Promise.all(
      ids.map(async (id) => [
        await store.getCommand(id),
        await store.getTasks(id),
        await store.getUndo(id),
        await store.getStatusHistory(id),
      ]),
    );
  }

  it('runs a batch updates MULTI_ROWS rows per statement, storing what one-row runs store', async () => {
    const w = await writer('runs.db');
    await w.write(batchOps(seed()));
    await w.write(batchOps(ends()));
    // Three updates of N rows: two multi-row runs and five one-row runs each (3 × N one by one).
    expect(w.stats.runs).toBe(3 * (2 + 5));
    await w.write(batchOps(batch({ commandsSettled: ids })));
    expect(w.stats.runs).toBe(2 + 5);

    const threaded = open('threaded.db');
    const inline = open('inline.db', false);
    for (const store of [threaded, inline]) {
      await store.open('n1');
      for (const b of [seed(), ends(), batch({ commandsSettled: ids })]) await store.apply(b);
    }
    const rows = await stored(threaded);
    expect(rows).toEqual(await stored(inline));
    // Each command's history holds its two statuses, both read from its row (migration 0008):
    // the first as inserted, the end at its ended_at.
    expect(rows[0]).toEqual([
      expect.objectContaining({ status: 'failed', tasksCleared: true, result: { i: 0 } }),
      [expect.objectContaining({ status: 'succeeded', result: { t: 0 } })],
      [expect.objectContaining({ status: 'done' })],
      [
        { status: 'pending', at: T0 },
        { status: 'failed', at: T0 + 1_000 },
      ],
    ]);
    expect((await threaded.loadActive()).commands).toEqual([]);
  });

  it('a missing row in a multi-row run fails the batch, naming the row; nothing is stored', async () => {
    const store = open('missing.db');
    await store.open('n1');
    await store.apply(seed());
    const before = await stored(store);
    const good = ends();
    for (const [bad, named] of [
      [
        {
          commandUpdates: good.commandUpdates.map((u, i) => (i === 7 ? { ...u, id: 999_999 } : u)),
        },
        /no such row \(999999\)/,
      ],
      [
        {
          taskUpdates: good.taskUpdates.map((u, i) =>
            i === MULTI_ROWS + 3 ? { ...u, ordinal: 77 } : u,
          ),
        },
        /no such row \(77\)/,
      ],
    ] as const) {
      const error = await rejectsWith(store.apply({ ...good, ...bad }), ErrorCode.BatchRefused);
      expect(error.message).toMatch(named);
    }
    expect(await stored(store)).toEqual(before);
  });

  it('an illegal transition in a multi-row run fails the batch; nothing is stored', async () => {
    const store = open('illegal.db');
    await store.open('n1');
    await store.apply(seed());
    const before = await stored(store);
    const good = ends();
    const bad = {
      ...good,
      undoUpdates: good.undoUpdates.map((u, i) => (i === 5 ? { ...u, status: 'recorded' } : u)),
      taskUpdates: good.taskUpdates.map((u, i) => (i === 11 ? { ...u, status: 'queued' } : u)),
    } satisfies ChangeBatch;
    await rejectsWith(store.apply(bad), ErrorCode.IllegalTransition);
    expect(await stored(store)).toEqual(before);
  });

  it('a key twice in one run: the rows before the second run first, in the batch order', async () => {
    const w = await writer('twice.db');
    await w.write(batchOps(seed()));
    // The command of ids[2] goes to waiting, then (later in the same 20 rows) to succeeded; its
    // task to running, then to succeeded. One run holding both would update each row once.
    const c = (id: number, status: 'waiting' | 'succeeded'): ChangeBatch['commandUpdates'][0] =>
      commandUpdate(command(id, { status, updatedAt: status === 'waiting' ? T0 + 1 : T0 + 2 }));
    const twice = batch({
      commandUpdates: [
        ...ids.map((id) => c(id, 'waiting')).slice(0, 6),
        c(ids[2]!, 'succeeded'),
        ...ids.map((id) => c(id, 'waiting')).slice(6),
      ],
      taskUpdates: [
        ...ids.map((id) => taskUpdate(task(id, 0, { status: 'running' }))),
        taskUpdate(task(ids[N - 1]!, 0, { status: 'succeeded' })),
      ],
    });
    await w.write(batchOps(twice));
    // Commands: 6 one by one at the repeated key, then 2 runs of 20, then 0 left (6 + 2);
    // tasks: 2 runs, then 5 one by one and the repeated one (2 + 6).
    expect(w.stats.runs).toBe(6 + 2 + 2 + 6);
    const store = open('twice.db');
    expect((await store.getCommand(ids[2]!))?.status).toBe('succeeded');
    expect(await store.getStatusHistory(ids[2]!)).toEqual([
      { status: 'pending', at: T0 },
      { status: 'waiting', at: T0 + 1 },
      { status: 'succeeded', at: T0 + 2 },
    ]);
    expect((await store.getCommand(ids[3]!))?.status).toBe('waiting');
    expect((await store.getTasks(ids[N - 1]!))[0]?.status).toBe('succeeded');
    expect((await store.getTasks(ids[N - 2]!))[0]?.status).toBe('running');
  });

  it('values of every kind reach SQLite as bound on the event loop', async () => {
    // Numbers (small, large, fractional, negative zero), strings (empty, non-ASCII), and values
    // sent as they are (a BLOB, a bigint); more rows than a multi-row run. (The entities' columns
    // are NOT NULL: the other tests store nulls.)
    const values: unknown[] = [
      0, -0, 1.5, -7, 2 ** 53, T0, '', 'plain', '€ ✓ 😀', '{"a":[1,2]}',
      Buffer.from([0, 1, 255]), 12_345_678_901_234n,
    ]; // prettier-ignore
    const rows = Array.from({ length: MULTI_ROWS + 7 }, (_, i) => [
      'kind',
      `id-${i}`,
      values[i % values.length],
      values[(i + 3) % values.length],
      values[(i + 5) % values.length],
    ]);
    const ops: WriteOp[] = [['putEntity', rows, false]];
    const w = await writer('kinds.db');
    await w.write(ops);
    const read = (path: string): unknown[] =>
      raw(path, (db) =>
        db
          .prepare(
            'SELECT id, value, typeof(value) AS vt, command_id, typeof(command_id) AS ct, updated_at, typeof(updated_at) AS ut FROM entities ORDER BY id',
          )
          .all(),
      );
    const inlinePath = join(dir, 'kinds-inline.db');
    await sqliteStore({ path: inlinePath, writerThread: false }).migrate();
    raw(inlinePath, (db) => {
      db.defaultSafeIntegers(false);
      const put = db.prepare(SQL.putEntity);
      for (const row of rows) put.run(...row);
    });
    const threaded = read(join(dir, 'kinds.db'));
    expect(threaded).toHaveLength(MULTI_ROWS + 7);
    expect(threaded).toEqual(read(inlinePath));
  });
});
