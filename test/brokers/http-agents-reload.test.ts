/**
 * The HTTP broker's agents replaced while the engine runs (`HttpBroker.setAgents`, what a node's
 * configuration reload calls), over real HTTP with the real engine: an agent added takes tasks at
 * once; one removed is retired (still reached: the tree running there goes on to its next stage's
 * task and its end, its tasks cleared; shown as not configured), drained (a tree submitted since
 * starts nothing there), and forgotten once nothing of this node is on it; one at another URL is
 * called there; a bad list changes nothing.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { HttpBroker } from '../../src/brokers/http/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import type { Engine } from '../../src/engine/engine.js';
import { PATHS } from '../../src/protocol/agent-v2.js';
import { FAST } from '../support/harness.js';
import { PG_URL, adminQuery, describePg, freshSchema } from '../support/pg.js';
import { parseConfig } from '../../src/config/config.js';
import { startNode } from '../../src/server/node.js';
import { FakeAgentServer } from './fake-agent.js';
import { engineOver, onCleanup, rejection, until } from './http-setup.js';

const one = defineCommand({
  name: 'test.http.reload.one',
  schema: z.object({ agent: z.string(), verb: z.string() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: ctx.params.agent, verb: ctx.params.verb, args: null });
  },
});

/** A held task on `agent`, then, in a second stage, another task there. */
const twoStages = defineCommand({
  name: 'test.http.reload.two-stages',
  schema: z.object({ agent: z.string() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: ctx.params.agent, verb: 'hold', args: null });
  },
  next(ctx) {
    if (ctx.command.stage !== 1) return;
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: ctx.params.agent, verb: 'noop', args: { stage: 2 } });
  },
});

async function server(id: string): Promise<FakeAgentServer> {
  const s = await FakeAgentServer.start({ agents: [id] });
  onCleanup(() => s.close());
  return s;
}

/** Runs one command with one task on `agent` to its end: its status and error. */
async function run(
  engine: Engine,
  agent: string,
  verb = 'noop',
): Promise<{ status: string; code: string | undefined; message: string | undefined }> {
  const { id } = await engine.submit(one, { agent, verb });
  const ended = await engine.waitFor(id);
  return { status: ended.status, code: ended.error?.code, message: ended.error?.message };
}

describe('HttpBroker.setAgents under a running engine', () => {
  it('an agent added takes tasks at once; a retired one is still reached until the trees running there end, then forgotten', async () => {
    const s1 = await server('a1');
    const s2 = await server('a2');
    const broker = new HttpBroker({
      caller: 'engine-reload',
      agents: s1.configs(),
      longPoll: { waitMs: 5_000 },
    });
    const engine = await engineOver(broker, [one, twoStages], FAST);
    const a2 = s2.agent('a2');

    // Not configured: refused before any start.
    expect(await run(engine, 'a2')).toMatchObject({ status: 'failed', code: 'AGENT_UNKNOWN' });
    expect(a2.requests(PATHS.start)).toBe(0);

    // Added: taken at once (the engine lists the agents again on the change, not a second later).
    expect(broker.setAgents([...s1.configs(), ...s2.configs()])).toEqual({
      added: ['a2'],
      retired: [],
      moved: [],
      secrets: [],
    });
    expect(await run(engine, 'a2')).toEqual({
      status: 'succeeded',
      code: undefined,
      message: undefined,
    });

    // A tree with a task on a2 when it is retired: its start still on its way back at first.
    const before = a2.requests(PATHS.start);
    a2.fault({ kind: 'delay', ms: 300, paths: [PATHS.start], times: 1 });
    const { id: held } = await engine.submit(twoStages, { agent: 'a2' });
    await until(() => a2.requests(PATHS.start) === before + 1, 5_000, 'the start sent to a2');
    const starts = a2.requests(PATHS.start);
    expect(broker.setAgents(s1.configs())).toEqual({
      added: [],
      retired: ['a2'],
      moved: [],
      secrets: [],
    });
    // Still reached (the work in flight there goes on), shown as no longer configured.
    expect(await broker.agentIds()).toEqual(['a1', 'a2']);
    const retiredAt = broker.retiredAt('a2');
    expect(retiredAt).toBeTypeOf('number');
    expect(broker.retiredAt('a1')).toBeNull();
    expect(await engine.configuredAgents()).toEqual(['a1']);
    expect(await engine.retiredAgents()).toEqual(new Map([['a2', retiredAt]]));
    // Retiring twice changes nothing more (nor the time).
    expect(broker.setAgents(s1.configs()).retired).toEqual([]);
    expect(broker.retiredAt('a2')).toBe(retiredAt);
    // Drained: a tree submitted since starts nothing there; it fails at once, nothing sent.
    const refused = await run(engine, 'a2');
    expect(refused).toMatchObject({ status: 'failed', code: 'AGENT_RETIRED' });
    expect(refused.message).toContain('retired from this node');
    expect(a2.requests(PATHS.start)).toBe(starts);
    // Not to be forgotten while a start of this node is on its way (it counted only the tasks
    // already polled: under load the forget went through and dropped the agent), nor while it
    // runs one.
    expect(await rejection(engine.forgetAgent('a2'))).toMatchObject({ code: 'AGENT_IN_USE' });
    await until(() => engine.tasksInFlight().get('a2') === 1, 5_000, 'the task polled');
    expect(await rejection(engine.forgetAgent('a2'))).toMatchObject({
      code: 'AGENT_IN_USE',
      details: { tasksInFlight: 1 },
    });
    // The running task ends; the tree's next stage starts its task there, after the retirement
    // (refusing it failed the tree and its compensation on the agent: seen with a migration).
    a2.finish(a2.running()[0]!, { result: 'done on a retired agent' });
    expect((await engine.waitFor(held)).status).toBe('succeeded');
    expect(a2.requests(PATHS.start)).toBe(starts + 1);
    await until(() => a2.tasks.size === 0, 5_000, 'the clears on the retired agent');
    // The others' tasks go on.
    expect((await run(engine, 'a1')).status).toBe('succeeded');

    // Forgotten (its row deleted) only once this node no longer uses it.
    await until(
      async () => (await engine.agents()).some((a) => a.id === 'a2'),
      5_000,
      'the saved a2',
    );
    const inUse = await rejection(engine.forgetAgent('a1'));
    expect(inUse).toMatchObject({ code: 'AGENT_IN_USE' });
    expect(inUse.message).toContain('is configured on this node');
    await engine.forgetAgent('a2');
    expect((await engine.agents()).map((a) => a.id)).toEqual(['a1']);
    // The broker no longer follows it: its row is not written again.
    expect(() => broker.agent('a2')).toThrow(/not configured/);
    expect(await rejection(engine.forgetAgent('a2'))).toMatchObject({ code: 'NOT_FOUND' });

    // Configured again: added back, no longer retired.
    expect(broker.setAgents([...s1.configs(), ...s2.configs()]).added).toEqual(['a2']);
    expect(await engine.retiredAgents()).toEqual(new Map());
    expect((await run(engine, 'a2')).status).toBe('succeeded');
  });

  it('an agent at another URL is called there from the next call; a bad list changes nothing', async () => {
    const old = await server('a1');
    const moved = await server('a1'); // the same agent, on another host
    const broker = new HttpBroker({ caller: 'engine-reload', agents: old.configs() });
    const engine = await engineOver(broker, [one, twoStages], FAST);
    expect((await run(engine, 'a1')).status).toBe('succeeded');
    expect(old.agent('a1').requests(PATHS.start)).toBe(1);

    expect(broker.setAgents(moved.configs())).toEqual({
      added: [],
      retired: [],
      moved: ['a1'],
      secrets: [],
    });
    expect((await run(engine, 'a1')).status).toBe('succeeded');
    expect(moved.agent('a1').requests(PATHS.start)).toBe(1);
    expect(old.agent('a1').requests(PATHS.start)).toBe(1);
    expect(broker.agent('a1').info?.address).toBe(moved.url('a1'));

    // Refused whole, naming the field, the secret never shown; the agents in force are kept.
    const [config] = moved.configs();
    const bad = [
      { agents: [], says: 'agents: at least one agent is needed' },
      { agents: [config, config], says: 'agents.1.id: duplicate agent id "a1"' },
      {
        agents: [{ ...config!, secret: 'short-secret' }],
        says: 'agents.0.secret: must be at least 16',
      },
      { agents: [{ ...config!, url: 'ftp://x' }], says: 'agents.0.url: must be an http' },
    ];
    for (const { agents, says } of bad) {
      const error = await rejection(
        Promise.resolve().then(() => broker.setAgents(agents as never)),
      );
      expect(error).toMatchObject({ code: 'INVALID_OPTIONS' });
      expect(String(error)).toContain(says);
      expect(String(error)).not.toContain('short-secret');
    }
    expect(await broker.agentIds()).toEqual(['a1']);
    expect((await run(engine, 'a1')).status).toBe('succeeded');
    expect(moved.agent('a1').requests(PATHS.start)).toBe(2);
  });

  it('a call in flight when the agent moves ends at the old URL: it is not cut and made again at the new one', async () => {
    const old = await server('a1');
    const moved = await server('a1');
    const broker = new HttpBroker({ caller: 'engine-reload', agents: old.configs() });
    const engine = await engineOver(broker, [one, twoStages], FAST);
    old.agent('a1').fault({ kind: 'delay', ms: 300, paths: [PATHS.start], times: 1 });
    await engine.submit(one, { agent: 'a1', verb: 'hold' });
    await until(() => old.agent('a1').requests(PATHS.start) === 1, 5_000, 'the start sent');
    expect(broker.setAgents(moved.configs()).moved).toEqual(['a1']);
    // The start was answered where it was sent: the task runs there, and was not sent again.
    await until(() => old.agent('a1').running().length === 1, 5_000, 'the task on the old URL');
    expect(moved.agent('a1').requests(PATHS.start)).toBe(0);
  });
});

describePg('retired agents across a rejoin (PostgreSQL)', () => {
  it('a new generation keeps following a retired agent, but not one forgotten since', async () => {
    const s = await FakeAgentServer.start({ agents: ['a1', 'a2'] });
    onCleanup(() => s.close());
    const fresh = freshSchema('coco_rtr');
    onCleanup(() => fresh.drop());
    const url = new URL(PG_URL);
    url.searchParams.set('schema', fresh.schema);
    // A short lease, so that a fenced node finds out quickly.
    url.searchParams.set('leaseMs', '3000');
    const node = await startNode({
      config: parseConfig(
        {
          store: url.toString(),
          nodeId: 'rtr',
          api: { port: 0 },
          tuning: { agentCallTimeoutMs: 1_000 },
          agents: s.configs(),
        },
        process.cwd(),
      ),
      commands: [one],
      logger: { debug() {}, info() {}, warn() {}, error() {} },
      listen: false,
    });
    onCleanup(() => node.close());
    const rejoin = async (nodeId: string): Promise<void> => {
      const halted = new Promise((resolve) => node.engine.on('halted', resolve));
      await adminQuery(
        `UPDATE "${fresh.schema}".coco_nodes SET fenced = true WHERE node_id = '${nodeId}'`,
      );
      await halted;
      await node.rejoined();
    };
    expect(node.setAgents(s.configs().filter((a) => a.id === 'a1')).retired).toEqual(['a2']);
    const retired = await node.engine.retiredAgents();
    expect([...retired.keys()]).toEqual(['a2']);

    // The next generation still holds a2, retired since the same time (it took the rejoin's
    // time: a tree submitted in between would have started there), drained: a new tree's task
    // there fails unsent; forgetting it drops it there.
    await rejoin('rtr');
    expect(node.engine.nodeId).toBe('rtr-r1');
    expect(await node.engine.configuredAgents()).toEqual(['a1']);
    expect(await node.engine.retiredAgents()).toEqual(retired);
    const { id } = await node.engine.submit(one, { agent: 'a2', verb: 'noop' });
    expect((await node.engine.waitFor(id)).error?.code).toBe('AGENT_RETIRED');
    expect(s.agent('a2').requests(PATHS.start)).toBe(0);
    await node.engine.forgetAgent('a2');
    // The one after does not bring it back.
    await rejoin('rtr-r1');
    expect(node.engine.nodeId).toBe('rtr-r2');
    expect(await rejection(node.engine.forgetAgent('a2'))).toMatchObject({ code: 'NOT_FOUND' });
  }, 60_000);
});
