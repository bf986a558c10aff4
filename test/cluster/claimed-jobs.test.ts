/**
 * The job view of trees taken over from a node that left: the node that claims them rebuilds
 * their jobs from the engine at once (the `claimed` engine event), instead of waiting for the
 * next change in the tree — the departed node's monitor may not have written its last changes,
 * or, as here, none at all.
 */
import { expect, it, vi } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/agents/in-process/broker.js';
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
});
