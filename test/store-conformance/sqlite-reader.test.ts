/**
 * The SQLite store's reader thread spawned ahead of its read (src/store/sqlite/reader.ts): it
 * reads the state as of the moment it is asked, not as of its start; the store spawns it at open
 * when much is active and uses it for the restart's read; one never asked ends with the store.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import type { ActiveRowSink, ActiveSnapshot } from '../../src/store/port.js';
import { ReaderThread } from '../../src/store/sqlite/reader.js';
import { sqliteStore, type SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { LOAD_CHUNK } from '../../src/store/sqlite/statements.js';
import { batch, command, task } from './fixtures.js';
import { rejectsWith } from './harness.js';

let dir = '';
let path = '';
const stores: SqliteStore[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'coco-reader-'));
  path = join(dir, 'coco.db');
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

function open(): SqliteStore {
  const s = sqliteStore({ path });
  stores.push(s);
  return s;
}

const settings = (): { path: string; synchronous: 'FULL'; busyTimeoutMs: number } => ({
  path,
  synchronous: 'FULL',
  busyTimeoutMs: 5000,
});

/** A sink collecting what it is handed, and the snapshot it makes. */
function collector(): { sink: ActiveRowSink; snap: ActiveSnapshot } {
  const snap = { commands: [], tasks: [], undo: [], endedChildren: [], corrupt: [] } as {
    [K in keyof ActiveSnapshot]: ActiveSnapshot[K][number][];
  };
  return {
    snap,
    sink: {
      command: (r) => snap.commands.push(r),
      task: (t) => snap.tasks.push(t),
      undo: (u) => snap.undo.push(u),
      endedChild: (r) => snap.endedChildren.push(r),
      corrupt: (row) => snap.corrupt.push(row),
    },
  };
}

it('a reader spawned ahead reads the state as of its stream, not as of its start', async () => {
  const store = open();
  await store.open('n1');
  await store.apply(
    batch({ commandInserts: [command(1), command(2)], taskInserts: [task(1, 0), task(2, 0)] }),
  );
  const reader = ReaderThread.spawn(settings());
  await reader.ready; // its connection is open and its statements prepared: it waits
  // Written after the thread started, before it is asked.
  await store.apply(batch({ commandInserts: [command(3)], taskInserts: [task(3, 0), task(3, 1)] }));
  const { sink, snap } = collector();
  await reader.stream(sink);
  expect(snap.commands.map((c) => c.id)).toEqual([1, 2, 3]);
  expect(snap.tasks.map((t) => [t.commandId, t.ordinal])).toEqual([
    [1, 0],
    [2, 0],
    [3, 0],
    [3, 1],
  ]);
  expect(snap).toEqual(await store.loadActive());
  // Once per thread.
  await rejectsWith(reader.stream(collector().sink), ErrorCode.StoreFailed);
});

it('a reader never asked ends when closed; one that could not start fails when asked', async () => {
  const store = open();
  await store.open('n1');
  const reader = ReaderThread.spawn(settings());
  await reader.ready;
  reader.close();
  const closed = await rejectsWith(reader.stream(collector().sink), ErrorCode.StoreFailed);
  expect(closed.message).toMatch(/closed/);

  const missing = ReaderThread.spawn({ ...settings(), path: join(dir, 'none.db') });
  await missing.ready;
  await rejectsWith(missing.stream(collector().sink), ErrorCode.StoreFailed);
});

it('past one chunk, the store starts its reader at open and reads with it what was written since', async () => {
  const n = LOAD_CHUNK + 10;
  const first = open();
  await first.open('n1');
  const commands = [];
  const tasks = [];
  for (let id = 1; id <= n; id++) {
    commands.push(command(id));
    tasks.push(task(id, 0));
  }
  await first.apply(batch({ commandInserts: commands, taskInserts: tasks }));
  await first.close('n1');

  const store = open();
  await store.open('n1'); // the reader thread starts here
  await store.apply(batch({ commandInserts: [command(n + 1)], taskInserts: [task(n + 1, 0)] }));
  const { sink, snap } = collector();
  await store.streamActive(sink);
  expect(snap.commands).toHaveLength(n + 1);
  expect(snap.commands.at(-1)?.id).toBe(n + 1);
  expect(snap).toEqual(await store.loadActive());
  // The reader was used: a second read runs in a thread of its own, and sees the same.
  const again = collector();
  await store.streamActive(again.sink);
  expect(again.snap).toEqual(snap);

  // Opened and closed without a read: the waiting thread ends with the store.
  const idle = open();
  await store.close('n1');
  await idle.open('n1');
  await idle.close('n1');
});
