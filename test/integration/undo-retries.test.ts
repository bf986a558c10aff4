/**
 * Undo steps are retried under their type's policy, each attempt with a fresh task (a task id
 * is single-use on its agent), and a tree's compensation tells the truth: a child whose own
 * compensation failed makes its parent's compensation fail too, naming the child.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { startMonitored } from '../jobs/support.js';
import { assertNoLeakedEngines, holdVerbs, startEnv } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

/** Fails its stage (a failing task) after recording an undo step that runs a task. */
const undoWithTask = defineCommand({
  name: 'test.undo-with-task',
  schema: z.object({ key: z.string() }),
  retry: { maxAttempts: 5, backoffMs: 5, maxBackoffMs: 20 },
  execute(ctx) {
    ctx.addUndo('cleanup', { key: ctx.params.key });
    ctx.startTask({ agent: 'a1', verb: 'fail', args: { message: 'work failed' } });
  },
  undo: {
    async cleanup(ctx, data) {
      await ctx.runTask({ agent: 'a1', verb: 'hold', args: data ?? null });
    },
  },
});

/** Its undo step fails every time (a verb that always fails). */
const undoAlwaysFails = defineCommand({
  name: 'test.undo-always-fails',
  schema: z.object({}),
  retry: { maxAttempts: 2, backoffMs: 5 },
  execute(ctx) {
    ctx.addUndo('cleanup');
    ctx.startTask({ agent: 'a1', verb: 'fail', args: { message: 'work failed' } });
  },
  undo: {
    async cleanup(ctx) {
      await ctx.runTask({ agent: 'a1', verb: 'fail', args: { message: 'cannot clean up' } });
    },
  },
});

/** A parent of one child that fails and whose own compensation fails. */
const parentOfBadUndo = defineCommand({
  name: 'test.parent-of-bad-undo',
  schema: z.object({}),
  execute(ctx) {
    ctx.addChild(undoAlwaysFails, {});
  },
});

describe('undo steps', () => {
  it('an undo task cut off on its agent is retried with a fresh task id until it succeeds', async () => {
    const hold = holdVerbs();
    const env = await startEnv({ commands: [undoWithTask], verbs: hold.verbs });
    try {
      const { id } = await env.engine.submit(undoWithTask, { key: 'u1' });
      // The first undo task runs: the agent loses it (as in a restart).
      let first = '';
      await vi.waitFor(
        async () => {
          const tasks = (await env.engine.inspect(id))?.tasks ?? [];
          const undoTask = tasks.find((t) => t.origin < 0 && t.status === 'running');
          expect(undoTask).toBeDefined();
          first = `${env.engine.storeId}-${id}-${undoTask!.ordinal}`;
        },
        { timeout: 5_000, interval: 10 },
      );
      expect(env.agent().faults.vanish(first)).toBe(true);
      // The retry's task is released as soon as it exists.
      hold.release('u1');
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.compensation).toBe('compensated');
      const details = await env.engine.inspect(id);
      const undoTasks = details!.tasks.filter((t) => t.origin < 0);
      expect(undoTasks.map((t) => t.status)).toEqual(['failed', 'succeeded']);
      expect(undoTasks[0]?.error?.code).toBe('TASK_VANISHED');
      expect(new Set(undoTasks.map((t) => t.ordinal)).size).toBe(2);
      expect(details!.undo[0]).toMatchObject({ name: 'cleanup', status: 'done' });
    } finally {
      await env.cleanup();
    }
  });

  it('an undo step that keeps failing stops after its attempts, and the parent and its job say compensation failed', async () => {
    const monitored = await startMonitored({ commands: [parentOfBadUndo, undoAlwaysFails] });
    const { env } = monitored;
    try {
      const { id } = await env.engine.submit(parentOfBadUndo, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      const child = (await env.engine.inspect(id))!.children[0]!;
      expect(child.compensation).toBe('failed');
      const childTasks = (await env.engine.inspect(child.id))!.tasks.filter((t) => t.origin < 0);
      expect(childTasks).toHaveLength(2); // maxAttempts: 2, one task each
      expect(ended.compensation).toBe('failed');
      expect(ended.compensationError?.code).toBe('COMPENSATION_FAILED');
      expect(ended.compensationError?.message).toContain(`child ${child.id}`);
      expect(ended.compensationError?.message).toContain('cannot clean up');
      await monitored.monitor.flush();
      expect(await monitored.monitor.getJob(id)).toMatchObject({
        status: 'failed',
        compensation: 'failed',
      });
    } finally {
      await monitored.cleanup();
    }
  });
});
