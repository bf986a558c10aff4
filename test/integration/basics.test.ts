import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { ValidationError } from '../../src/core/errors.js';
import { assertNoLeakedEngines, settled, startEnv } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const oneTask = defineCommand({
  name: 'test.one-task',
  schema: z.object({ n: z.number().int() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'echo', args: { n: ctx.params.n } });
  },
  onSuccess(ctx) {
    return { echoed: ctx.tasks[0]?.result ?? null };
  },
});

describe('a one-task command', () => {
  it('runs its task, ends once with the task result, and clears the task', async () => {
    const env = await startEnv({ commands: [oneTask] });
    try {
      const { id } = await env.engine.submit(oneTask, { n: 7 });
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('succeeded');
      expect(ended.result).toEqual({ echoed: { n: 7 } });
      const details = await env.engine.inspect(id);
      expect(details?.tasks).toHaveLength(1);
      expect(details?.tasks[0]?.status).toBe('succeeded');
      // Clearing follows the outcome; wait for the settled row.
      await settled(env.engine, id);
      const taskId = `${env.engine.storeId}-${id}-0`;
      expect(env.agent().taskHistory(taskId)).toMatchObject({ starts: 1, clears: 1 });
    } finally {
      await env.cleanup();
    }
  });

  it('refuses invalid parameters with a typed error naming the field, storing nothing', async () => {
    const env = await startEnv({ commands: [oneTask] });
    try {
      const attempt = env.engine.submit(oneTask, { n: 'seven' as unknown as number });
      await expect(attempt).rejects.toBeInstanceOf(ValidationError);
      await expect(attempt).rejects.toMatchObject({
        code: 'PARAMETERS_INVALID',
        issues: [{ path: 'n' }],
      });
      expect((await env.engine.list()).commands).toEqual([]);
    } finally {
      await env.cleanup();
    }
  });
});
