/**
 * A retried stage finds the work its earlier attempts created (engine/contexts.ts: `startTask`
 * and `addChild` look up the n-th task and child of the stage) and reuses it; different work on
 * a retry is refused (`HANDLER_NONDETERMINISTIC`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { assertNoLeakedEngines, startEnv } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const leaf = defineCommand({
  name: 'test.retried-leaf',
  schema: z.object({}),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

describe('a retried stage', () => {
  it('reuses the tasks and children its earlier attempts created', async () => {
    const refs: string[] = [];
    const parent = defineCommand({
      name: 'test.retried-parent',
      schema: z.object({}),
      retry: { maxAttempts: 5, backoffMs: 5 },
      execute(ctx) {
        const a = ctx.startTask({ agent: 'a1', verb: 'noop' });
        const b = ctx.startTask({ agent: 'a1', verb: 'noop' });
        const ch = ctx.addChild(leaf, {});
        refs.push(`${a.ordinal},${b.ordinal},${ch.id}`);
        if (ctx.command.attempt < 3) throw new Error(`flake ${ctx.command.attempt}`);
      },
    });
    const env = await startEnv({ commands: [parent, leaf] });
    try {
      const { id } = await env.engine.submit(parent, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('succeeded');
      expect(new Set(refs).size).toBe(1);
      expect(refs).toHaveLength(3);
      const details = await env.engine.inspect(id);
      expect(details?.tasks).toHaveLength(2);
      // The parent's two tasks and the one child's task, each started once.
      expect(env.agent().counters().starts).toBe(3);
    } finally {
      await env.cleanup();
    }
  });

  it('that does different work is refused as nondeterministic', async () => {
    const parent = defineCommand({
      name: 'test.retried-differs',
      schema: z.object({}),
      retry: { maxAttempts: 2, backoffMs: 5 },
      execute(ctx) {
        ctx.startTask({ agent: 'a1', verb: ctx.command.attempt === 1 ? 'noop' : 'echo' });
        if (ctx.command.attempt === 1) throw new Error('flake');
      },
    });
    const env = await startEnv({ commands: [parent] });
    try {
      const { id } = await env.engine.submit(parent, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.message).toMatch(
        /did different work: task #0 of stage 0 was noop@a1, now echo@a1/,
      );
    } finally {
      await env.cleanup();
    }
  });
});
