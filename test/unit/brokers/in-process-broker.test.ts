import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { InProcessAgent } from '../../../src/brokers/in-process/agent.js';
import { InProcessBroker, inProcessAgents } from '../../../src/brokers/in-process/broker.js';
import type { AgentBroker } from '../../../src/brokers/port.js';
import { CocoError, ErrorCode } from '../../../src/core/errors.js';

const noop = (taskId: string) => ({ taskId, verb: 'noop', args: null });

describe('InProcessBroker', () => {
  it('routes every call to the agent named', async () => {
    const broker: AgentBroker = inProcessAgents(['a', 'b']);
    expect(await broker.agentIds()).toEqual(['a', 'b']);
    await broker.startTasks('a', [noop('t1')]);
    await broker.startTasks('b', [noop('t2')]);
    expect(await broker.getStatuses('a', ['t1', 't2'])).toMatchObject([
      { state: 'succeeded' },
      { state: 'unknown' },
    ]);
    expect(await broker.listTasks('b', 't')).toEqual(['t2']);
    await broker.stopTasks('a', ['t1']);
    await broker.clearTasks('a', ['t1']);
    expect(await broker.listTasks('a', '')).toEqual([]);
  });

  it('rejects (never throws synchronously) calls for an unknown agent, naming it', async () => {
    const broker = inProcessAgents(['a']);
    const pending = broker.startTasks('zz', [noop('t1')]);
    expect(pending).toBeInstanceOf(Promise);
    const error = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CocoError);
    expect(error).toMatchObject({ code: ErrorCode.AgentUnknown, retryable: false });
    expect((error as CocoError).message).toContain('"zz"');
    expect(() => broker.agent('zz')).toThrow(/"zz"/);
  });

  it('removing an agent makes it unreachable while it lives on', async () => {
    const broker = inProcessAgents(['a']);
    await broker.startTasks('a', [{ taskId: 't1', verb: 'sleep', args: { ms: 60_000 } }]);
    const agent = broker.removeAgent('a')!;
    expect(broker.removeAgent('a')).toBeUndefined();
    await expect(broker.getStatuses('a', ['t1'])).rejects.toMatchObject({
      code: ErrorCode.AgentUnavailable,
    });
    // Still configured (a host that is down), so the engine knows it: not AGENT_UNKNOWN.
    expect(await broker.agentIds()).toEqual(['a']);
    expect(agent.runningCount).toBe(1);
    broker.addAgent(agent);
    expect(await broker.getStatuses('a', ['t1'])).toMatchObject([{ state: 'running' }]);
    await broker.stopTasks('a', ['t1']);
  });

  it('refuses two agents with one id', () => {
    const broker = new InProcessBroker([new InProcessAgent({ id: 'a' })]);
    expect(() => broker.addAgent(new InProcessAgent({ id: 'a' }))).toThrow(/already/);
  });

  it('fans in the activity of all agents, and stops relaying removed ones', async () => {
    const broker = inProcessAgents(['a', 'b']);
    const seen: string[] = [];
    const unsubscribe = broker.onActivity((id) => seen.push(id));
    await broker.startTasks('a', [noop('t1'), noop('t2')]);
    await broker.startTasks('b', [noop('t3')]);
    await nextMacrotask();
    expect(seen.sort()).toEqual(['a', 'b']);
    const b = broker.removeAgent('b')!;
    await b.startTasks([noop('t4')]);
    await nextMacrotask();
    expect(seen).toHaveLength(2);
    unsubscribe();
    await broker.startTasks('a', [noop('t5')]);
    await nextMacrotask();
    expect(seen).toHaveLength(2);
  });

  it('close drops activity listeners but keeps routing', async () => {
    const broker = inProcessAgents(['a']);
    const seen: string[] = [];
    broker.onActivity((id) => seen.push(id));
    await broker.close();
    await broker.startTasks('a', [noop('t1')]);
    await nextMacrotask();
    expect(seen).toEqual([]);
    expect(await broker.getStatuses('a', ['t1'])).toHaveLength(1);
  });

  it('inProcessAgents names agents by count and shares the options', async () => {
    const broker = inProcessAgents(2, {
      verbs: { twice: (args) => Number(args) * 2 },
      history: false,
    });
    expect(await broker.agentIds()).toEqual(['agent-1', 'agent-2']);
    expect(broker.agents().map((a) => a.id)).toEqual(['agent-1', 'agent-2']);
    await broker.startTasks('agent-2', [{ taskId: 't', verb: 'twice', args: 21 }]);
    expect(await broker.getStatuses('agent-2', ['t'])).toEqual([
      { taskId: 't', state: 'succeeded', result: 42 },
    ]);
    expect(() => broker.agent('agent-2').taskHistory('t')).toThrow();
  });

  it('passes agent faults through', async () => {
    const broker = inProcessAgents(['a']);
    broker.agent('a').faults.failNextCalls(1);
    await expect(broker.agentIds()).resolves.toEqual(['a']);
    await expect(broker.getStatuses('a', [])).rejects.toMatchObject({
      code: ErrorCode.AgentUnavailable,
    });
  });
});
