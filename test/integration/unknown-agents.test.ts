/**
 * Tasks for an agent the node does not know (a typo in the agent id, an agent removed from the
 * configuration) end at once with `AGENT_UNKNOWN` naming the agent and the agents the node knows;
 * the command compensates and ends, cancel completes, nothing waits forever. An agent the node
 * knows but cannot reach is another case: back-off, then the task's deadline, with an error
 * that says the agent was unreachable.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { createEngine } from '../../src/engine/engine.js';
import type { Logger } from '../../src/core/command-type.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import {
  FAST,
  assertNoLeakedEngines,
  holdVerbs,
  settled,
  startEnv,
  tempDir,
  whenCommitted,
} from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const undone: string[] = [];
const onAgent = defineCommand({
  name: 'test.on-agent',
  schema: z.object({ agent: z.string(), verb: z.string().default('noop'), key: z.string() }),
  execute(ctx) {
    ctx.addUndo('note', { key: ctx.params.key });
    ctx.startTask({
      agent: ctx.params.agent,
      verb: ctx.params.verb,
      args: { key: ctx.params.key },
    });
  },
  undo: {
    note(_ctx, data) {
      undone.push((data as { key: string }).key);
    },
  },
});

/** Two stages: a task on a known agent first, then one on the agent named in the parameters. */
const twoStages = defineCommand({
  name: 'test.two-stages',
  schema: z.object({ agent: z.string() }),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: 'first' } });
  },
  next(ctx) {
    if (ctx.command.stage > 1) return;
    ctx.startTask({ agent: ctx.params.agent, verb: 'noop' });
  },
});

describe('tasks for an agent the node does not know', () => {
  it('fail at once with AGENT_UNKNOWN naming the agent and the known ones; the command compensates and ends', async () => {
    const env = await startEnv({ commands: [onAgent], agents: ['a1', 'a2'] });
    try {
      const { id } = await env.engine.submit(onAgent, { agent: 'a3-typo', key: 'k1' });
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('AGENT_UNKNOWN');
      expect(ended.error?.message).toContain('a3-typo');
      expect(ended.error?.message).toMatch(/a1.*a2/);
      expect(ended.compensation).toBe('compensated');
      expect(undone).toContain('k1');
      await settled(env.engine, id);
      const details = await env.engine.inspect(id);
      expect(details?.tasks[0]).toMatchObject({ status: 'failed', agentId: 'a3-typo' });
      expect(details?.tasks[0]?.error?.code).toBe('AGENT_UNKNOWN');
      expect(details?.tasks[0]?.error?.details).toMatchObject({
        agentId: 'a3-typo',
        knownAgents: ['a1', 'a2'],
      });
    } finally {
      await env.cleanup();
    }
  });

  it('many such commands end without flooding the log', async () => {
    const dir = tempDir();
    const lines: string[] = [];
    const logger: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (_o: unknown, m?: string) => void lines.push(m ?? ''),
      error: (_o: unknown, m?: string) => void lines.push(m ?? ''),
    };
    const engine = createEngine({
      store: sqliteStore({ path: join(dir, 'coco.db') }),
      agents: inProcessAgents(['a1']),
      commands: [onAgent],
      tuning: FAST,
      logger,
    });
    await engine.start();
    try {
      const ids = await engine.submitMany(
        Array.from({ length: 200 }, (_, i) => ({
          type: onAgent,
          params: { agent: 'nowhere', key: `m${i}` },
        })),
      );
      const ends = await Promise.all(ids.map(({ id }) => engine.waitFor(id)));
      expect(ends.every((e) => e.status === 'failed' && e.error?.code === 'AGENT_UNKNOWN')).toBe(
        true,
      );
      // One line (the first failures for that agent), not one per task or per retry.
      expect(lines.length).toBeLessThanOrEqual(5);
    } finally {
      await engine.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('cancel completes when the stop cannot reach the agent and the agent is then removed from the configuration', async () => {
    const hold = holdVerbs();
    const env = await startEnv({ commands: [onAgent], agents: ['a1', 'old'], verbs: hold.verbs });
    let next: Awaited<ReturnType<typeof env.restart>> | null = null;
    try {
      const { id } = await env.engine.submit(onAgent, { agent: 'old', verb: 'hold', key: 'c' });
      await whenCommitted(
        env.engine,
        async () => (await env.engine.inspect(id))?.tasks[0]?.status === 'running',
      );
      env.broker.agent('old').faults.failNextCalls(1_000_000, 'stopTasks');
      await env.engine.cancel(id);
      // The stop may be stored with the cancel itself: look first, then after each commit.
      await vi.waitFor(
        async () => expect((await env.engine.inspect(id))?.tasks[0]?.stopRequested).toBe(true),
        { timeout: 5_000, interval: 20 },
      );
      expect((await env.engine.get(id))?.status).toBe('aborting');
      // Restarted without "old": the stop can never be delivered; the cancel still completes.
      next = await env.restart({ broker: inProcessAgents(['a1'], { verbs: hold.verbs }) });
      const ended = await next.engine.waitFor(id);
      expect(ended.status).toBe('cancelled');
      const task = (await next.engine.inspect(id))?.tasks[0];
      expect(task?.status).toBe('failed');
      expect(task?.error?.code).toBe('AGENT_UNKNOWN');
    } finally {
      await (next ?? env).cleanup();
    }
  });

  it('a command whose second stage names an unknown agent fails at that stage', async () => {
    const hold = holdVerbs();
    const env = await startEnv({ commands: [twoStages], agents: ['a1'], verbs: hold.verbs });
    try {
      const { id } = await env.engine.submit(twoStages, { agent: 'ghost' });
      hold.release('first');
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('AGENT_UNKNOWN');
    } finally {
      await env.cleanup();
    }
  });

  it('a task loaded at start for an agent no longer configured ends with AGENT_UNKNOWN', async () => {
    const hold = holdVerbs();
    const env = await startEnv({ commands: [onAgent], agents: ['a1', 'old'], verbs: hold.verbs });
    let next: Awaited<ReturnType<typeof env.restart>> | null = null;
    try {
      const { id } = await env.engine.submit(onAgent, { agent: 'old', verb: 'hold', key: 'x' });
      await whenCommitted(
        env.engine,
        async () => (await env.engine.inspect(id))?.tasks[0]?.status === 'running',
      );
      // The next start is configured without "old": its tasks cannot be reached any more.
      next = await env.restart({ broker: inProcessAgents(['a1'], { verbs: hold.verbs }) });
      const ended = await next.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('AGENT_UNKNOWN');
      expect(ended.error?.message).toMatch(/cannot stop or clear/);
    } finally {
      await (next ?? env).cleanup();
    }
  });
});

describe('an agent the node knows but cannot reach', () => {
  it('is backed off, then the task ends at its deadline with an error saying the agent was unreachable', async () => {
    const deadline = defineCommand({
      name: 'test.unreachable',
      schema: z.object({}),
      execute(ctx) {
        ctx.startTask({ agent: 'a1', verb: 'noop', deadlineMs: 300 });
      },
    });
    const env = await startEnv({ commands: [deadline], agents: ['a1'] });
    try {
      env.broker.removeAgent('a1');
      const { id } = await env.engine.submit(deadline, {});
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error?.code).toBe('TASK_DEADLINE_EXCEEDED');
      expect(ended.error?.message).toMatch(/agent a1 .*unreachable/);
      const details = await env.engine.inspect(id);
      expect(details?.tasks[0]?.error?.details).toMatchObject({ agent: 'unreachable' });
    } finally {
      await env.cleanup();
    }
  });
});
