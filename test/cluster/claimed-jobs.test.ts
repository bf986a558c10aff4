/**
 * Jobs on a shared store, where each node's monitor writes the jobs of the trees its engine
 * runs. The node that takes over a departed node's trees rebuilds their jobs from the engine at
 * once (the `claimed` engine event), instead of waiting for the next change in the tree — the
 * departed node's monitor may not have written its last changes, or, as here, none at all. A
 * monitor starting leaves the running jobs of other live nodes' trees to their monitors.
 */
import { expect, it, vi } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { createJobMonitor } from '../../src/jobs/monitor.js';
import { postgresJobStore } from '../../src/jobs/postgres/job-store.js';
import { describePg, PG_URL } from '../support/pg.js';
import { inProcessCluster } from './fixtures/in-process.js';

const held = defineCommand({
  name: 'claimed.held',
  schema: z.object({}),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'hold' });
  },
});

describePg('jobs of claimed trees', () => {
  it("the claimer's monitor rebuilds the job of a tree it took over, before anything changes in it", async () => {
    let release = (): void => {};
    const released = new Promise<void>((r) => (release = r));
    const agents = inProcessAgents(['a1'], { verbs: { hold: () => released.then(() => 'done') } });
    const cluster = inProcessCluster({ prefix: 'coco_claimjob', agents, commands: [held] });
    const a = await cluster.start('a');
    const claimed: number[][] = [];
    a.on('claimed', ({ rootIds }) => claimed.push([...rootIds]));
    const monitor = createJobMonitor({
      engine: a,
      store: postgresJobStore({ url: PG_URL, schema: cluster.schema }),
    });
    await monitor.start();
    try {
      // b runs the command (no monitor: its job is never written) and leaves mid-task.
      const b = await cluster.start('b');
      const { id } = await b.submit(held, {});
      await vi.waitFor(
        async () => expect((await b.inspect(id))?.tasks[0]?.status).toBe('running'),
        {
          timeout: 10_000,
          interval: 20,
        },
      );
      await b.stop();
      expect(await monitor.getJob(id)).toBeNull();

      await vi.waitFor(() => expect(claimed.flat()).toContain(id), {
        timeout: 10_000,
        interval: 20,
      });
      await vi.waitFor(async () => expect((await monitor.getJob(id))?.status).toBe('running'), {
        timeout: 10_000,
        interval: 20,
      });
      // Nothing changed in the tree meanwhile: the task still runs on its agent.
      expect((await a.inspect(id))?.tasks[0]?.status).toBe('running');

      release();
      expect((await a.waitFor(id)).status).toBe('succeeded');
      await monitor.flush();
      expect((await monitor.getJob(id))?.status).toBe('succeeded');
    } finally {
      release();
      await monitor.stop();
    }
  });

  it("a node's monitor starting leaves the running jobs of other live nodes' trees to their monitors", async () => {
    let release = (): void => {};
    const released = new Promise<void>((r) => (release = r));
    const agents = inProcessAgents(['a1'], { verbs: { hold: () => released.then(() => 'done') } });
    const cluster = inProcessCluster({ prefix: 'coco_startjobs', agents, commands: [held] });
    const monitorOf = (engine: Awaited<ReturnType<typeof cluster.start>>) =>
      createJobMonitor({
        engine,
        store: postgresJobStore({ url: PG_URL, schema: cluster.schema }),
      });
    const a = await cluster.start('a');
    const aMonitor = monitorOf(a);
    await aMonitor.start();
    const b = await cluster.start('b');
    const bMonitor = monitorOf(b);
    try {
      const { id: mine } = await b.submit(held, {});
      const { id: theirs } = await a.submit(held, {});
      await aMonitor.flush();
      expect((await aMonitor.getJob(theirs))?.status).toBe('running');
      // b's monitor starts with both trees running: it rebuilds its own node's job only.
      const report = await bMonitor.start();
      expect(report.reconciled).toBe(1);
      expect((await bMonitor.getJob(mine))?.status).toBe('running');
      expect(bMonitor.stats().runningJobs).toBe(1);

      release();
      expect((await a.waitFor(theirs)).status).toBe('succeeded');
      expect((await b.waitFor(mine)).status).toBe('succeeded');
      await Promise.all([aMonitor.flush(), bMonitor.flush()]);
      expect((await bMonitor.getJob(theirs))?.status).toBe('succeeded');
      expect((await bMonitor.getJob(mine))?.status).toBe('succeeded');
    } finally {
      release();
      await bMonitor.stop();
      await aMonitor.stop();
    }
  });
});
