import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { assertNoLeakedEngines, gate, startEnv, whenCommitted } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

describe('declared counts (premature end)', () => {
  // What keeps this command waiting is its stage still running (stageDone); the declared count
  // is what the tests after it guard: a stage or chain that ends short of it fails.
  it('a command that declared 3 tasks waits while its stage runs, although its first task ended before the second was created', async () => {
    const second = gate();
    let executes = 0;
    const three = defineCommand({
      name: 'test.three',
      schema: z.object({}),
      async execute(ctx) {
        executes++;
        ctx.expect({ tasks: 3 });
        ctx.startTask({ agent: 'a1', verb: 'noop' });
        await second.promise;
        ctx.startTask({ agent: 'a1', verb: 'noop' });
        ctx.startTask({ agent: 'a1', verb: 'noop' });
      },
    });
    const env = await startEnv({ commands: [three] });
    try {
      const { id } = await env.engine.submit(three, {});
      await whenCommitted(
        env.engine,
        async () => (await env.engine.inspect(id))?.tasks[0]?.status === 'succeeded',
      );
      const midway = await env.engine.get(id);
      expect(midway?.status).toBe('pending');
      expect(midway?.expectedTasks).toBe(3);
      expect(midway?.taskCount).toBe(1);
      second.open();
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('succeeded');
      expect(ended.taskCount).toBe(3);
      expect(executes).toBe(1);
    } finally {
      await env.cleanup();
    }
  });

  it('a stage that ends having created fewer tasks than declared fails with EXPECTED_COUNT_UNMET', async () => {
    const short = defineCommand({
      name: 'test.short',
      schema: z.object({}),
      execute(ctx) {
        ctx.expect({ tasks: 3 });
        ctx.startTask({ agent: 'a1', verb: 'noop' });
        ctx.startTask({ agent: 'a1', verb: 'noop' });
      },
    });
    const env = await startEnv({ commands: [short] });
    try {
      const { id } = await env.engine.submit(short, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('EXPECTED_COUNT_UNMET');
      expect(ended.error?.message).toMatch(/declared 3 task\(s\).*created 2/);
    } finally {
      await env.cleanup();
    }
  });

  it('a parent that declared more children than its stages created fails; it never succeeds early', async () => {
    const leaf = defineCommand({ name: 'test.count-leaf', schema: z.object({}), execute() {} });
    const parent = defineCommand({
      name: 'test.count-parent',
      schema: z.object({}),
      execute(ctx) {
        ctx.expect({ children: 2 });
        ctx.addChild(leaf, {});
      },
    });
    const env = await startEnv({ commands: [parent, leaf] });
    try {
      const { id } = await env.engine.submit(parent, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('EXPECTED_COUNT_UNMET');
      expect(ended.error?.message).toMatch(
        /declared 0 task\(s\) and 2 child\(ren\).*created 0 and 1/,
      );
    } finally {
      await env.cleanup();
    }
  });

  it('a chain counts its declared tasks over all its stages: one declared in the first stage and created in none fails', async () => {
    const chain = defineCommand({
      name: 'test.count-chain',
      schema: z.object({}),
      execute(ctx) {
        // Declares two tasks for the whole command, starts one now...
        ctx.expect({ tasks: 2 });
        ctx.startTask({ agent: 'a1', verb: 'noop' });
      },
      next() {
        // ...and the next stage creates nothing: the chain ends short of what it declared.
      },
    });
    const env = await startEnv({ commands: [chain] });
    try {
      const { id } = await env.engine.submit(chain, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('EXPECTED_COUNT_UNMET');
      expect(ended.taskCount).toBe(1);
    } finally {
      await env.cleanup();
    }
  });

  it('after a restart mid-execute, the stage runs again and reuses the task it had started', async () => {
    const firstRun = gate();
    let blockForever = true;
    const three = defineCommand({
      name: 'test.three-restart',
      schema: z.object({}),
      async execute(ctx) {
        ctx.expect({ tasks: 3 });
        ctx.startTask({ agent: 'a1', verb: 'noop' });
        if (blockForever) {
          firstRun.open();
          await new Promise(() => {});
        }
        ctx.startTask({ agent: 'a1', verb: 'noop' });
        ctx.startTask({ agent: 'a1', verb: 'noop' });
      },
    });
    const env = await startEnv({ commands: [three], tuning: { stopGraceMs: 0 } });
    let env2 = env;
    try {
      const { id } = await env.engine.submit(three, {});
      await firstRun.promise;
      await whenCommitted(
        env.engine,
        async () => (await env.engine.inspect(id))?.tasks[0]?.status === 'succeeded',
      );
      blockForever = false;
      env2 = await env.restart();
      const ended = await env2.engine.waitFor(id);
      expect(ended.status).toBe('succeeded');
      expect(ended.taskCount).toBe(3);
      const first = `${env2.engine.storeId}-${id}-0`;
      expect(env2.agent().taskHistory(first)?.starts).toBe(1);
      expect(env2.agent().counters().starts).toBe(3);
    } finally {
      await env2.cleanup();
    }
  });
});
