/**
 * Child-only command types: a type that declares `childOnly` is refused at submit (alone or in a
 * batch, nothing stored), while handlers still create it as a child.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { CocoError, ErrorCode } from '../../src/core/errors.js';
import { assertNoLeakedEngines, startEnv } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const stage = defineCommand({
  name: 'test.stage',
  childOnly: true,
  createdBy: ['test.chain'],
  schema: z.object({ n: z.number() }),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
  onSuccess: (ctx) => ({ n: ctx.params.n }),
});

const chain = defineCommand({
  name: 'test.chain',
  schema: z.object({ stages: z.number().int().min(1) }),
  execute(ctx) {
    ctx.expect({ children: ctx.params.stages });
    for (let n = 0; n < ctx.params.stages; n++) ctx.addChild(stage, { n });
  },
});

describe('child-only command types', () => {
  it('are refused at submit with COMMAND_TYPE_NOT_SUBMITTABLE naming the type and its parents', async () => {
    const env = await startEnv({ commands: [stage, chain] });
    try {
      const error = await env.engine.submit(stage, { n: 1 }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(CocoError);
      expect(error).toMatchObject({
        code: ErrorCode.CommandTypeNotSubmittable,
        details: { commandType: 'test.stage', createdBy: ['test.chain'] },
      });
      expect((error as CocoError).message).toMatch(
        /"test\.stage" runs only as a child .*created by test\.chain/,
      );
      // In a batch: the whole batch is refused, naming the item; nothing is stored.
      await expect(
        env.engine.submitMany([
          { type: chain, params: { stages: 1 } },
          { type: stage, params: { n: 2 } },
        ]),
      ).rejects.toMatchObject({
        code: ErrorCode.CommandTypeNotSubmittable,
        message: expect.stringMatching(/item 1: .*"test\.stage"/) as unknown,
      });
      expect((await env.engine.list()).commands).toEqual([]);
    } finally {
      await env.cleanup();
    }
  });

  it('are still created by handlers as children', async () => {
    const env = await startEnv({ commands: [stage, chain] });
    try {
      const { id } = await env.engine.submit(chain, { stages: 2 });
      expect((await env.engine.waitFor(id)).status).toBe('succeeded');
      const details = await env.engine.inspect(id);
      expect(details?.children.map((c) => [c.type, c.status])).toEqual([
        ['test.stage', 'succeeded'],
        ['test.stage', 'succeeded'],
      ]);
    } finally {
      await env.cleanup();
    }
  });

  it('a definition naming parents without being child-only is refused', () => {
    expect(() =>
      defineCommand({
        name: 'test.bad',
        createdBy: ['test.chain'],
        schema: z.object({}),
        execute() {},
      }),
    ).toThrow(/createdBy.*childOnly/);
  });
});
