import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/core/clock.js';
import { EngineEvents } from '../../src/engine/events.js';
import type { MonitoredEngine } from '../../src/jobs/engine-reads.js';
import { createJobMonitor, type JobMonitor } from '../../src/jobs/monitor.js';
import type { JobStore } from '../../src/jobs/port.js';
import { sqliteJobStore } from '../../src/jobs/sqlite/job-store.js';
import type { CommandRecord } from '../../src/core/records.js';
import { emptyBatch, type CommandUpdate } from '../../src/store/port.js';
import { Journal, testCommands } from '../support/commands.js';
import { assertNoLeakedEngines, startEnv, tempDir } from '../support/harness.js';
import { expectTruthful, pageOf } from './support.js';

afterEach(assertNoLeakedEngines);

/** A job store whose writes fail while `failures` is above zero. */
function flaky(inner: JobStore): JobStore & { failures: number } {
  const store = {
    failures: 0,
    open: () => inner.open(),
    apply: (changes: Parameters<JobStore['apply']>[0]) => {
      if (store.failures > 0) {
        store.failures--;
        return Promise.reject(new Error('SQLITE_BUSY: database is locked'));
      }
      return inner.apply(changes);
    },
    getJob: (id: number) => inner.getJob(id),
    listJobs: (q?: Parameters<JobStore['listJobs']>[0]) => inner.listJobs(q),
    getSteps: (id: number) => inner.getSteps(id),
    listRunningJobIds: () => inner.listRunningJobIds(),
    getWatermark: () => inner.getWatermark(),
    pruneJobs: (ids: readonly number[], dryRun?: boolean) => inner.pruneJobs(ids, dryRun),
    listOldJobs: (q: Parameters<JobStore['listOldJobs']>[0]) => inner.listOldJobs(q),
    close: () => inner.close(),
  };
  return store;
}

/** The shape of a stored command, for engines faked in these tests. */
const at = 1_000;
const base = { paramsVersion: 1, params: {}, childMode: 'concurrent', failurePolicy: 'wait-all', taskCount: 0, undoCount: 0, journalSeq: 0, stage: 0, stageDone: true, chainDone: false, cancelRequested: false, error: null, result: null, compensation: 'none', compensationError: null, data: null, attempts: 0, nextAttemptAt: null, lastError: null, deadlineAt: null, priority: 0, queuedSince: null, idempotencyKey: null, createdAt: at, updatedAt: at, endedAt: null, tasksCleared: false, owner: null, leaseUntil: null } as const; // prettier-ignore

describe('job monitor: faults', () => {
  it('failed job-store writes are retried and merged; nothing is lost', async () => {
    const t = testCommands(new Journal());
    const dir = tempDir('coco-jobs-');
    const store = flaky(sqliteJobStore({ path: `${dir}/coco.db` }));
    let monitor: JobMonitor | undefined;
    const env = await startEnv({
      commands: t.all,
      dir,
      beforeStart: (engine) => (monitor = createJobMonitor({ engine, store })),
    });
    try {
      await monitor!.start();
      const errors: string[] = [];
      monitor!.on('error', (e) => errors.push(e.error.message));
      store.failures = 3;
      const { id } = await env.engine.submit(t.group, {
        name: 'g',
        children: [{ name: 'a', tasks: 2 }, { name: 'b' }],
      });
      await env.engine.waitFor(id);
      const tree = await expectTruthful(env.engine, monitor!, id);
      expect(tree.job).toMatchObject({ status: 'succeeded', progress: 100 });
      expect(errors).toHaveLength(3);
      expect(errors[0]).toMatch(/SQLITE_BUSY/);
    } finally {
      await env.engine.stop();
      await monitor!.stop();
      await env.cleanup();
    }
  });

  it('records of a job the view never saw are repaired from the engine', async () => {
    const dir = tempDir('coco-jobs-');
    const root: CommandRecord = {
      ...base,
      id: 4,
      type: 'root',
      status: 'waiting',
      parentId: null,
      rootId: 4,
      seq: null,
      originStage: null,
      expectedTasks: 0,
      expectedChildren: 1,
      childCount: 1,
    };
    const child: CommandRecord = {
      ...base,
      id: 5,
      type: 'child',
      status: 'waiting',
      parentId: 4,
      rootId: 4,
      seq: 0,
      originStage: 0,
      expectedTasks: 0,
      expectedChildren: 0,
      childCount: 0,
    };
    let commands: CommandRecord[] = [];
    const events = new EngineEvents();
    const engine: MonitoredEngine = {
      on: (event, listener) => events.on(event, listener),
      get: async (id) => commands.find((c) => c.id === id) ?? null,
      list: async (q = {}) =>
        pageOf(
          commands.filter(
            (c) =>
              (q.rootId === undefined || c.rootId === q.rootId) &&
              (!q.rootsOnly || c.parentId === null) &&
              (q.beforeId === undefined || c.id < q.beforeId) &&
              (q.status === undefined || q.status.includes(c.status)),
          ),
          q.limit,
        ),
      inspect: async () => null,
    };
    const monitor = createJobMonitor({ engine, store: sqliteJobStore({ path: `${dir}/coco.db` }) });
    try {
      await monitor.start();
      // The engine had this job before the monitor existed and does not report it as active at
      // start (as if its load had failed); an update of its child then arrives.
      commands = [root, child];
      const {
        type: _t,
        paramsVersion: _v,
        params: _p,
        parentId: _pa,
        rootId: _r,
        seq: _s,
        originStage: _o,
        childMode: _c,
        failurePolicy: _f,
        idempotencyKey: _i,
        createdAt: _ca,
        ...update
      } = { ...child, updatedAt: at + 1 };
      events.emit('committed', {
        ...emptyBatch(),
        commandUpdates: [update satisfies CommandUpdate],
      });
      await monitor.flush();
      const tree = await monitor.getTree(4);
      expect(tree?.job).toMatchObject({ id: 4, status: 'running', type: 'root' });
      expect(tree?.root?.children.map((c) => [c.step.commandId, c.step.status])).toEqual([
        [5, 'waiting'],
      ]);
    } finally {
      await monitor.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stop lets go of a job store that does not answer after stopTimeoutMs', async () => {
    const dir = tempDir('coco-jobs-');
    const clock = new ManualClock();
    const inner = sqliteJobStore({ path: `${dir}/coco.db` });
    // Its writes never answer once `silent` (a database gone away), until it is closed.
    let silent = false;
    let closedWith: AbortSignal | undefined;
    const hung: (() => void)[] = [];
    const store: JobStore = {
      ...flaky(inner),
      apply: (changes) =>
        silent
          ? new Promise<void>((_, reject) => hung.push(() => reject(new Error('closed'))))
          : inner.apply(changes),
      close: async (options) => {
        closedWith = options?.signal;
        for (const fail of hung.splice(0)) fail();
        await inner.close();
      },
    };
    const events = new EngineEvents();
    const engine: MonitoredEngine = {
      on: (event, listener) => events.on(event, listener),
      get: async () => null,
      list: async () => pageOf([], 100),
      inspect: async () => null,
    };
    const warnings: object[] = [];
    const logger = {
      debug() {},
      info() {},
      warn: (o: object) => void warnings.push(o),
      error() {},
    };
    const monitor = createJobMonitor({ engine, store, clock, logger, stopTimeoutMs: 2_000 });
    try {
      await monitor.start();
      silent = true;
      const root: CommandRecord = {
        ...base,
        id: 1,
        type: 'root',
        status: 'pending',
        parentId: null,
        rootId: 1,
        seq: null,
        originStage: null,
        expectedTasks: 0,
        expectedChildren: 0,
        childCount: 0,
      };
      events.emit('committed', { ...emptyBatch(), commandInserts: [root] });
      await vi.waitFor(() => expect(hung).toHaveLength(1), { interval: 5 });
      let stopped = false;
      const stopping = monitor.stop().then(() => (stopped = true));
      clock.advance(1_999);
      await new Promise((r) => setImmediate(r));
      expect(stopped).toBe(false);
      expect(closedWith).toBeUndefined();
      clock.advance(1);
      await stopping;
      expect(closedWith?.aborted).toBe(true);
      expect(warnings).toEqual([{ stopTimeoutMs: 2_000, timedOut: true }]);
    } finally {
      await monitor.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
