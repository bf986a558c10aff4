/**
 * Task ids are single-use on the reference agent, over real HTTP: a start that arrives after a
 * stop or a clear of its id is refused with TASK_ID_USED and its verb never runs — also after
 * the agent restarted on the same data directory — while a repeated start of a held id stays
 * idempotent. The memory of used ids is bounded in count and age, in memory and on disk.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import { STOPPED_BEFORE_START, usedIdError } from '../../src/protocol/used-ids.js';
import { TASKS_FILE, TaskTable, type Verb } from '../../src/reference-agent/index.js';
import { agent, captureLogger, cleanup, tempDir } from './support.js';

afterEach(cleanup);

/** A verb counting its runs per task id (a late start must not add one). */
function counted(): { verbs: Record<string, Verb>; runs: Map<string, number> } {
  const runs = new Map<string, number>();
  const count: Verb = (_args, ctx) => {
    runs.set(ctx.taskId, (runs.get(ctx.taskId) ?? 0) + 1);
    return 'ran';
  };
  return { verbs: { count }, runs };
}

const refused = (taskId: string, how: 'stopped' | 'cleared') => ({
  taskId,
  accepted: false,
  error: usedIdError(taskId, how),
});

describe('single-use task ids on the reference agent', () => {
  it('a start arriving after a stop of its id is refused; the id reports cancelled', async () => {
    const { verbs, runs } = counted();
    const { client } = await agent({ verbs });
    // The engine's start timed out, so it stopped the task; the start arrives afterwards.
    await client.stop(['late']);
    expect(await client.one('late')).toEqual({
      taskId: 'late',
      state: 'cancelled',
      error: STOPPED_BEFORE_START,
    });
    const { results } = await client.start([
      { taskId: 'late', verb: 'count' },
      { taskId: 'fresh', verb: 'count' },
    ]);
    expect(results).toEqual([refused('late', 'stopped'), { taskId: 'fresh', accepted: true }]);
    expect(runs).toEqual(new Map([['fresh', 1]]));
    expect(await client.one('late')).toMatchObject({ state: 'cancelled' });
    expect((await client.list('')).taskIds).toEqual(['fresh']); // a used id is not a held task
    // The long-poll reports the stop too: a live engine learns of it at once.
    const changes = await client.changes({ cursor: 0 });
    expect(changes.tasks.map((t) => [t.taskId, t.state])).toEqual([
      ['late', 'cancelled'],
      ['fresh', 'succeeded'],
    ]);
  });

  it('a start arriving after a clear of its id is refused, whether the task ran or not', async () => {
    const { verbs, runs } = counted();
    const { client } = await agent({ verbs });
    await client.start([{ taskId: 'ran', verb: 'count' }]);
    expect(await client.one('ran')).toMatchObject({ state: 'succeeded' });
    await client.clear(['ran', 'never-arrived']);
    const { results } = await client.start([
      { taskId: 'ran', verb: 'count' },
      { taskId: 'never-arrived', verb: 'count' },
    ]);
    expect(results).toEqual([refused('ran', 'cleared'), refused('never-arrived', 'cleared')]);
    expect(runs).toEqual(new Map([['ran', 1]])); // the late start did not run it a second time
    const { tasks } = await client.status(['ran', 'never-arrived']);
    expect(tasks.map((t) => t.state)).toEqual(['unknown', 'unknown']);
    expect((await client.health()).tasks).toBe(0);
  });

  it('a clear of a stopped id keeps it used; it then reports unknown', async () => {
    const { verbs, runs } = counted();
    const { client } = await agent({ verbs });
    await client.stop(['x']);
    await client.clear(['x']);
    expect(await client.one('x')).toEqual({ taskId: 'x', state: 'unknown' });
    await client.stop(['x']); // a repeated stop after the clear: still cleared, still unknown
    expect(await client.one('x')).toEqual({ taskId: 'x', state: 'unknown' });
    expect((await client.start([{ taskId: 'x', verb: 'count' }])).results).toEqual([
      refused('x', 'cleared'),
    ]);
    expect(runs.size).toBe(0);
  });

  it('a repeated start of a held id stays idempotent, a stopped one included', async () => {
    const { verbs, runs } = counted();
    const { client } = await agent({ verbs });
    await client.start([
      { taskId: 'held', verb: 'sleep', args: { ms: 60_000 } },
      { taskId: 'done', verb: 'count' },
    ]);
    await client.stop(['held']);
    const { results } = await client.start([
      { taskId: 'held', verb: 'count' },
      { taskId: 'done', verb: 'count' },
    ]);
    expect(results).toEqual([
      { taskId: 'held', accepted: true },
      { taskId: 'done', accepted: true },
    ]);
    expect(runs).toEqual(new Map([['done', 1]]));
    expect(await client.one('held')).toMatchObject({
      state: 'cancelled',
      error: { code: ErrorCode.Cancelled, message: 'task stopped by request' },
    });
  });

  it('used ids survive a restart of the agent on the same data directory', async () => {
    const dataDir = tempDir();
    const { verbs, runs } = counted();
    const first = await agent({ dataDir, verbs });
    await first.client.start([{ taskId: 'ran', verb: 'count' }]);
    expect(await first.client.one('ran')).toMatchObject({ state: 'succeeded' });
    await first.client.clear(['ran']);
    await first.client.stop(['late']);
    await first.agent.close();

    const second = await agent({ dataDir, verbs });
    expect(second.agent.previousBootId).toBe(first.agent.bootId);
    expect(await second.client.one('late')).toMatchObject({ state: 'cancelled' });
    const { results } = await second.client.start([
      { taskId: 'late', verb: 'count' },
      { taskId: 'ran', verb: 'count' },
    ]);
    expect(results).toEqual([refused('late', 'stopped'), refused('ran', 'cleared')]);
    expect(runs).toEqual(new Map([['ran', 1]]));
  });
});

describe('the memory of used ids is bounded', () => {
  function open(dataDir: string, clock: { now: number }, bounds: object) {
    return TaskTable.open({
      dataDir,
      agentId: 'agent-1',
      bootId: `boot-${clock.now}`,
      verbs: counted().verbs,
      log: captureLogger().logger,
      now: () => clock.now,
      usedIds: bounds,
    });
  }
  const start = (table: TaskTable, taskId: string) =>
    table.start([{ taskId, verb: 'count', args: null }])[0];

  it('forgets ids older than the retention, on disk too', () => {
    const dataDir = tempDir();
    const clock = { now: 1_000 };
    let table = open(dataDir, clock, { retentionMs: 60_000 });
    table.clear(['old']);
    clock.now += 30_000;
    table.stop(['young']);
    clock.now += 29_999; // 'old' is one millisecond short of its retention
    expect(start(table, 'old')).toMatchObject({ accepted: false });
    table.close();

    clock.now += 1; // 'old' expired, 'young' not: after a restart too
    table = open(dataDir, clock, { retentionMs: 60_000 });
    expect(start(table, 'old')).toEqual({ taskId: 'old', accepted: true });
    expect(start(table, 'young')).toMatchObject({
      accepted: false,
      error: { code: ErrorCode.TaskIdUsed },
    });
    table.close();
  });

  it('keeps at most maxIds, forgetting the oldest first, on disk too', () => {
    const dataDir = tempDir();
    const clock = { now: 1_000 };
    let table = open(dataDir, clock, { maxIds: 2 });
    table.stop(['a']);
    clock.now++;
    table.clear(['b']);
    clock.now++;
    table.stop(['c']);
    expect(table.status('a')).toEqual({ taskId: 'a', state: 'unknown' });
    table.close();
    table = open(dataDir, clock, { maxIds: 2 });
    expect(
      table.start(['a', 'b', 'c'].map((taskId) => ({ taskId, verb: 'count', args: null }))),
    ).toEqual([{ taskId: 'a', accepted: true }, refused('b', 'cleared'), refused('c', 'stopped')]);
    table.close();
  });

  it('upgrades a task file of the previous version (no used ids) in place', () => {
    const dataDir = tempDir();
    const old = new Database(join(dataDir, TASKS_FILE));
    old.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY, task_id TEXT NOT NULL UNIQUE, verb TEXT NOT NULL,
        args TEXT NOT NULL, state TEXT NOT NULL, progress REAL NOT NULL, result TEXT,
        error TEXT, boot_id TEXT NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER
      ) STRICT;
      INSERT INTO meta VALUES ('agent_id', 'agent-1'), ('boot_id', 'boot-old');
      INSERT INTO tasks VALUES (1, 'kept', 'count', 'null', 'succeeded', 100, '"ran"', NULL,
        'boot-old', 1, 2);
      PRAGMA user_version = 1;`);
    old.close();
    const clock = { now: 1_000 };
    let table = open(dataDir, clock, {});
    expect(table.previousBootId).toBe('boot-old');
    expect(table.status('kept')).toEqual({ taskId: 'kept', state: 'succeeded', result: 'ran' });
    table.clear(['kept']);
    table.close();
    table = open(dataDir, clock, {});
    expect(start(table, 'kept')).toEqual(refused('kept', 'cleared'));
    table.close();
  });

  it('refuses bounds that are not positive integers', () => {
    expect(() => open(tempDir(), { now: 0 }, { maxIds: 0 })).toThrow(/maxIds/);
    expect(() => open(tempDir(), { now: 0 }, { retentionMs: 1.5 })).toThrow(/retentionMs/);
  });
});
