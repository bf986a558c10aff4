/**
 * A serial command whose `next` never creates nothing (a forgotten stage check) runs into its
 * type's stage limit and fails with STAGE_LIMIT_EXCEEDED, compensating what its stages did,
 * instead of running stages for ever.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DEFAULT_MAX_STAGES, defineCommand } from '../../src/core/command-type.js';
import { CocoError, ErrorCode } from '../../src/core/errors.js';
import { assertNoLeakedEngines, startEnv } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

describe('stage limit', () => {
  it('fails a chain that never ends at maxStages with STAGE_LIMIT_EXCEEDED, undoing its stages', async () => {
    let stages = 0;
    let undone = 0;
    const endless = defineCommand({
      name: 'test.endless',
      schema: z.object({}),
      maxStages: 25,
      execute(ctx) {
        stages++;
        ctx.addUndo('back');
        ctx.startTask({ agent: 'a1', verb: 'noop' });
      },
      next(ctx) {
        stages++;
        // The stage check is forgotten: every stage creates more work.
        ctx.addUndo('back');
        ctx.startTask({ agent: 'a1', verb: 'noop' });
      },
      undo: {
        back() {
          undone++;
        },
      },
    });
    const env = await startEnv({ commands: [endless] });
    try {
      const { id } = await env.engine.submit(endless, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe(ErrorCode.StageLimitExceeded);
      expect(ended.error?.message).toContain('ran 25 stages');
      expect(ended.stage).toBe(24);
      expect(stages).toBe(25);
      expect(undone).toBe(25);
      expect(ended.compensation).toBe('compensated');
    } finally {
      await env.cleanup();
    }
  });

  it('defaults to DEFAULT_MAX_STAGES and refuses a limit below 1', () => {
    const type = defineCommand({ name: 'test.one', schema: z.object({}), execute() {} });
    expect(type.maxStages).toBe(DEFAULT_MAX_STAGES);
    expect(() =>
      defineCommand({ name: 'test.zero', schema: z.object({}), maxStages: 0, execute() {} }),
    ).toThrow(CocoError);
  });
});
