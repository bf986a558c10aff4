/**
 * A start that arrives late must not run (issue 10, item 4): the engine's start call times out,
 * the engine goes on (stops the task for a cancel, or starts it again and clears it once its
 * command ended), and only then does the agent apply the delayed start. Task ids are single-use
 * on agents, so that start is refused: the verb never runs unsupervised, never runs twice.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import type { AgentBroker } from '../../src/brokers/port.js';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { assertNoLeakedEngines, settled, startEnv } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const task = defineCommand({
  name: 'test.late',
  schema: z.object({ ms: z.number() }),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'sleep', args: { ms: ctx.params.ms } });
  },
});

describe('a start applied late by its agent', () => {
  it('after the cancel stopped the task: refused, the command ends cancelled, the verb never ran', async () => {
    const env = await startEnv({ commands: [task], tuning: { agentCallTimeoutMs: 100 } });
    try {
      env.agent().faults.hang('startTasks');
      const timedOut = new Promise<void>((resolve) => {
        const off = env.engine.on('agent', (e) => {
          if (!e.up && e.error?.code === 'AGENT_TIMEOUT') {
            off();
            resolve();
          }
        });
      });
      const { id } = await env.engine.submit(task, { ms: 60_000 });
      await timedOut;
      await env.engine.cancel(id);
      await vi.waitFor(() => expect(env.agent().counters().stopCalls).toBeGreaterThan(0), {
        timeout: 5_000,
        interval: 10,
      });
      // Only now does the agent apply the start it held.
      env.agent().faults.resume();
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('cancelled');
      await settled(env.engine, id);
      const taskId = `${env.engine.storeId}-${id}-0`;
      expect(env.agent().taskHistory(taskId)?.starts ?? 0).toBe(0);
      expect(env.agent().runningCount).toBe(0);
    } finally {
      await env.cleanup();
    }
  });

  it('after the retried start ran and was cleared: refused, the verb ran once', async () => {
    const inner = inProcessAgents(['a1']);
    let release: (() => void) | null = null;
    let first = true;
    // The first start call is applied only when the test says so, long after the engine's call
    // gave up; every later call goes straight through.
    const broker: AgentBroker = {
      agentIds: () => inner.agentIds(),
      startTasks: (agent, requests) => {
        if (!first) return inner.startTasks(agent, requests);
        first = false;
        return new Promise((resolve, reject) => {
          release = () => void inner.startTasks(agent, requests).then(resolve, reject);
        });
      },
      getStatuses: (agent, ids) => inner.getStatuses(agent, ids),
      stopTasks: (agent, ids) => inner.stopTasks(agent, ids),
      clearTasks: (agent, ids) => inner.clearTasks(agent, ids),
      listTasks: (agent, prefix) => inner.listTasks(agent, prefix),
      onActivity: (listener) => inner.onActivity(listener),
    };
    const env = await startEnv({
      commands: [task],
      broker: broker as never,
      tuning: { agentCallTimeoutMs: 100 },
    });
    try {
      const { id } = await env.engine.submit(task, { ms: 20 });
      expect((await env.engine.waitFor(id)).status).toBe('succeeded');
      await settled(env.engine, id);
      const taskId = `${env.engine.storeId}-${id}-0`;
      expect(inner.agent('a1').taskHistory(taskId)).toMatchObject({ starts: 1, clears: 1 });
      // The first call's start arrives now.
      expect(release).not.toBeNull();
      release!();
      await vi.waitFor(
        () => expect(inner.agent('a1').counters().rejectedStarts).toBeGreaterThan(0),
        { timeout: 5_000, interval: 10 },
      );
      expect(inner.agent('a1').taskHistory(taskId)?.starts).toBe(1);
      expect(inner.agent('a1').runningCount).toBe(0);
    } finally {
      await env.cleanup();
    }
  });
});
