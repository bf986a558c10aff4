import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { assertNoLeakedEngines, holdVerbs, startEnv, whenCommitted } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

describe('polling', () => {
  it('makes one status call per agent per cycle, however many tasks it runs', async () => {
    const hold = holdVerbs();
    const many = defineCommand({
      name: 'test.many',
      schema: z.object({ tasks: z.number().int() }),
      execute(ctx) {
        for (let i = 0; i < ctx.params.tasks; i++) {
          ctx.startTask({ agent: i % 2 === 0 ? 'a1' : 'a2', verb: 'hold', args: { key: 'all' } });
        }
      },
    });
    const env = await startEnv({
      commands: [many],
      agents: ['a1', 'a2'],
      verbs: hold.verbs,
      tuning: { pollIntervalMs: 40 },
    });
    try {
      const ids = await env.engine.submitMany(
        Array.from({ length: 50 }, () => ({ type: many, params: { tasks: 4 } })),
      );
      await whenCommitted(env.engine, () => env.engine.stats().watchedTasks === 200);
      const a1 = env.agent('a1');
      const a2 = env.agent('a2');
      const before = { a1: a1.counters(), a2: a2.counters() };
      // Let several poll cycles pass, measured by the status calls themselves.
      await new Promise<void>((resolve) => {
        const check = (): void => {
          if (a1.counters().statusCalls - before.a1.statusCalls >= 5) resolve();
          else setTimeout(check, 10);
        };
        check();
      });
      const calls = a1.counters().statusCalls - before.a1.statusCalls;
      const asked = a1.counters().statusTasks - before.a1.statusTasks;
      // Every call asked about all 100 tasks of the agent: one call per cycle, not one per task.
      expect(asked).toBe(calls * 100);
      const calls2 = a2.counters().statusCalls - before.a2.statusCalls;
      expect(a2.counters().statusTasks - before.a2.statusTasks).toBe(calls2 * 100);
      hold.release('all');
      for (const { id } of ids) expect((await env.engine.waitFor(id)).status).toBe('succeeded');
    } finally {
      await env.cleanup();
    }
  });
});
