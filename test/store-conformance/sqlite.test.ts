/**
 * Runs the store conformance suite on real SQLite files (a fresh temp directory per test), plus
 * the checks only SQLite has: the transition tables match src/core/states.ts, the queries use the
 * partial indexes, and migration and ownership work across real processes.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CocoError, ErrorCode } from '../../src/core/errors.js';
import { MACHINES } from '../../src/core/states.js';
import { FOREIGN_OWNER_STALE_MS } from '../../src/store/sqlite/connection.js';
import { migrations as sqliteMigrations } from '../../src/generated/sqlite-migrations.js';
import {
  sqliteStore,
  type SqliteStore,
  type SqliteStoreOptions,
} from '../../src/store/sqlite/sqlite-store.js';
import {
  LOAD_CHUNK,
  MULTI_ROWS,
  MULTI_ROW_SQL,
  SQL,
  listCommandsQuery,
  taskInsertValues,
} from '../../src/store/sqlite/statements.js';
import { SqliteWriter } from '../../src/store/sqlite/writer.js';
import { parseCommandRowFast } from '../../src/store/rows/parse-fast.js';
import { T0, batch, command, commandUpdate, endedCommand, task, undo } from './fixtures.js';
import type { ActiveSnapshot } from '../../src/store/port.js';
import { rejectsWith, type StoreHarness } from './harness.js';
import { describeStoreConformance } from './suite.js';
import { raw, rewriteRow } from '../support/sqlite-rows.js';

const STORE_MODULE = fileURLToPath(
  new URL('../../src/store/sqlite/sqlite-store.ts', import.meta.url),
);

/** A pid that no process has: that of a process that has just exited. */
function deadPid(): number {
  const pid = spawnSync(process.execPath, ['-e', '']).pid;
  expect(() => process.kill(pid, 0)).toThrow();
  return pid;
}

async function tempDb(): Promise<{ dir: string; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'coco-store-'));
  return { dir, path: join(dir, 'coco.db') };
}

/** How a harness's stores write: the writer thread (small batches inline or not), or inline. */
type WriteMode = Pick<SqliteStoreOptions, 'writerThread' | 'inlineMaxRows'>;

async function harness(mode: WriteMode): Promise<StoreHarness & { path: string }> {
  const { dir, path } = await tempDb();
  const stores: SqliteStore[] = [sqliteStore({ path, ...mode })];
  return {
    path,
    store: stores[0]!,
    singleWriter: true,
    async another() {
      const s = sqliteStore({ path, ...mode });
      stores.push(s);
      return s;
    },
    async cleanup() {
      for (const s of stores) await s.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
    async simulateDeadOwner(nodeId) {
      const pid = deadPid();
      raw(path, (db) =>
        db
          .prepare(
            'INSERT OR REPLACE INTO coco_owner (singleton, node_id, pid, host, heartbeat_at, since) VALUES (1, ?, ?, ?, ?, ?)',
          )
          .run(nodeId, pid, hostname(), Date.now(), Date.now()),
      );
    },
    async corruptCommandRow(id, how) {
      raw(path, (db) =>
        rewriteRow(
          db,
          'commands',
          'id = ?',
          [id],
          how === 'json' ? 'params' : 'status',
          how === 'json' ? '{"broken' : 'exploded',
        ),
      );
    },
    async corruptTaskRow(commandId, ordinal, how) {
      raw(path, (db) =>
        rewriteRow(
          db,
          'tasks',
          'command_id = ? AND ordinal = ?',
          [commandId, ordinal],
          how === 'json' ? 'error' : 'status',
          how === 'json' ? 'nope' : 'lost',
        ),
      );
    },
  };
}

describeStoreConformance('sqlite (writer thread)', () =>
  harness({ writerThread: true, inlineMaxRows: 0 }),
);
describeStoreConformance('sqlite (writer thread, small batches on the event loop)', () =>
  harness({ writerThread: true }),
);
describeStoreConformance('sqlite (inline writes)', () => harness({ writerThread: false }));

/** Starts `node` running `code` (an ES module body) with the store module's URL in STORE_MODULE. */
function node(code: string, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    env: { ...process.env, ...env, STORE_MODULE },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
}

/** Collects a child's stdout until it exits with code 0. */
function output(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`child exited with ${code}: ${out}`)),
    );
  });
}

/** Resolves once the child has written `marker` on stdout. */
function waitFor(child: ChildProcess, marker: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(marker)) resolve();
    });
    child.on('exit', (code) =>
      reject(new Error(`child exited with ${code} before "${marker}": ${out}`)),
    );
  });
}

describe('sqlite store specifics', () => {
  let dir: string;
  let path: string;
  const children: ChildProcess[] = [];
  const stores: SqliteStore[] = [];
  const open = (options: Partial<Parameters<typeof sqliteStore>[0]> = {}): SqliteStore => {
    const s = sqliteStore({ path, ...options });
    stores.push(s);
    return s;
  };

  beforeEach(async () => {
    ({ dir, path } = await tempDb());
  });
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('the transition tables equal the machines of src/core/states.ts', async () => {
    await open().migrate();
    const tables = {
      command: 'command_transitions',
      compensation: 'compensation_transitions',
      task: 'task_transitions',
      undo: 'undo_transitions',
    } as const;
    for (const [machine, table] of Object.entries(tables)) {
      const rows = raw(path, (db) =>
        db.prepare(`SELECT from_status AS f, to_status AS t FROM ${table}`).all(),
      ) as { f: string; t: string }[];
      const table_: Readonly<Record<string, readonly string[]>> =
        MACHINES[machine as keyof typeof MACHINES];
      const expected = Object.entries(table_).flatMap(([f, tos]) => tos.map((t) => `${f}->${t}`));
      expect(rows.map((r) => `${r.f}->${r.t}`).sort(), machine).toEqual([...expected].sort());
    }
  });

  it('uses WAL, keeps a migration ledger, and makes a store id of c + 10 hex digits', async () => {
    const { storeId } = await open().open('n1');
    expect(storeId).toMatch(/^c[0-9a-f]{10}$/);
    raw(path, (db) => {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const ledger = db.prepare('SELECT version, name FROM coco_migrations ORDER BY version').all();
      expect(ledger[0]).toEqual({ version: 1, name: 'init' });
    });
  });

  it('the hot queries use the partial indexes', async () => {
    await open().migrate();
    raw(path, (db) => {
      const plan = (sql: string, ...args: unknown[]): string =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[])
          .map((r) => r.detail)
          .join(' | ');
      // The load's queries each read one chunk of active command ids: (after, upTo].
      const chunk = [0, 20_000];
      expect(plan(SQL.activeChunkEnd, 0)).toContain('commands_active');
      expect(plan(SQL.activeCommands, ...chunk)).toContain('commands_active');
      expect(plan(SQL.activeTasks, ...chunk)).toMatch(
        /^(SCAN|SEARCH) c USING COVERING INDEX commands_active .*SEARCH t USING PRIMARY KEY/,
      );
      expect(plan(SQL.activeUndo, ...chunk)).toMatch(
        /^(SCAN|SEARCH) c USING COVERING INDEX commands_active .*SEARCH u USING PRIMARY KEY/,
      );
      expect(
        plan(SQL.activeTasks, ...chunk) +
          plan(SQL.activeUndo, ...chunk) +
          plan(SQL.endedChildren, ...chunk),
      ).not.toContain('TEMP B-TREE');
      expect(plan(SQL.endedChildren, ...chunk)).toMatch(
        /^(SCAN|SEARCH) p USING COVERING INDEX commands_active .*SEARCH c USING INDEX commands_children/,
      );
      expect(plan(SQL.getCommandByKey, 'k')).toContain('commands_idempotency');
      const byParent = listCommandsQuery({ parentId: 1, limit: 10 });
      expect(plan(byParent.sql, ...byParent.params)).toContain('commands_children');
      const byRoot = listCommandsQuery({ rootId: 1, limit: 10 });
      expect(plan(byRoot.sql, ...byRoot.params)).toContain('commands_root');
    });
  });

  it('a BLOB in a row (which the JSON bulk read refuses) is reported, and the load goes on', async () => {
    const store = open();
    await store.open('n1');
    await store.apply(
      batch({
        commandInserts: [command(1), command(2), command(3)],
        taskInserts: [task(1, 0), task(2, 0)],
      }),
    );
    raw(path, (db) => {
      db.prepare("UPDATE commands SET params = X'00ff' WHERE id = 2").run();
      db.prepare("UPDATE tasks SET args = X'01' WHERE command_id = 1").run();
    });
    const snap = await store.loadActive();
    expect(snap.commands.map((c) => c.id)).toEqual([1, 3]);
    expect(snap.tasks).toEqual([]);
    expect(snap.corrupt.map((c) => [c.table, c.commandId])).toEqual([
      ['commands', 2],
      ['tasks', 1],
    ]);
    expect(snap.corrupt[0]?.error.message).toMatch(/params: expected JSON text/);
    await rejectsWith(store.getCommand(2), ErrorCode.CorruptRow);
  });

  it('the JSON bulk read embeds JSON text as stored, and refuses a BLOB holding JSON text as the plain read does', async () => {
    // The JSON form splices a JSON column's own text into the row once SQLite has checked it
    // (statements.ts asEmbeddedJson): strict JSON with spaces and escapes is read in that form
    // and loads as it is; a BLOB whose bytes are JSON text must fail that form (the plain form
    // reports the row: a JSON column holds text).
    const store = open();
    await store.open('n1');
    await store.apply(
      batch({
        commandInserts: [command(1), command(2), command(3)],
        taskInserts: [task(2, 0), task(3, 0)],
      }),
    );
    const jsonForm = (sql: string): unknown[] =>
      raw(path, (db) => db.prepare<unknown[], string>(sql).pluck(true).all(0, 10)).map(
        (text) => JSON.parse(text) as unknown,
      );
    raw(path, (db) =>
      db
        .prepare(`UPDATE commands SET params = ' { "i" : [1, 2.5e3, "\\u00e9\\n"] } ' WHERE id = 2`)
        .run(),
    );
    const spaced = jsonForm(SQL.activeCommandsJson)[1];
    expect(parseCommandRowFast(spaced, true)).toMatchObject({
      ok: true,
      value: { id: 2, params: { i: [1, 2500, '\u00e9\n'] } },
    });
    expect((await store.loadActive()).commands[1]?.params).toEqual({ i: [1, 2500, '\u00e9\n'] });
    raw(path, (db) => {
      db.prepare("UPDATE commands SET params = X'7b7d' WHERE id = 1").run();
      db.prepare("UPDATE tasks SET args = X'5b315d' WHERE command_id = 3").run();
    });
    expect(() => jsonForm(SQL.activeCommandsJson)).toThrow(/malformed JSON/);
    expect(() => jsonForm(SQL.activeTasksJson)).toThrow(/malformed JSON/);
    const snap = await store.loadActive();
    expect(snap.commands.map((c) => c.id)).toEqual([2, 3]);
    expect(snap.tasks.map((t) => t.commandId)).toEqual([2]);
    expect(snap.corrupt.map((c) => [c.table, c.commandId])).toEqual([
      ['commands', 1],
      ['tasks', 3],
    ]);
    expect(snap.corrupt[0]?.error.message).toMatch(/params: expected JSON text/);
  });

  it('a load reads every active command, task and ended child across its chunks', async () => {
    const store = open();
    await store.open('n1');
    // One chunk and a bit, with ended commands (skipped by the index) between active ones,
    // and a parent at each chunk edge with its ended child.
    const n = Math.ceil(((LOAD_CHUNK + 37) * 7) / 6); // a seventh of them ended
    const commands = [];
    const tasks = [];
    for (let id = 1; id <= n; id++) {
      commands.push(id % 7 === 0 ? endedCommand(id) : command(id));
      if (id % 7 !== 0) tasks.push(task(id, 0));
    }
    const activeIds = commands.filter((c) => c.endedAt === null).map((c) => c.id);
    const edge = activeIds[LOAD_CHUNK - 1]!; // the last command of the first chunk
    const next = activeIds[LOAD_CHUNK]!; // the first of the second
    const children = [
      endedCommand(n + 1, { parentId: edge, rootId: edge, seq: 0, originStage: 0 }),
      endedCommand(n + 2, { parentId: next, rootId: next, seq: 0, originStage: 0 }),
    ];
    await store.apply(batch({ commandInserts: [...commands, ...children], taskInserts: tasks }));
    const snap = await store.loadActive();
    expect(snap.corrupt).toEqual([]);
    expect(snap.commands.map((c) => c.id)).toEqual(activeIds);
    expect(snap.tasks.map((t) => t.commandId)).toEqual(activeIds);
    expect(snap.endedChildren.map((c) => [c.id, c.parentId])).toEqual([
      [n + 1, edge],
      [n + 2, next],
    ]);
  });

  it('streamActive hands over the rows of loadActive, in the reader thread past one chunk and on the event loop', async () => {
    const store = open();
    await store.open('n1');
    // Two chunks: in the first, a task whose args are a BLOB and a command whose parameters are
    // JSON5, not JSON (their JSON queries fail: the chunk's commands and tasks are read in their
    // plain form); in the second, a command row whose JSON text cannot be parsed.
    const n = LOAD_CHUNK + 40;
    const commands = [];
    const tasks = [];
    for (let id = 1; id <= n; id++) {
      commands.push(command(id));
      tasks.push(task(id, 0), task(id, 1));
    }
    const child = endedCommand(n + 1, { parentId: 3, rootId: 3, seq: 0, originStage: 0 });
    await store.apply(
      batch({
        commandInserts: [...commands, child],
        taskInserts: tasks,
        undoInserts: [undo(2, 0), undo(n, 0)],
      }),
    );
    const bad = LOAD_CHUNK + 7;
    raw(path, (db) => {
      db.prepare("UPDATE tasks SET args = X'01' WHERE command_id = 9 AND ordinal = 1").run();
      db.prepare("UPDATE commands SET params = '{' WHERE id = ?").run(bad);
      db.prepare("UPDATE commands SET params = '{i:1}' WHERE id = 4").run();
    });
    const collect = async (s: SqliteStore): Promise<ActiveSnapshot> => {
      const snap = { commands: [], tasks: [], undo: [], endedChildren: [], corrupt: [] } as {
        [K in keyof ActiveSnapshot]: ActiveSnapshot[K][number][];
      };
      await s.streamActive({
        command: (r) => snap.commands.push(r),
        task: (t) => snap.tasks.push(t),
        undo: (u) => snap.undo.push(u),
        endedChild: (r) => snap.endedChildren.push(r),
        corrupt: (row) => snap.corrupt.push(row),
      });
      return snap;
    };
    const loaded = await store.loadActive();
    expect(loaded.commands).toHaveLength(n - 2);
    expect(loaded.tasks).toHaveLength(2 * n - 5); // the unreadable commands', and the BLOB
    expect(loaded.corrupt.map((c) => [c.table, c.commandId])).toEqual([
      ['commands', 4],
      ['tasks', 9],
      ['commands', bad],
    ]);
    expect(loaded.corrupt[0]?.error.message).toMatch(/params: invalid JSON/);
    expect(loaded.endedChildren.map((c) => c.id)).toEqual([n + 1]);
    expect(await collect(store)).toEqual(loaded); // in the reader thread
    expect(await collect(open({ writerThread: false }))).toEqual(loaded); // on the event loop
  });

  it('ids inserted by a batch without reserveIds are not handed out afterwards', async () => {
    const store = open();
    await store.open('n1');
    const first = await store.reserveIds(1);
    await store.apply(batch({ commandInserts: [command(first + 10)] }));
    expect(await store.reserveIds(1)).toBe(first + 11);
  });

  it('a status already in the history does not fail a batch (the batch statements say OR ROLLBACK)', async () => {
    // The batch statements' OR ROLLBACK replaces the OR clause of the statements their triggers
    // run (migration 0007): the history's insert (by the update trigger: since 0008 an insert
    // writes no history row) must ignore a duplicate by ON CONFLICT DO NOTHING, which it does not
    // replace. A duplicate cannot come from the engine (a command never returns to a status); a
    // row left by hand or by an older schema's backfill can.
    for (const writerThread of [true, false]) {
      const store = open({ writerThread });
      await store.open('n1');
      const id = (await store.reserveIds(1)) + (writerThread ? 0 : 1);
      raw(path, (db) =>
        db
          .prepare('INSERT INTO command_status_history (command_id, status, at) VALUES (?, ?, ?)')
          .run(id, 'waiting', T0 + 9),
      );
      await store.apply(batch({ commandInserts: [command(id)] }));
      await store.apply(
        batch({
          commandUpdates: [commandUpdate(command(id, { status: 'waiting', updatedAt: T0 + 2 }))],
        }),
      );
      expect(await store.getStatusHistory(id)).toEqual([
        { status: 'pending', at: T0 },
        { status: 'waiting', at: T0 + 9 },
      ]);
      await store.close();
    }
  });

  it('the writer thread stores the inserts of a batch many rows per run, whole or not at all', async () => {
    const store = open();
    await store.open('n1');
    const n = 2 * MULTI_ROWS + 5; // two multi-row runs and five one-row runs per insert
    const first = await store.reserveIds(2 * n);
    const ids = Array.from({ length: n }, (_, i) => first + i);
    const commands = ids.map((id, i) => command(id, { type: `t${i}`, params: { i } }));
    const tasks = ids.flatMap((id) => [task(id, 0), task(id, 1, { verb: `v${id}` })]);
    await store.apply(batch({ commandInserts: commands, taskInserts: tasks }));
    const snap = await store.loadActive();
    expect(snap.commands).toEqual(commands);
    expect(snap.tasks).toEqual(tasks);
    // A duplicate in the middle of the second multi-row run: nothing of the batch is stored.
    const more = Array.from({ length: n }, (_, i) => command(first + n + i));
    more[MULTI_ROWS + 7] = command(ids[3]!);
    await rejectsWith(store.apply(batch({ commandInserts: more })), ErrorCode.BatchRefused);
    expect((await store.loadActive()).commands).toEqual(commands);
  });

  it('the writer thread refuses a multi-row run whose rows have the wrong width', async () => {
    await open().migrate();
    const writer = new SqliteWriter(
      { path, synchronous: 'FULL', busyTimeoutMs: 5_000 },
      SQL,
      MULTI_ROW_SQL,
    );
    try {
      const rows = Array.from({ length: MULTI_ROWS }, (_, i) => taskInsertValues(task(1, i)));
      // One value short, then one too many: concatenated, they would bind without an error,
      // each value of the first one shifted into the next column.
      rows[3] = rows[3]!.slice(0, -1);
      rows[4] = [...rows[4]!, null];
      await expect(writer.write([['insertTask', rows, false]])).rejects.toThrow(
        /a row of 12 values/,
      );
    } finally {
      await writer.close();
    }
  });

  it('refuses a database migrated by newer code', async () => {
    await open().migrate();
    raw(path, (db) => db.prepare("INSERT INTO coco_migrations VALUES (999, 'future', 0)").run());
    const error = await rejectsWith(open().migrate(), ErrorCode.StoreFailed);
    expect(error.message).toContain('999');
  });

  it('validates its options', () => {
    for (const options of [
      { path: '' },
      { path: ':memory:' },
      { path: 'x.db', synchronous: 'OFF' as 'FULL' },
      { path: 'x.db', busyTimeoutMs: -1 },
    ]) {
      expect(() => sqliteStore(options)).toThrow(CocoError);
    }
  });

  it('an owner on another host is alive while its heartbeat is recent', async () => {
    const store = open();
    await store.migrate();
    const setOwner = (heartbeatAt: number): void =>
      void raw(path, (db) =>
        db
          .prepare(
            "INSERT OR REPLACE INTO coco_owner VALUES (1, 'far', 4242, 'elsewhere.example', ?, 0)",
          )
          .run(heartbeatAt),
      );
    setOwner(Date.now());
    const error = await rejectsWith(store.open('near'), ErrorCode.StoreInUse);
    expect(error.message).toMatch(/"far".*pid 4242.*elsewhere\.example.*since 1970/);
    setOwner(Date.now() - FOREIGN_OWNER_STALE_MS - 1_000);
    await expect(store.open('near')).resolves.toHaveProperty('storeId');
  });

  it('a file a live owner holds is not migrated: a node of a newer release is refused before it changes the schema', async () => {
    // The file as the release before the latest migration left it, owned by a live node of it.
    const previous = sqliteMigrations.at(-2)!.version;
    raw(path, (db) => {
      db.exec(
        'CREATE TABLE coco_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
      );
      for (const m of sqliteMigrations.filter((m) => m.version <= previous)) {
        db.exec(m.sql);
        db.prepare('INSERT INTO coco_migrations VALUES (?, ?, 0)').run(m.version, m.name);
      }
      db.prepare("INSERT INTO coco_meta (key, value) VALUES ('store_id', 'c0123456789')").run();
      db.prepare("INSERT INTO coco_owner VALUES (1, 'older', 4242, 'elsewhere.example', ?, 0)").run(
        Date.now(),
      );
    });
    const version = (): unknown =>
      raw(path, (db) => db.prepare('SELECT max(version) AS v FROM coco_migrations').get());
    const store = open();
    const refused = await rejectsWith(store.open('newer'), ErrorCode.StoreInUse);
    expect(refused.message).toMatch(
      /cannot migrate to schema version \d+ while the store is in use/,
    );
    expect(refused.message).toContain('"older"');
    await rejectsWith(store.migrate(), ErrorCode.StoreInUse);
    expect(version()).toEqual({ v: previous });
    // Once the older node is gone (its heartbeat stale), the newer one migrates and takes over.
    raw(path, (db) =>
      db
        .prepare('UPDATE coco_owner SET heartbeat_at = ?')
        .run(Date.now() - FOREIGN_OWNER_STALE_MS - 1_000),
    );
    await expect(store.open('newer')).resolves.toHaveProperty('storeId', 'c0123456789');
    expect(version()).toEqual({ v: sqliteMigrations.at(-1)!.version });
  });

  it('processes migrating the same new file at once serialise: the schema is applied once', async () => {
    const code = `
      const { sqliteStore } = await import(process.env.STORE_MODULE);
      const s = sqliteStore({ path: process.env.DB });
      console.log(JSON.stringify(await s.migrate()));
      await s.close();`;
    const runs = await Promise.all(
      Array.from({ length: 3 }, () => output(node(code, { DB: path }))),
    );
    const reports = runs.map((r) => JSON.parse(r.trim()) as { applied: number[]; current: number });
    const current = reports[0]!.current;
    expect(reports.every((r) => r.current === current)).toBe(true);
    expect(reports.flatMap((r) => r.applied).sort((x, y) => x - y)).toEqual(
      Array.from({ length: current }, (_, i) => i + 1),
    );
    raw(path, (db) =>
      expect(db.prepare('SELECT count(*) AS n FROM coco_meta').get()).toEqual({ n: 1 }),
    );
  });

  it('a live owner in another process is refused; once it is SIGKILLed it is taken over at once', async () => {
    const child = node(
      `const { sqliteStore } = await import(process.env.STORE_MODULE);
       const s = sqliteStore({ path: process.env.DB });
       await s.open('child-node');
       console.log('OPEN');
       setInterval(() => {}, 1000);`,
      { DB: path },
    );
    children.push(child);
    await waitFor(child, 'OPEN');
    const store = open();
    const error = await rejectsWith(store.open('parent-node'), ErrorCode.StoreInUse);
    expect(error.message).toContain('child-node');
    expect(error.message).toContain(`pid ${child.pid}`);
    expect(error.message).toContain(hostname());
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    await expect(store.open('parent-node')).resolves.toHaveProperty('storeId');
    await store.apply(batch({ commandInserts: [command(1)] }));
    expect((await store.getCommand(1))?.id).toBe(1);
  });

  it('an owner recorded with our own pid is dead unless a store of this process holds the file', async () => {
    const first = open();
    await first.open('n1');
    await rejectsWith(open().open('n2'), ErrorCode.StoreInUse);
    // Simulate an instance that vanished without closing (the row stays, nobody holds it).
    raw(path, (db) => db.prepare("UPDATE coco_owner SET node_id = 'gone'").run());
    await first.close(); // releases nothing: the row is no longer n1's
    raw(path, (db) =>
      expect(db.prepare('SELECT node_id FROM coco_owner').get()).toEqual({ node_id: 'gone' }),
    );
    await expect(open().open('n3')).resolves.toHaveProperty('storeId');
  });
});
