import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { HttpBroker } from '../../src/brokers/http/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { createEngine } from '../../src/engine/engine.js';
import { PATHS } from '../../src/protocol/agent-v2.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FAST, tempDir } from '../support/harness.js';
import { FakeAgentServer } from './fake-agent.js';
import { engineOver, onCleanup, until } from './http-setup.js';

const one = defineCommand({
  name: 'test.http.one',
  schema: z.object({ agent: z.string(), verb: z.string() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: ctx.params.agent, verb: ctx.params.verb, args: { from: 'engine' } });
  },
  onSuccess(ctx) {
    return { results: ctx.tasks.map((t) => t.result) };
  },
});

describe('the real engine over the HTTP broker', () => {
  it('runs commands whose tasks live on two HTTP agents, and saves what it learns of them', async () => {
    // One server per agent, as two hosts would be.
    const s1 = await FakeAgentServer.start({ agents: ['a1'] });
    const s2 = await FakeAgentServer.start({ agents: ['a2'] });
    onCleanup(() => s1.close());
    onCleanup(() => s2.close());
    const broker = new HttpBroker({
      caller: 'engine-under-test',
      agents: [...s1.configs(), ...s2.configs()],
      longPoll: { waitMs: 5_000 },
    });
    // A long poll interval: completion must come through the long-poll, not the safety net.
    const engine = await engineOver(broker, [one], { ...FAST, pollIntervalMs: 60_000 });
    const a1 = s1.agent('a1');
    const a2 = s2.agent('a2');

    const { id: quick } = await engine.submit(one, { agent: 'a1', verb: 'noop' });
    const { id: held } = await engine.submit(one, { agent: 'a2', verb: 'hold' });
    const done = await engine.waitFor(quick);
    expect(done.status).toBe('succeeded');
    expect(done.result).toEqual({ results: [{ from: 'engine' }] });

    await until(() => a2.running().length === 1, 5_000, 'the task on a2');
    const began = Date.now();
    a2.finish(a2.running()[0]!, { result: 'done on a2' });
    const second = await engine.waitFor(held);
    expect(second.status).toBe('succeeded');
    expect(second.result).toEqual({ results: ['done on a2'] });
    // Well below the 60 s poll interval: the long-poll carried the end.
    expect(Date.now() - began).toBeLessThan(2_000);

    // Everything went over HTTP, one start call per agent, signed (nothing refused).
    expect(a1.requests(PATHS.start)).toBe(1);
    expect(a2.requests(PATHS.start)).toBe(1);
    expect(a1.requests(PATHS.list) + a2.requests(PATHS.list)).toBeGreaterThanOrEqual(2); // reconciliation
    expect(a1.requests(PATHS.changes)).toBeGreaterThanOrEqual(1);
    expect(a1.counters.unauthorized + a2.counters.unauthorized).toBe(0);
    // The engine cleared the ended tasks on the agents.
    await until(() => a1.tasks.size === 0 && a2.tasks.size === 0, 5_000, 'the clears');

    // The engine saved the agents it heard of, with their boot ids.
    await until(async () => (await engine.agents()).length === 2, 5_000, 'the saved agents');
    const saved = await engine.agents();
    expect(
      saved
        .map((a) => ({ id: a.id, address: a.address, state: a.state, bootId: a.bootId }))
        .sort((x, y) => x.id.localeCompare(y.id)),
    ).toEqual([
      { id: 'a1', address: s1.url('a1'), state: 'up', bootId: a1.bootId },
      { id: 'a2', address: s2.url('a2'), state: 'up', bootId: a2.bootId },
    ]);

    // A restart of a2 (new boot id) reaches the store too.
    const reboot = a2.restart();
    await until(
      async () => (await engine.agents()).find((a) => a.id === 'a2')?.bootId === reboot,
      5_000,
      'the new boot id',
    );

    // And a stopped agent is saved as down.
    await s1.close();
    await expect(broker.listTasks('a1', '')).rejects.toMatchObject({ code: 'AGENT_UNAVAILABLE' });
    await until(
      async () => (await engine.agents()).find((a) => a.id === 'a1')?.state === 'down',
      5_000,
      'a1 down',
    );
  });
});

describe('the real engine over a misbehaving HTTP agent', () => {
  it('an agent that errors, is slow, then hangs: the circuit opens and closes, and nothing is lost', async () => {
    const s = await FakeAgentServer.start({ agents: ['a1'] });
    onCleanup(() => s.close());
    const broker = new HttpBroker({
      caller: 'engine-under-test',
      agents: s.configs(),
      timeoutMs: 500,
      retries: { max: 1, baseMs: 20, maxMs: 50 },
      circuit: { failureThreshold: 3, coolDownMs: 150, maxCoolDownMs: 300 },
      longPoll: { waitMs: 2_000 },
    });
    onCleanup(() => broker.close());
    const dir = tempDir();
    onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
    const engine = createEngine({
      store: sqliteStore({ path: join(dir, 'coco.db') }),
      agents: broker,
      commands: [one],
      tuning: { ...FAST, pollIntervalMs: 100, agentCallTimeoutMs: 2_000 },
    });
    const states: string[] = [];
    engine.on('agent', (e) => states.push(e.up ? 'up' : 'down'));
    await engine.start();
    onCleanup(() => engine.stop());
    const a1 = s.agent('a1');

    // Errors on every call: the engine backs off, the broker's circuit opens.
    a1.fault({ kind: 'status', status: 500 });
    const submitted = await engine.submitMany(
      Array.from({ length: 20 }, () => ({ type: one, params: { agent: 'a1', verb: 'noop' } })),
    );
    await until(() => broker.agent('a1').circuit === 'open', 10_000, 'the circuit to open');
    // Slow answers, then a hang: still nothing ends, nothing is lost.
    a1.heal().fault({ kind: 'delay', ms: 300, times: 3 }).fault({ kind: 'hang', times: 2 });
    // Healthy again: every command ends, each task started once.
    await until(
      () => broker.agent('a1').circuit === 'closed' && a1.faults.length === 0,
      20_000,
      'the circuit to close',
    );
    a1.heal();
    for (const { id } of submitted) expect((await engine.waitFor(id)).status).toBe('succeeded');
    expect(states).toContain('down');
    expect(states.at(-1)).toBe('up');
    expect(a1.counters.unauthorized).toBe(0);
  }, 40_000);
});
