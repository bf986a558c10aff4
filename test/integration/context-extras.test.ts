/**
 * What a handler's context holds only once the handler uses it (engine/contexts.ts `CtxExtras`):
 * data, entity writes, their accessors, the logger and the abort signal — read back within the
 * run as written, stored with the step, and seen by the next handler.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { assertNoLeakedEngines, startEnv } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const extras = defineCommand({
  name: 'test.ctx-extras',
  schema: z.object({}),
  async execute(ctx) {
    const before = ctx.data.get();
    ctx.data.set({ a: 1 });
    ctx.entities.put('k', 'x', { v: 1 });
    const own = await ctx.entities.get('k', 'x');
    ctx.log.debug({ step: 'extras' }, 'extras used');
    ctx.data.set({ a: 2, own: own ?? null, before: before ?? null, aborted: ctx.signal.aborted });
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
  async onSuccess(ctx) {
    return { data: ctx.data.get() ?? null, stored: (await ctx.entities.get('k', 'x')) ?? null };
  },
});

describe('handler contexts, the fields made on first use', () => {
  it('data and entity writes read back within the run, are stored with the step and seen next', async () => {
    const env = await startEnv({ commands: [extras] });
    try {
      const { id } = await env.engine.submit(extras, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('succeeded');
      expect(ended.result).toEqual({
        data: { a: 2, own: { v: 1 }, before: null, aborted: false },
        stored: { v: 1 },
      });
    } finally {
      await env.cleanup();
    }
  });
});
