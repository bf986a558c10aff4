import { afterEach, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../src/core/clock.js';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { Journal, testCommands } from '../support/commands.js';
import { assertNoLeakedEngines, gate, startEnv, whenCommitted } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

describe('cancellation', () => {
  it('cancelling a root stops its tasks, cancels the subtree, compensates and ends cancelled', async () => {
    const journal = new Journal();
    const t = testCommands(journal);
    const env = await startEnv({ commands: t.all });
    try {
      const { id } = await env.engine.submit(t.group, {
        name: 'root',
        children: [
          { name: 'k1', tasks: 2, verb: 'sleep', args: { ms: 60_000 } },
          { name: 'k2', tasks: 1, verb: 'sleep', args: { ms: 60_000 } },
        ],
      });
      await whenCommitted(env.engine, async () => {
        const d = await env.engine.inspect(id);
        if (d?.children.length !== 2) return false;
        const tasks = await Promise.all(d.children.map((c) => env.engine.inspect(c.id)));
        return tasks.every(
          (x) => x!.tasks.length > 0 && x!.tasks.every((tt) => tt.status === 'running'),
        );
      });
      await env.engine.cancel(id);
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('cancelled');
      expect(ended.error?.code).toBe('CANCELLED');
      const d = await env.engine.inspect(id);
      expect(d!.children.map((c) => c.status)).toEqual(['cancelled', 'cancelled']);
      expect(env.agent().counters().stops).toBe(3);
      for (const c of d!.children) {
        const tasks = (await env.engine.inspect(c.id))!.tasks;
        expect(tasks.every((x) => x.status === 'cancelled' && x.stopRequested)).toBe(true);
      }
      expect(new Set(journal.matching('undo:'))).toEqual(
        new Set(['undo:k1', 'undo:k2', 'undo:root']),
      );
      expect(journal.matching('undo:').at(-1)).toBe('undo:root');
      await expect(env.engine.cancel(id)).rejects.toMatchObject({ code: 'COMMAND_STATE' });
      await expect(env.engine.cancel(999_999)).rejects.toMatchObject({ code: 'COMMAND_NOT_FOUND' });
    } finally {
      await env.cleanup();
    }
  });

  it('a stage that is still running sees its signal aborted and the command ends cancelled', async () => {
    const started = gate();
    let sawAbort = false;
    const slow = defineCommand({
      name: 'test.slow-execute',
      schema: z.object({}),
      async execute(ctx) {
        started.open();
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
        sawAbort = ctx.signal.aborted;
      },
    });
    const env = await startEnv({ commands: [slow] });
    try {
      const { id } = await env.engine.submit(slow, {});
      await started.promise;
      await env.engine.cancel(id);
      const ended = await env.engine.waitFor(id);
      expect(sawAbort).toBe(true);
      expect(ended.status).toBe('cancelled');
    } finally {
      await env.cleanup();
    }
  });
});

describe('handler retries', () => {
  it('a stage that throws is retried with back-off and then succeeds', async () => {
    const attempts: number[] = [];
    const flaky = defineCommand({
      name: 'test.flaky',
      schema: z.object({}),
      retry: { maxAttempts: 5, backoffMs: 10 },
      execute(ctx) {
        attempts.push(ctx.command.attempt);
        if (ctx.command.attempt < 3) throw new Error(`flake ${ctx.command.attempt}`);
        ctx.startTask({ agent: 'a1', verb: 'noop' });
      },
    });
    const env = await startEnv({ commands: [flaky] });
    try {
      const { id } = await env.engine.submit(flaky, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('succeeded');
      expect(attempts).toEqual([1, 2, 3]);
      expect(ended.lastError).toBeNull();
      expect(env.agent().counters().starts).toBe(1);
    } finally {
      await env.cleanup();
    }
  });

  it('an end handler that always throws fails its command after the limit, with the error kept', async () => {
    const undone: string[] = [];
    let calls = 0;
    const bad = defineCommand({
      name: 'test.bad-end',
      schema: z.object({}),
      retry: { maxAttempts: 3, backoffMs: 5 },
      execute(ctx) {
        ctx.addUndo('cleanup');
        ctx.startTask({ agent: 'a1', verb: 'noop' });
      },
      onSuccess() {
        calls++;
        throw new Error('database unreachable');
      },
      undo: {
        cleanup() {
          undone.push('cleanup');
        },
      },
    });
    const env = await startEnv({ commands: [bad] });
    try {
      const { id } = await env.engine.submit(bad, {});
      const ended = await env.engine.waitFor(id);
      expect(calls).toBe(3);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('HANDLER_FAILED');
      expect(ended.error?.message).toMatch(
        /onSuccess .* failed after 3 attempt\(s\): database unreachable/,
      );
      expect(undone).toEqual(['cleanup']);
      expect(ended.compensation).toBe('compensated');
    } finally {
      await env.cleanup();
    }
  });

  it('an undo step that keeps failing stops compensation and the error is kept', async () => {
    const undo = defineCommand({
      name: 'test.bad-undo',
      schema: z.object({}),
      retry: { maxAttempts: 2, backoffMs: 5 },
      execute(ctx) {
        ctx.addUndo('first');
        ctx.addUndo('second');
        ctx.startTask({ agent: 'a1', verb: 'fail', args: { message: 'boom' } });
      },
      undo: {
        first() {},
        second() {
          throw new Error('cannot undo');
        },
      },
    });
    const env = await startEnv({ commands: [undo] });
    try {
      const { id } = await env.engine.submit(undo, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('TASK_FAILED');
      expect(ended.compensation).toBe('failed');
      expect(ended.compensationError?.code).toBe('COMPENSATION_FAILED');
      expect(ended.compensationError?.message).toContain('cannot undo');
      const d = await env.engine.inspect(id);
      // Reverse order: "second" failed, so "first" was not run.
      expect(d!.undo.map((u) => [u.name, u.status])).toEqual([
        ['first', 'recorded'],
        ['second', 'failed'],
      ]);
    } finally {
      await env.cleanup();
    }
  });

  it('an undo step can run a task on an agent and wait for it', async () => {
    const removed: unknown[] = [];
    const withUndoTask = defineCommand({
      name: 'test.undo-task',
      schema: z.object({}),
      execute(ctx) {
        ctx.addUndo('remove', { path: '/x' });
        ctx.startTask({ agent: 'a1', verb: 'fail' });
      },
      undo: {
        async remove(ctx, data) {
          removed.push(await ctx.runTask({ agent: 'a1', verb: 'echo', args: data ?? null }));
        },
      },
    });
    const env = await startEnv({ commands: [withUndoTask] });
    try {
      const { id } = await env.engine.submit(withUndoTask, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.compensation).toBe('compensated');
      expect(removed).toEqual([{ path: '/x' }]);
      const d = await env.engine.inspect(id);
      expect(d!.tasks.map((x) => [x.verb, x.origin, x.status])).toEqual([
        ['fail', 0, 'failed'],
        ['echo', -1, 'succeeded'],
      ]);
    } finally {
      await env.cleanup();
    }
  });

  it('a command with a lifetime fails with COMMAND_TIMEOUT when it runs past it', async () => {
    const lifetime = defineCommand({
      name: 'test.lifetime',
      schema: z.object({}),
      timeoutMs: 100,
      execute(ctx) {
        ctx.startTask({ agent: 'a1', verb: 'sleep', args: { ms: 60_000 } });
      },
    });
    const env = await startEnv({ commands: [lifetime] });
    try {
      const { id } = await env.engine.submit(lifetime, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('COMMAND_TIMEOUT');
      expect(env.agent().counters().stops).toBe(1);
    } finally {
      await env.cleanup();
    }
  });

  it('a lifetime timer that fires early (before the clock reaches the deadline) still ends the command', async () => {
    const lifetime = defineCommand({
      name: 'test.lifetime-early',
      schema: z.object({}),
      timeoutMs: 50,
      execute(ctx) {
        ctx.startTask({ agent: 'a1', verb: 'sleep', args: { ms: 60_000 } });
      },
    });
    // Timers fire 5 ms early, as Node's can by a millisecond against Date.now().
    const early: Clock = {
      now: () => systemClock.now(),
      setTimer: (ms, fn) => systemClock.setTimer(ms - 5, fn),
    };
    const env = await startEnv({ commands: [lifetime], clock: early });
    try {
      const { id } = await env.engine.submit(lifetime, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.error?.code).toBe('COMMAND_TIMEOUT');
      expect(ended.endedAt! - ended.createdAt).toBeGreaterThanOrEqual(50);
    } finally {
      await env.cleanup();
    }
  });
});
