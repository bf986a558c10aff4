/**
 * Tasks left on an agent by a node that went away: a command's row says its tasks are cleared
 * with its outcome, so when its node leaves before the clears are done, the nodes that remain
 * sweep the agents they know (on the `orphans` signal) and clear them — once, although the
 * agent's lease left with the departed node and nobody polls it.
 */
import { expect, it, vi } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { describePg } from '../support/pg.js';
import { inProcessCluster } from './fixtures/in-process.js';

const one = defineCommand({
  name: 'leftover.one',
  schema: z.object({}),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

describePg('tasks left on agents', () => {
  it('a remaining node clears the ended tasks a departed node had not cleared', async () => {
    const agents = inProcessAgents(['a1']);
    const agent = agents.agent('a1');
    const cluster = inProcessCluster({ prefix: 'coco_leftover', agents, commands: [one] });
    // `b` runs the command and takes the agent's lease to poll it; `a` has nothing to poll.
    const a = await cluster.start('a');
    const b = await cluster.start('b');
    agent.faults.failNextCalls(1_000_000, 'clearTasks');
    const { id } = await b.submit(one, {});
    expect((await b.waitFor(id)).status).toBe('succeeded');
    const taskId = `${a.storeId}-${id}-0`;
    expect((await b.get(id))?.tasksCleared).toBe(true);
    expect(agent.taskHistory(taskId)?.clears).toBe(0);

    // b leaves (its agent lease with it) before its clear got through; a hears of it and
    // sweeps the agent.
    await b.stop();
    agent.faults.reset();
    await vi.waitFor(() => expect(agent.taskHistory(taskId)?.clears).toBe(1), {
      timeout: 10_000,
      interval: 20,
    });
    expect(await agent.listTasks(`${a.storeId}-`)).toEqual([]);
    expect(agent.counters().clearsOfRunning).toBe(0);
  });
});
