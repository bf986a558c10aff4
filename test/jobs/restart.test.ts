import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createJobMonitor, type JobMonitor } from '../../src/jobs/monitor.js';
import { sqliteJobStore } from '../../src/jobs/sqlite/job-store.js';
import { Journal, testCommands } from '../support/commands.js';
import {
  assertNoLeakedEngines,
  holdVerbs,
  startEnv,
  tempDir,
  whenCommitted,
} from '../support/harness.js';
import { expectTruthful, flatten, startMonitored, whenJob } from './support.js';

afterEach(assertNoLeakedEngines);

const running = (n: number) => (tr: Parameters<Parameters<typeof whenJob>[2]>[0]) =>
  flatten(tr).filter((s) => s.kind === 'task' && s.status === 'running').length === n;

describe('job monitor: truthful across restarts', () => {
  it('changes committed while the monitor was down are reconciled on start; the job never disappears', async () => {
    const t = testCommands(new Journal());
    const hold = holdVerbs();
    let m = await startMonitored({ commands: t.all, verbs: hold.verbs });
    try {
      const children = ['a', 'b', 'c'].map((k) => ({ name: k, verb: 'hold', args: { key: k } }));
      const { id } = await m.env.engine.submit(t.group, { name: 'g', children });
      await whenJob(m.monitor, id, running(3));
      // The monitor stops; the engine goes on and commits a child's end the view never sees.
      await m.monitor.stop();
      const childA = (await m.env.engine.inspect(id))!.children[0]!;
      const ended = whenCommitted(
        m.env.engine,
        async () => (await m.env.engine.get(childA.id))?.status === 'succeeded',
      );
      hold.release('a');
      await ended;
      const lagging = sqliteJobStore({ path: m.env.dbPath });
      await lagging.open();
      const stale = await lagging.getSteps(id);
      expect(stale.find((s) => s.key === `c${childA.id}`)?.status).toBe('waiting');
      expect((await lagging.getJob(id))?.status).toBe('running');
      await lagging.close();

      m = await m.restart();
      const tree = await expectTruthful(m.env.engine, m.monitor, id);
      expect(tree.job.status).toBe('running');
      expect(tree.root!.children.map((c) => c.step.status)).toEqual([
        'succeeded',
        'waiting',
        'waiting',
      ]);
      expect(tree.job.progress).toBe(33.3);
      expect(m.monitor.stats().runningJobs).toBe(1);

      hold.release('b');
      hold.release('c');
      await m.env.engine.waitFor(id);
      const done = await expectTruthful(m.env.engine, m.monitor, id);
      expect(done.job).toMatchObject({ status: 'succeeded', progress: 100 });
    } finally {
      await m.cleanup();
    }
  });

  it('lost step rows, a lost job row and a stale step are rebuilt from the engine', async () => {
    const t = testCommands(new Journal());
    const hold = holdVerbs();
    let m = await startMonitored({ commands: t.all, verbs: hold.verbs });
    try {
      const children = ['a', 'b'].map((k) => ({
        name: k,
        tasks: 2,
        verb: 'hold',
        args: { key: k },
      }));
      const { id } = await m.env.engine.submit(t.group, { name: 'g', children });
      await whenJob(m.monitor, id, running(4));
      hold.release('a');
      await whenJob(m.monitor, id, (tr) => tr.root!.children[0]!.step.status === 'succeeded');
      const before = await m.monitor.getTree(id);
      await m.env.engine.stop();
      await m.monitor.stop();

      const raw = new Database(m.env.dbPath);
      const childB = before!.root!.children[1]!.step.commandId;
      raw
        .prepare('DELETE FROM job_steps WHERE job_id = ? AND (key LIKE ? OR key = ?)')
        .run(id, `t${childB}.%`, `c${childB}`);
      raw
        .prepare("UPDATE job_steps SET status = 'pending', progress = 0 WHERE key = ?")
        .run(`c${before!.root!.children[0]!.step.commandId}`);
      raw.prepare('DELETE FROM job_jobs WHERE id = ?').run(id);
      raw.close();

      m = await m.restart();
      const tree = await expectTruthful(m.env.engine, m.monitor, id);
      expect(tree.job.status).toBe('running');
      expect(tree.root!.children.map((c) => [c.step.status, c.tasks.length])).toEqual([
        ['succeeded', 2],
        ['waiting', 2],
      ]);
      expect(tree.job.progress).toBe(50);

      hold.release('b');
      await m.env.engine.waitFor(id);
      await expectTruthful(m.env.engine, m.monitor, id);
    } finally {
      await m.cleanup();
    }
  });

  it('a root created and ended while the monitor was down still gets its job (watermark)', async () => {
    const t = testCommands(new Journal());
    let m = await startMonitored({ commands: t.all });
    try {
      const first = await m.env.engine.submit(t.leaf, { name: 'first' });
      await m.env.engine.waitFor(first.id);
      await m.monitor.flush();
      await m.monitor.stop();
      const missed = await m.env.engine.submit(t.group, {
        name: 'missed',
        children: [{ name: 'x' }, { name: 'y' }],
      });
      await m.env.engine.waitFor(missed.id);
      const lagging = sqliteJobStore({ path: m.env.dbPath });
      await lagging.open();
      expect(await lagging.getJob(missed.id)).toBeNull();
      await lagging.close();

      m = await m.restart();
      const tree = await expectTruthful(m.env.engine, m.monitor, missed.id);
      expect(tree.job).toMatchObject({ status: 'succeeded', progress: 100 });
      expect(tree.root!.children).toHaveLength(2);
      expect((await m.monitor.listJobs()).map((j) => j.id)).toEqual([missed.id, first.id]);
    } finally {
      await m.cleanup();
    }
  });

  it('batches committed between the monitor’s creation and its start are not missed', async () => {
    const t = testCommands(new Journal());
    const dir = tempDir('coco-jobs-');
    let monitor: JobMonitor | undefined;
    const env = await startEnv({
      commands: t.all,
      dir,
      beforeStart: (engine) => {
        monitor = createJobMonitor({ engine, store: sqliteJobStore({ path: `${dir}/coco.db` }) });
      },
    });
    try {
      const early = await env.engine.submit(t.group, {
        name: 'early',
        children: [{ name: 'x', tasks: 2 }],
      });
      await env.engine.waitFor(early.id);
      const report = await monitor!.start();
      expect(report.reconciled).toBeGreaterThanOrEqual(1);
      await expect(monitor!.start()).rejects.toMatchObject({ code: 'JOB_MONITOR_STATE' });
      const tree = await expectTruthful(env.engine, monitor!, early.id);
      expect(tree.job).toMatchObject({ status: 'succeeded', progress: 100 });
      expect(monitor!.stats().runningJobs).toBe(0);
      const later = await env.engine.submit(t.leaf, { name: 'later' });
      await env.engine.waitFor(later.id);
      await expectTruthful(env.engine, monitor!, later.id);
    } finally {
      await env.engine.stop();
      await monitor!.stop();
      await env.cleanup();
    }
  });

  it('a job running across several restarts keeps one row, always running, never regressing', async () => {
    const t = testCommands(new Journal());
    const hold = holdVerbs();
    let m = await startMonitored({ commands: t.all, verbs: hold.verbs });
    try {
      const keys = ['k0', 'k1', 'k2', 'k3'];
      const { id } = await m.env.engine.submit(t.group, {
        name: 'long',
        children: keys.map((k) => ({ name: k, verb: 'hold', args: { key: k } })),
      });
      await whenJob(m.monitor, id, running(4));
      const progress: number[] = [];
      for (const key of keys.slice(0, 3)) {
        hold.release(key);
        await whenCommitted(
          m.env.engine,
          async () =>
            (await m.env.engine.inspect(id))!.children.filter((c) => c.status === 'succeeded')
              .length ===
            keys.indexOf(key) + 1,
        );
        m = await m.restart();
        const tree = await expectTruthful(m.env.engine, m.monitor, id);
        expect(tree.job.status).toBe('running');
        progress.push(tree.job.progress);
        expect((await m.monitor.listJobs()).filter((j) => j.id === id)).toHaveLength(1);
      }
      expect(progress).toEqual([25, 50, 75]);
      hold.release('k3');
      await m.env.engine.waitFor(id);
      await expectTruthful(m.env.engine, m.monitor, id);
    } finally {
      await m.cleanup();
    }
  });
});
