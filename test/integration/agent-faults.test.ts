import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import type { EngineEventMap } from '../../src/engine/events.js';
import {
  assertNoLeakedEngines,
  holdVerbs,
  settled,
  startEnv,
  whenCommitted,
} from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const task = defineCommand({
  name: 'test.task',
  schema: z.object({ verb: z.string(), args: z.unknown().optional() }),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: ctx.params.verb, args: (ctx.params.args ?? null) as never });
  },
});

describe('agent faults', () => {
  it('polling errors back the agent off, then polling recovers and the command ends', async () => {
    const env = await startEnv({
      commands: [task],
      tuning: { agentBackoffBaseMs: 40, agentBackoffMaxMs: 400 },
    });
    try {
      const agentEvents: (EngineEventMap['agent'] & { at: number })[] = [];
      env.engine.on('agent', (e) => agentEvents.push({ ...e, at: performance.now() }));
      env.agent().faults.failNextCalls(4, 'getStatuses');
      const { id } = await env.engine.submit(task, { verb: 'sleep', args: { ms: 20 } });
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('succeeded');
      const downs = agentEvents.filter((e) => !e.up);
      expect(downs.map((e) => e.failures)).toEqual([1, 2, 3, 4]);
      expect(downs[0]?.error?.code).toBe('AGENT_UNAVAILABLE');
      expect(agentEvents.at(-1)).toMatchObject({ up: true, failures: 0 });
      // Each retry waited at least half its (doubling) back-off: 40, 80, 160 ms.
      for (let i = 1; i < downs.length; i++) {
        const minimum = (40 * 2 ** (i - 1)) / 2;
        expect(downs[i]!.at - downs[i - 1]!.at).toBeGreaterThanOrEqual(minimum - 5);
      }
      expect(env.agent().counters().injectedFailures).toBe(4);
    } finally {
      await env.cleanup();
    }
  });

  it('an agent that does not answer times out, is backed off, and is used again once it answers', async () => {
    const env = await startEnv({ commands: [task], tuning: { agentCallTimeoutMs: 100 } });
    try {
      const agentEvents: EngineEventMap['agent'][] = [];
      env.engine.on('agent', (e) => agentEvents.push(e));
      env.agent().faults.hang('getStatuses');
      const { id } = await env.engine.submit(task, { verb: 'noop' });
      await new Promise<void>((resolve) => {
        const off = env.engine.on('agent', (e) => {
          if (!e.up && e.failures >= 2) {
            off();
            resolve();
          }
        });
      });
      expect(agentEvents[0]?.error?.code).toBe('AGENT_TIMEOUT');
      expect((await env.engine.get(id))?.status).toBe('waiting');
      env.agent().faults.resume();
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('succeeded');
      expect(agentEvents.at(-1)?.up).toBe(true);
    } finally {
      await env.cleanup();
    }
  });

  it('a task the agent no longer knows fails after the grace period, with a reason', async () => {
    const hold = holdVerbs();
    const env = await startEnv({
      commands: [task],
      verbs: hold.verbs,
      tuning: { vanishGraceMs: 150 },
    });
    try {
      const { id } = await env.engine.submit(task, { verb: 'hold', args: { key: 'x' } });
      await whenCommitted(
        env.engine,
        async () => (await env.engine.inspect(id))?.tasks[0]?.status === 'running',
      );
      const taskId = `${env.engine.storeId}-${id}-0`;
      const vanishedAt = performance.now();
      expect(env.agent().faults.vanish(taskId)).toBe(true);
      const ended = await env.engine.waitFor(id);
      expect(performance.now() - vanishedAt).toBeGreaterThanOrEqual(150);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('TASK_VANISHED');
      const details = await env.engine.inspect(id);
      expect(details?.tasks[0]?.status).toBe('failed');
      expect(details?.tasks[0]?.error?.message).toMatch(
        /agent a1 no longer knows task .*grace period/,
      );
    } finally {
      await env.cleanup();
    }
  });

  it('a verb the agent does not know is refused and fails the command with TASK_REJECTED', async () => {
    const env = await startEnv({ commands: [task] });
    try {
      const { id } = await env.engine.submit(task, { verb: 'no-such-verb' });
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('TASK_REJECTED');
      expect(ended.error?.message).toContain('no-such-verb');
    } finally {
      await env.cleanup();
    }
  });

  it('a task past its deadline is failed, stopped on its agent, and cleared after it stopped', async () => {
    const deadline = defineCommand({
      name: 'test.deadline',
      schema: z.object({}),
      execute(ctx) {
        ctx.startTask({ agent: 'a1', verb: 'sleep', args: { ms: 60_000 }, deadlineMs: 80 });
      },
    });
    const env = await startEnv({ commands: [deadline] });
    try {
      const { id } = await env.engine.submit(deadline, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('TASK_DEADLINE_EXCEEDED');
      await settled(env.engine, id);
      const taskId = `${env.engine.storeId}-${id}-0`;
      expect(env.agent().taskHistory(taskId)).toMatchObject({
        starts: 1,
        clears: 1,
        endedState: 'cancelled',
      });
      expect(env.agent().counters().clearsOfRunning).toBe(0);
    } finally {
      await env.cleanup();
    }
  });

  it('a task left uncleared when the engine stopped is cleared once by the next start', async () => {
    const env = await startEnv({ commands: [task], agents: ['a1'] });
    let next: Awaited<ReturnType<typeof env.restart>> | null = null;
    try {
      env.agent().faults.failNextCalls(1_000, 'clearTasks');
      const { id } = await env.engine.submit(task, { verb: 'sleep', args: { ms: 1 } });
      expect((await env.engine.waitFor(id)).status).toBe('succeeded');
      const taskId = `${env.engine.storeId}-${id}-0`;
      // Alone on its store, the engine records the clear with the outcome: the row leaves the
      // active set although the agent still holds the task.
      expect((await env.engine.get(id))?.tasksCleared).toBe(true);
      expect(env.agent().taskHistory(taskId)?.clears).toBe(0);
      env.agent().faults.reset();
      next = await env.restart();
      // Not loaded again (inactive), so its task is a stranger to the reconciliation.
      await vi.waitFor(() => expect(env.agent().taskHistory(taskId)?.clears).toBe(1), {
        timeout: 5_000,
        interval: 10,
      });
      expect(await env.agent().listTasks(next.engine.storeId)).toEqual([]);
      expect(env.agent().counters().clearsOfRunning).toBe(0);
    } finally {
      await (next ?? env).cleanup();
    }
  });

  it('a command ended while its agent still runs a task is not taken for cleared until the task ended there', async () => {
    const deadline = defineCommand({
      name: 'test.deadline-stuck',
      schema: z.object({}),
      execute(ctx) {
        ctx.startTask({ agent: 'a1', verb: 'sleep', args: { ms: 60_000 }, deadlineMs: 80 });
      },
    });
    const env = await startEnv({ commands: [deadline] });
    try {
      // The stop does not get through: the agent keeps running the task.
      env.agent().faults.failNextCalls(1_000_000, 'stopTasks');
      const { id } = await env.engine.submit(deadline, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.error?.code).toBe('TASK_DEADLINE_EXCEEDED');
      const taskId = `${env.engine.storeId}-${id}-0`;
      expect(env.agent().task(taskId)?.state).toBe('running');
      // A reconciliation (a restart, another node's sweep) must not take it for a leftover.
      expect((await env.engine.get(id))?.tasksCleared).toBe(false);
      env.agent().faults.reset();
      await settled(env.engine, id);
      expect((await env.engine.get(id))?.tasksCleared).toBe(true);
      expect(env.agent().taskHistory(taskId)).toMatchObject({ clears: 1, endedState: 'cancelled' });
      expect(env.agent().counters().clearsOfRunning).toBe(0);
    } finally {
      await env.cleanup();
    }
  });
});

describe('foreign tasks that appear while the engine runs', () => {
  it('are found by the periodic reconciliation, stopped and cleared, without a restart', async () => {
    const env = await startEnv({ commands: [task], tuning: { reconcileIntervalMs: 100 } });
    try {
      // After the reconciliation of the start (its list call answered)...
      await vi.waitFor(() => expect(env.agent().counters().listCalls).toBeGreaterThan(0), {
        timeout: 5_000,
        interval: 5,
      });
      const listsAfterStart = env.agent().counters().listCalls;
      // ...a task of ours (our store's prefix) that no row knows appears: left by a late start,
      // a restored agent backup, another process of this store that died.
      const stray = `${env.engine.storeId}-999999-0`;
      await env.agent().startTasks([{ taskId: stray, verb: 'sleep', args: { ms: 60_000 } }]);
      // An unrelated task (another store's prefix) is never touched.
      await env.agent().startTasks([{ taskId: 'cother-1-0', verb: 'sleep', args: { ms: 60_000 } }]);
      await vi.waitFor(() => expect(env.agent().taskHistory(stray)?.clears).toBe(1), {
        timeout: 5_000,
        interval: 20,
      });
      expect(env.agent().taskHistory(stray)?.endedState).toBe('cancelled');
      expect(env.agent().counters().listCalls).toBeGreaterThan(listsAfterStart);
      expect(env.agent().task('cother-1-0')?.state).toBe('running');
      // The engine's own work is unaffected.
      const { id } = await env.engine.submit(task, { verb: 'sleep', args: { ms: 150 } });
      expect((await env.engine.waitFor(id)).status).toBe('succeeded');
      await env.agent().stopTasks(['cother-1-0']);
    } finally {
      await env.cleanup();
    }
  });
});
