import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { CocoError } from '../../src/core/errors.js';
import type { Job, Step } from '../../src/jobs/port.js';
import { sqliteJobStore, type SqliteJobStore } from '../../src/jobs/sqlite/job-store.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../support/harness.js';

const dirs: string[] = [];
const opened: SqliteJobStore[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function path(): string {
  const dir = tempDir('coco-jobstore-');
  dirs.push(dir);
  return join(dir, 'coco.db');
}

async function open(file: string): Promise<SqliteJobStore> {
  const store = sqliteJobStore({ path: file });
  opened.push(store);
  await store.open();
  return store;
}

function job(id: number, more: Partial<Job> = {}): Job {
  return {
    id,
    type: 't',
    status: 'running',
    compensation: 'none',
    progress: 0,
    error: null,
    startedAt: 1,
    updatedAt: 2,
    endedAt: null,
    ...more,
  };
}

function step(jobId: number, key: string, more: Partial<Step> = {}): Step {
  const task = key.startsWith('t');
  return {
    jobId, key, parentKey: key === `c${jobId}` ? null : `c${jobId}`, kind: task ? 'task' : 'command', name: 'n',
    commandId: Number(key.slice(1).split('.')[0]), taskOrdinal: task ? Number(key.split('.')[1]) : null,
    status: task ? 'running' : 'waiting', compensation: 'none', progress: 12.5, expectedTasks: 0, expectedChildren: 0,
    undo: false, error: null, startedAt: 1, endedAt: null, updatedAt: 1, ...more,
  }; // prettier-ignore
}

describe('sqlite job store', () => {
  it('migrates once, in its own ledger, next to the engine tables of the same file', async () => {
    const file = path();
    const engineStore = sqliteStore({ path: file });
    await engineStore.migrate();
    const a = sqliteJobStore({ path: file });
    const b = sqliteJobStore({ path: file });
    opened.push(a, b);
    const reports = await Promise.all([a.open(), b.open()]);
    expect(reports.map((r) => r.current)).toEqual([1, 1]);
    expect(reports.flatMap((r) => r.applied)).toEqual([1]);
    expect((await a.open()).applied).toEqual([]);
    const raw = new Database(file, { readonly: true });
    const tables = raw
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .pluck()
      .all();
    expect(tables).toEqual(
      expect.arrayContaining([
        'commands',
        'coco_migrations',
        'coco_jobs_migrations',
        'job_jobs',
        'job_steps',
        'coco_job_meta',
      ]),
    );
    expect(raw.prepare('SELECT version FROM coco_jobs_migrations').pluck().all()).toEqual([1]);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    await engineStore.close();
  });

  it('applies jobs, steps and the watermark atomically: a bad row stores nothing', async () => {
    const store = await open(path());
    await store.apply({ jobs: [job(1)], steps: [step(1, 'c1'), step(1, 't1.0')], watermark: 7 });
    expect(await store.getJob(1)).toEqual(job(1));
    expect((await store.getSteps(1)).sort((x, y) => x.key.localeCompare(y.key))).toEqual([
      step(1, 'c1'),
      step(1, 't1.0'),
    ]);
    await expect(
      store.apply({ jobs: [job(2)], steps: [step(2, 'c2', { progress: 150 })], watermark: 9 }),
    ).rejects.toMatchObject({ code: 'STORE_FAILED' });
    expect(await store.getJob(2)).toBeNull();
    expect(await store.getWatermark()).toBe(7);
    // Upserts replace; the watermark only rises.
    await store.apply({
      jobs: [
        job(1, {
          status: 'succeeded',
          progress: 100,
          endedAt: 5,
          error: { code: 'X', message: 'm' },
        }),
      ],
      steps: [],
      watermark: 3,
    });
    expect(await store.getJob(1)).toMatchObject({
      status: 'succeeded',
      progress: 100,
      endedAt: 5,
      error: { code: 'X', message: 'm' },
    });
    expect(await store.getWatermark()).toBe(7);
  });

  it('lists jobs by status and type, newest first, with keyset pagination; lists running ids', async () => {
    const store = await open(path());
    const jobs = Array.from({ length: 25 }, (_, i) =>
      job(i + 1, { type: i % 2 ? 'odd' : 'even', status: i % 3 ? 'running' : 'succeeded' }),
    );
    await store.apply({ jobs, steps: [] });
    const pages: number[][] = [];
    let beforeId: number | undefined;
    for (;;) {
      const page = await store.listJobs({
        status: ['running'],
        limit: 4,
        ...(beforeId ? { beforeId } : {}),
      });
      if (page.length === 0) break;
      pages.push(page.map((j) => j.id));
      beforeId = page.at(-1)!.id;
    }
    const running = jobs
      .filter((j) => j.status === 'running')
      .map((j) => j.id)
      .reverse();
    expect(pages.flat()).toEqual(running);
    expect(pages[0]).toHaveLength(4);
    expect(await store.listRunningJobIds()).toEqual(running);
    expect((await store.listJobs({ type: 'odd', status: ['succeeded'] })).map((j) => j.id)).toEqual(
      [22, 16, 10, 4],
    );
    expect(await store.listJobs({ status: [] })).toEqual([]);
    await expect(store.listJobs({ limit: 0 })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
  });

  it('a row that cannot be read fails with CORRUPT_ROW naming it', async () => {
    const file = path();
    const store = await open(file);
    await store.apply({ jobs: [job(3)], steps: [step(3, 'c3')] });
    const raw = new Database(file);
    raw.prepare("UPDATE job_jobs SET error = '{not json' WHERE id = 3").run();
    raw.prepare("UPDATE job_steps SET task_ordinal = 4 WHERE key = 'c3'").run();
    raw.close();
    await expect(store.getJob(3)).rejects.toSatisfy(
      (e: unknown) =>
        e instanceof CocoError && e.code === 'CORRUPT_ROW' && /job_jobs row 3/.test(e.message),
    );
    await expect(store.getSteps(3)).rejects.toSatisfy(
      (e: unknown) =>
        e instanceof CocoError &&
        e.code === 'CORRUPT_ROW' &&
        /job_steps row 3\/c3.*task_ordinal/.test(e.message),
    );
  });

  it('refuses bad options and use before open or after close', async () => {
    expect(() => sqliteJobStore({ path: ':memory:' })).toThrow(/INVALID_OPTIONS/);
    expect(() => sqliteJobStore({ path: 'x.db', busyTimeoutMs: -1 })).toThrow(/INVALID_OPTIONS/);
    const store = sqliteJobStore({ path: path() });
    await expect(store.getJob(1)).rejects.toMatchObject({ code: 'STORE_FAILED' });
    await store.open();
    await store.close();
    await expect(store.open()).rejects.toMatchObject({ code: 'STORE_FAILED' });
  });
});
