/**
 * Tasks left on an agent by a node that went away: a command's row says its tasks are cleared
 * with its outcome, so when its node leaves before the clears are done, the nodes that remain
 * sweep the agents they know (on the `orphans` signal) and clear them — once, although the
 * agent's lease left with the departed node and nobody polls it.
 */
import { afterEach, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/agents/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { postgresStore } from '../../src/store/postgres/pg-store.js';
import { FAST } from '../support/harness.js';
import { describePg, freshSchema, PG_URL } from '../support/pg.js';

const one = defineCommand({
  name: 'leftover.one',
  schema: z.object({}),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

const engines: Engine[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.stop().catch(() => undefined);
  for (const c of cleanups.splice(0)) await c();
});

describePg('tasks left on agents', () => {
  it('a remaining node clears the ended tasks a departed node had not cleared', async () => {
    const fresh = freshSchema('coco_leftover');
    cleanups.push(() => fresh.drop());
    const agents = inProcessAgents(['a1']);
    const agent = agents.agent('a1');
    const start = async (nodeId: string): Promise<Engine> => {
      const engine = createEngine({
        store: postgresStore({ url: PG_URL, schema: fresh.schema, leaseMs: 3_000 }),
        agents,
        commands: [one],
        nodeId,
        tuning: { ...FAST, agentCallTimeoutMs: 500 },
      });
      engines.push(engine);
      await engine.start();
      return engine;
    };
    // `b` runs the command and takes the agent's lease to poll it; `a` has nothing to poll.
    const a = await start('a');
    const b = await start('b');
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
