/**
 * The job store contract: one suite of {@link JobStore} cases, run against every store (SQLite
 * in job-store.test.ts, PostgreSQL in job-store-postgres.test.ts). What only one store has
 * (its files, its options, its concurrency) stays in that store's test file.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CocoError } from '../../src/core/errors.js';
import type { Job, JobStore, Step } from '../../src/jobs/port.js';

/** How the suite gets stores and reaches behind them. */
export interface JobStoreFixture {
  /** A store on new, empty storage, not opened. The suite closes it after the test. */
  create(): Promise<JobStore>;
  /** A second store on the storage of `store` (from {@link create}), not opened. */
  another(store: JobStore): JobStore;
  /** Runs SQL on the storage of `store`, with unqualified table names (to corrupt rows). */
  sql(store: JobStore, statement: string): Promise<void>;
}

/** A running job with defaults. */
export function job(id: number, more: Partial<Job> = {}): Job {
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

/** A step with defaults derived from its key (`c<id>` or `t<id>.<ordinal>`). */
export function step(jobId: number, key: string, more: Partial<Step> = {}): Step {
  const task = key.startsWith('t');
  return {
    jobId, key, parentKey: key === `c${jobId}` ? null : `c${jobId}`, kind: task ? 'task' : 'command', name: 'n',
    commandId: Number(key.slice(1).split('.')[0]), taskOrdinal: task ? Number(key.split('.')[1]) : null,
    status: task ? 'running' : 'waiting', compensation: 'none', progress: 12.5, expectedTasks: 0, expectedChildren: 0,
    undo: false, error: null, startedAt: 1, endedAt: null, updatedAt: 1, ...more,
  }; // prettier-ignore
}

function byKey(steps: Step[]): Step[] {
  return steps.sort((x, y) => x.key.localeCompare(y.key));
}

/** Registers the contract's cases for the stores of `fixture`. */
export function jobStoreSuite(fixture: JobStoreFixture): void {
  describe('job store contract', () => {
    const opened: JobStore[] = [];
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });

    async function create(): Promise<JobStore> {
      const store = await fixture.create();
      opened.push(store);
      return store;
    }

    async function open(): Promise<JobStore> {
      const store = await create();
      await store.open();
      return store;
    }

    it('migrates on the first open only; a second store on the same storage finds it done', async () => {
      const a = await create();
      const first = await a.open();
      expect(first.applied.length).toBeGreaterThan(0);
      expect(first.applied.at(-1)).toBe(first.current);
      expect(await a.open()).toEqual({ applied: [], current: first.current });
      const b = fixture.another(a);
      opened.push(b);
      expect(await b.open()).toEqual({ applied: [], current: first.current });
      await a.apply({ jobs: [job(1)], steps: [] });
      expect(await b.getJob(1)).toEqual(job(1));
    });

    it('applies jobs, steps and the watermark atomically: a bad row stores nothing', async () => {
      const store = await open();
      await store.apply({ jobs: [job(1)], steps: [step(1, 'c1'), step(1, 't1.0')], watermark: 7 });
      expect(await store.getJob(1)).toEqual(job(1));
      expect(byKey(await store.getSteps(1))).toEqual([step(1, 'c1'), step(1, 't1.0')]);
      await expect(
        store.apply({ jobs: [job(2)], steps: [step(2, 'c2', { progress: 150 })], watermark: 9 }),
      ).rejects.toMatchObject({ code: 'STORE_FAILED' });
      expect(await store.getJob(2)).toBeNull();
      expect(await store.getWatermark()).toBe(7);
      // Upserts replace; the watermark only rises.
      const ended = { status: 'succeeded', progress: 100, endedAt: 5 } as const;
      await store.apply({
        jobs: [job(1, { ...ended, error: { code: 'X', message: 'm' } })],
        steps: [],
        watermark: 3,
      });
      expect(await store.getJob(1)).toMatchObject({ ...ended, error: { code: 'X', message: 'm' } });
      expect(await store.getWatermark()).toBe(7);
      await store.apply({ jobs: [], steps: [], watermark: 8 });
      expect(await store.getWatermark()).toBe(8);
    });

    it('keeps the last of a job or step given twice in one apply, and replaces whole rows', async () => {
      const store = await open();
      await store.apply({ jobs: [], steps: [] });
      expect(await store.getWatermark()).toBeNull();
      await store.apply({
        jobs: [job(1, { error: { code: 'E', message: 'm' } })],
        steps: [step(1, 'c1', { error: { code: 'E', message: 'm' }, expectedTasks: 3 })],
      });
      await store.apply({
        jobs: [job(1, { progress: 10 }), job(2), job(1, { progress: 20 })],
        steps: [step(1, 'c1', { progress: 30 }), step(1, 't1.0'), step(1, 'c1', { progress: 40 })],
        watermark: 2,
      });
      expect(await store.getJob(1)).toEqual(job(1, { progress: 20 }));
      expect(await store.getJob(2)).toEqual(job(2));
      expect(byKey(await store.getSteps(1))).toEqual([
        step(1, 'c1', { progress: 40 }),
        step(1, 't1.0'),
      ]);
      expect(await store.getWatermark()).toBe(2);
    });

    it('never takes a row back: an ended job or step stays ended, a compensation never goes back', async () => {
      // Two nodes' monitors may write one job: a node rebuilding it from a snapshot read just
      // before the owner wrote its end must not show it running again.
      const store = await open();
      const ended = { status: 'failed' as const, endedAt: 9, updatedAt: 9, progress: 100 };
      await store.apply({
        jobs: [job(1, ended), job(2, { ...ended, compensation: 'compensated' })],
        steps: [
          step(1, 'c1', { ...ended, compensation: 'compensating' }),
          step(1, 't1.0', { status: 'succeeded', endedAt: 8 }),
        ],
      });
      await store.apply({
        jobs: [job(1, { progress: 50 }), job(2, { ...ended, compensation: 'compensating' })],
        steps: [step(1, 'c1', { ...ended, compensation: 'none' }), step(1, 't1.0')],
      });
      expect(await store.getJob(1)).toEqual(job(1, ended));
      expect(await store.getJob(2)).toEqual(job(2, { ...ended, compensation: 'compensated' }));
      expect(byKey(await store.getSteps(1))).toEqual([
        step(1, 'c1', { ...ended, compensation: 'compensating' }),
        step(1, 't1.0', { status: 'succeeded', endedAt: 8 }),
      ]);
      // Forward changes still apply: a compensation going on, an ended row's other fields.
      await store.apply({
        jobs: [job(2, { ...ended, compensation: 'compensated', progress: 90 })],
        steps: [step(1, 'c1', { ...ended, compensation: 'failed' })],
      });
      expect((await store.getJob(2))?.progress).toBe(90);
      expect((await store.getSteps(1)).find((x) => x.key === 'c1')?.compensation).toBe('failed');
    });

    it('round-trips every field, large integers included; unknown ids read as nothing', async () => {
      const store = await open();
      const big = 2 ** 40 + 3;
      const now = 1_760_000_000_123;
      const error = {
        code: 'TASK_FAILED',
        message: 'disk "a" \\ full\u0000?',
        details: { n: [1, 'x'] },
      };
      const root = job(big, {
        type: 'disk.copy', status: 'failed', compensation: 'compensated', progress: 33.3, error,
        startedAt: now, updatedAt: now + 1, endedAt: now + 2,
      }); // prettier-ignore
      const steps = [
        step(big, `c${big}`, {
          status: 'failed', compensation: 'failed', expectedTasks: 3, expectedChildren: 2 ** 33,
          error, startedAt: now, endedAt: now + 2, updatedAt: now + 1,
        }), // prettier-ignore
        step(big, `c${big + 1}`, { parentKey: `c${big}`, name: 'child', status: 'cancelled' }),
        step(big, `t${big}.7`, {
          name: 'copy@agent-1',
          status: 'failed',
          undo: true,
          progress: 0.1,
        }),
        step(big, `t${big + 1}.0`, { parentKey: `c${big + 1}`, status: 'succeeded' }),
      ];
      await store.apply({ jobs: [root, job(5)], steps: [...steps, step(5, 'c5')], watermark: big });
      expect(await store.getJob(big)).toEqual(root);
      expect(byKey(await store.getSteps(big))).toEqual(byKey([...steps]));
      expect(await store.getWatermark()).toBe(big);
      expect(await store.getJob(4)).toBeNull();
      expect(await store.getSteps(4)).toEqual([]);
    });

    it('lists jobs by status and type, newest first, with keyset pagination; lists running ids', async () => {
      const store = await open();
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
      const oddSucceeded = await store.listJobs({ type: 'odd', status: ['succeeded'] });
      expect(oddSucceeded.map((j) => j.id)).toEqual([22, 16, 10, 4]);
      expect((await store.listJobs({ status: ['succeeded', 'failed'] })).map((j) => j.id)).toEqual([
        25, 22, 19, 16, 13, 10, 7, 4, 1,
      ]);
      expect(await store.listJobs({ status: [] })).toEqual([]);
      expect((await store.listJobs()).map((j) => j.id)).toEqual(jobs.map((j) => j.id).reverse());
      await expect(store.listJobs({ limit: 0 })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    });

    it('lists running job ids past one page', async () => {
      const store = await open();
      const ids = Array.from({ length: 2_500 }, (_, i) => i + 1);
      await store.apply({
        jobs: ids.map((id) => job(id, id % 1_000 === 0 ? { status: 'failed' } : {})),
        steps: [],
      });
      const running = ids.filter((id) => id % 1_000 !== 0).reverse();
      expect(await store.listRunningJobIds()).toEqual(running);
      expect(await store.listJobs({ limit: 5_000 })).toHaveLength(1_000);
    });

    it('a row that cannot be read fails with CORRUPT_ROW naming it', async () => {
      const store = await open();
      await store.apply({ jobs: [job(3)], steps: [step(3, 'c3')] });
      await fixture.sql(store, "UPDATE job_jobs SET error = '{not json' WHERE id = 3");
      await fixture.sql(store, "UPDATE job_steps SET task_ordinal = 4 WHERE key = 'c3'");
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
      await expect(store.listJobs()).rejects.toMatchObject({ code: 'CORRUPT_ROW' });
    });

    it('prunes the jobs of given ids with all their steps, whatever their status; a dry run only counts', async () => {
      const store = await open();
      const ended = { status: 'succeeded', progress: 100, endedAt: 5 } as const;
      await store.apply({
        jobs: [job(1, ended), job(2), job(3, ended)],
        steps: [step(1, 'c1'), step(1, 't1.0'), step(2, 'c2'), step(3, 'c3'), step(4, 'c4')],
      });
      expect(await store.pruneJobs([1, 2, 4, 99], true)).toEqual({ jobs: 2, steps: 4 });
      expect(await store.getJob(1)).not.toBeNull();
      expect(await store.getSteps(4)).toHaveLength(1);
      // Steps without a job row (a view that wrote a step after its job went) go too.
      expect(await store.pruneJobs([1, 2, 4, 99])).toEqual({ jobs: 2, steps: 4 });
      for (const id of [1, 2, 4]) {
        expect(await store.getJob(id)).toBeNull();
        expect(await store.getSteps(id)).toEqual([]);
      }
      expect(await store.getJob(3)).toEqual(job(3, ended));
      expect(await store.getSteps(3)).toEqual([step(3, 'c3')]);
      expect(await store.listRunningJobIds()).toEqual([]);
      expect(await store.pruneJobs([])).toEqual({ jobs: 0, steps: 0 });
      for (const bad of [[1.5], [Number.NaN], Array.from({ length: 10_001 }, (_, i) => i)])
        await expect(store.pruneJobs(bad)).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    });

    it('lists old jobs by when they ended, or started while shown running, oldest first with a cursor', async () => {
      const store = await open();
      const ended = (at: number) => ({ status: 'failed', startedAt: 1, endedAt: at }) as const;
      await store.apply({
        jobs: [
          job(1, ended(50)),
          job(2, { startedAt: 20 }), // running since 20
          job(3, ended(10)),
          job(4, ended(20)),
          job(5, ended(90)), // too young
          job(6, { startedAt: 95 }), // running, too young
        ],
        steps: [],
      });
      expect(await store.listOldJobs({ before: 60, limit: 10 })).toEqual([
        { id: 3, at: 10 },
        { id: 2, at: 20 },
        { id: 4, at: 20 },
        { id: 1, at: 50 },
      ]);
      const first = await store.listOldJobs({ before: 60, limit: 2 });
      expect(first).toEqual([
        { id: 3, at: 10 },
        { id: 2, at: 20 },
      ]);
      expect(await store.listOldJobs({ before: 60, limit: 2, after: first.at(-1)! })).toEqual([
        { id: 4, at: 20 },
        { id: 1, at: 50 },
      ]);
      expect(await store.listOldJobs({ before: 10, limit: 2 })).toEqual([]);
      for (const bad of [
        { before: 60, limit: 0 },
        { before: Number.NaN, limit: 1 },
        { before: 60, limit: 1, after: { at: 1 } },
      ])
        await expect(
          store.listOldJobs(bad as Parameters<JobStore['listOldJobs']>[0]),
        ).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    });

    it('refuses use before open or after close', async () => {
      const store = await create();
      await expect(store.getJob(1)).rejects.toMatchObject({ code: 'STORE_FAILED' });
      await expect(store.apply({ jobs: [job(1)], steps: [] })).rejects.toMatchObject({
        code: 'STORE_FAILED',
      });
      await store.open();
      await store.close();
      await store.close();
      await expect(store.open()).rejects.toMatchObject({ code: 'STORE_FAILED' });
      await expect(store.getWatermark()).rejects.toMatchObject({ code: 'STORE_FAILED' });
    });

    it('a close told to stop waiting resolves; a write in flight lands whole or not at all', async () => {
      const store = await create();
      await store.open();
      await store.apply({ jobs: [job(1)], steps: [], watermark: 1 });
      const late = store.apply({ jobs: [job(2)], steps: [step(2, 'c2')], watermark: 2 }).then(
        () => 'stored',
        (error: unknown) => error,
      );
      await store.close({ signal: AbortSignal.abort() });
      const outcome = await late;
      if (outcome !== 'stored') expect(outcome).toMatchObject({ code: 'STORE_FAILED' });
      await expect(store.getJob(1)).rejects.toMatchObject({ code: 'STORE_FAILED' });
      const again = fixture.another(store);
      opened.push(again);
      await again.open();
      expect(await again.getJob(1)).toMatchObject({ id: 1 });
      const watermark = await again.getWatermark();
      expect([1, 2]).toContain(watermark);
      expect((await again.getJob(2)) !== null).toBe(watermark === 2);
    });
  });
}
