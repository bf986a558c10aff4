import { setImmediate as nextMacrotask, setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { inProcessAgents } from '../../../src/brokers/in-process/broker.js';
import { IpcBroker } from '../../../src/brokers/ipc/ipc-broker.js';
import { IpcAgentHost } from '../../../src/brokers/ipc/ipc-host.js';
import type { AgentBroker } from '../../../src/brokers/port.js';
import { CocoError, ErrorCode } from '../../../src/core/errors.js';
import { channelPair, type FakeChannelEnd } from './fixtures/channel-pair.js';
import { rejection } from '../../support/errors.js';

const noop = (taskId: string) => ({ taskId, verb: 'noop', args: { n: taskId } });
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function setup(local: AgentBroker = inProcessAgents(['a', 'b']), timeoutMs = 2_000) {
  const { child, parent } = channelPair();
  const host = new IpcAgentHost(parent, local);
  const broker = new IpcBroker({ channel: child, timeoutMs });
  cleanups.push(
    () => broker.close(),
    () => host.close(),
  );
  return { child, parent, host, broker, local };
}

/** The id of the last call the child sent. */
function lastCallId(child: FakeChannelEnd): number {
  return (child.sent.at(-1) as { id: number }).id;
}

describe('IpcBroker + IpcAgentHost', () => {
  it('forwards every method and returns what the local broker answers', async () => {
    const { broker, host } = setup();
    expect(await broker.agentIds()).toEqual(['a', 'b']);
    expect(
      await broker.startTasks('a', [noop('t1'), { taskId: 't2', verb: 'nope', args: null }]),
    ).toMatchObject([
      { taskId: 't1', accepted: true },
      { taskId: 't2', accepted: false, error: { code: ErrorCode.TaskRejected } },
    ]);
    await broker.startTasks('a', [{ taskId: 't3', verb: 'sleep', args: { ms: 60_000 } }]);
    // `undefined` does not survive the channel's JSON: the host must accept a missing `args`.
    expect(await broker.startTasks('b', [{ taskId: 'u', verb: 'noop', args: undefined }])).toEqual([
      { taskId: 'u', accepted: true },
    ]);
    expect(await broker.getStatuses('a', ['t1', 't3', 'zz'])).toEqual([
      { taskId: 't1', state: 'succeeded', result: { n: 't1' } },
      { taskId: 't3', state: 'running', progress: 0 },
      { taskId: 'zz', state: 'unknown' },
    ]);
    expect((await broker.listTasks('a', 't')).slice().sort()).toEqual(['t1', 't3']);
    await broker.stopTasks('a', ['t3']);
    await broker.clearTasks('a', ['t1', 't3']);
    expect(await broker.listTasks('a', '')).toEqual([]);
    expect(host.calls).toBe(9);
  });

  it('rebuilds errors as CocoErrors, keeping code, details and retryable', async () => {
    const failing: AgentBroker = {
      agentIds: () =>
        Promise.reject(new CocoError('CUSTOM', 'nope', { details: { x: 1 }, retryable: false })),
      startTasks: () => Promise.reject(new Error('plain')),
      getStatuses: () => Promise.resolve([]),
      stopTasks: () => Promise.resolve(),
      clearTasks: () => Promise.resolve(),
      listTasks: () => Promise.resolve([]),
    };
    const { broker } = setup(failing);
    const custom = await rejection(broker.agentIds());
    expect(custom).toMatchObject({
      code: 'CUSTOM',
      plainMessage: 'nope',
      details: { x: 1 },
      retryable: false,
    });
    const plain = await rejection(broker.startTasks('a', []));
    expect(plain).toMatchObject({ code: ErrorCode.AgentUnavailable, plainMessage: 'plain' });
    const unknownAgent = await rejection(setup().broker.getStatuses('nobody', ['t']));
    expect(unknownAgent).toMatchObject({ code: ErrorCode.AgentUnknown, retryable: false });
    expect(unknownAgent.message).toContain('"nobody"');
  });

  it('forwards activity notifications', async () => {
    const { broker } = setup();
    const seen: string[] = [];
    broker.onActivity((id) => seen.push(id));
    await broker.startTasks('b', [{ taskId: 'e', verb: 'echo', args: null }]);
    for (let i = 0; i < 5 && seen.length === 0; i++) await sleep(5);
    expect(seen).toEqual(['b']);
  });

  it('times calls out, and ignores their late replies', async () => {
    const { broker, local } = setup(undefined, 50);
    const agent = (local as ReturnType<typeof inProcessAgents>).agent('a');
    agent.faults.hang();
    const error = await rejection(broker.getStatuses('a', ['t1']));
    expect(error).toMatchObject({ code: ErrorCode.AgentTimeout, retryable: true });
    expect(broker.pendingCalls).toBe(0);
    agent.faults.resume();
    await sleep(10);
    expect(broker.protocolErrors).toBe(0);
    expect(await broker.agentIds()).toEqual(['a', 'b']);
  });

  it('rejects pending and later calls when the channel disconnects', async () => {
    const { broker, local, child, host } = setup();
    (local as ReturnType<typeof inProcessAgents>).agent('a').faults.hang();
    const pending = rejection(broker.getStatuses('a', ['t1']));
    await nextMacrotask();
    child.disconnect();
    expect(await pending).toMatchObject({ code: ErrorCode.AgentUnavailable, retryable: true });
    expect((await rejection(broker.agentIds())).code).toBe(ErrorCode.AgentUnavailable);
    host.close();
    (local as ReturnType<typeof inProcessAgents>).agent('a').faults.resume();
  });

  it('close fails the calls still waiting', async () => {
    const { broker, child } = setup();
    child.blackhole = true;
    const pending = rejection(broker.agentIds());
    await broker.close();
    expect((await pending).message).toMatch(/closed/);
    expect(broker.pendingCalls).toBe(0);
  });

  it('fails a call whose reply is malformed, has a bad value or the wrong length', async () => {
    const { broker, child } = setup();
    child.blackhole = true;
    const reply = (value: unknown) => ({
      kind: 'coco-agent-reply',
      id: lastCallId(child),
      ok: true,
      value,
    });

    const malformed = rejection(broker.agentIds());
    child.receive({ kind: 'coco-agent-reply', id: lastCallId(child), ok: 'yes' });
    expect((await malformed).code).toBe(ErrorCode.AgentProtocol);

    const badValue = rejection(broker.getStatuses('a', ['t1']));
    child.receive(reply([{ taskId: 't1', state: 'sleeping' }]));
    expect((await badValue).code).toBe(ErrorCode.AgentProtocol);

    const short = rejection(broker.startTasks('a', [noop('t1'), noop('t2')]));
    child.receive(reply([{ taskId: 't1', accepted: true }]));
    expect((await short).message).toMatch(/1 items in the reply for 2/);

    const badError = rejection(broker.agentIds());
    child.receive({
      kind: 'coco-agent-reply',
      id: lastCallId(child),
      ok: false,
      error: { message: 'no code' },
    });
    expect((await badError).code).toBe(ErrorCode.AgentProtocol);
    expect(broker.protocolErrors).toBe(4);
  });

  it('ignores foreign messages and counts malformed ones of its protocol', async () => {
    const { broker, child } = setup();
    const seen: string[] = [];
    broker.onActivity((id) => seen.push(id));
    for (const message of ['text', null, 42, { kind: 'test-control' }, { no: 'kind' }])
      child.receive(message);
    expect(broker.protocolErrors).toBe(0);
    child.receive({ kind: 'coco-agent-activity', agentId: 7 });
    child.receive({ kind: 'coco-agent-reply', id: 'x', ok: true });
    child.receive({ kind: 'coco-agent-nonsense' });
    child.receive({ kind: 'coco-agent-activity', agentId: 'a' });
    expect(broker.protocolErrors).toBe(3);
    expect(seen).toEqual(['a']);
    expect(await broker.agentIds()).toEqual(['a', 'b']);
  });

  it('the host answers malformed calls with AGENT_PROTOCOL when it can name the call', async () => {
    const { parent, host } = setup();
    parent.receive({ kind: 'coco-agent-call', id: 1, method: 'explode', args: [] });
    parent.receive({ kind: 'coco-agent-call', id: 2, method: 'startTasks', args: [7, []] });
    parent.receive({ kind: 'coco-agent-call', id: 3, method: 'getStatuses', args: ['a', [1]] });
    parent.receive({ kind: 'coco-agent-call', method: 'agentIds', args: [] });
    parent.receive({ kind: 'something-else', id: 4 });
    await sleep(5);
    const replies = parent.sent as { id: number; ok: boolean; error?: { code: string } }[];
    expect(replies.map((r) => [r.id, r.ok, r.error?.code])).toEqual([
      [1, false, ErrorCode.AgentProtocol],
      [2, false, ErrorCode.AgentProtocol],
      [3, false, ErrorCode.AgentProtocol],
    ]);
    expect(host.protocolErrors).toBe(4);
  });

  it('the host fails a call whose value cannot be serialised', async () => {
    const odd: AgentBroker = {
      agentIds: () => Promise.resolve([]),
      startTasks: () => Promise.resolve([]),
      getStatuses: (_agent, ids) =>
        Promise.resolve(
          ids.map((taskId) => ({ taskId, state: 'succeeded' as const, result: 10n })),
        ),
      stopTasks: () => Promise.resolve(),
      clearTasks: () => Promise.resolve(),
      listTasks: () => Promise.resolve([]),
    };
    const { broker } = setup(odd);
    const error = await rejection(broker.getStatuses('a', ['t1']));
    expect(error.code).toBe(ErrorCode.AgentProtocol);
    expect(error.message).toMatch(/could not be sent/);
  });

  it('refuses a timeout Node timers cannot honour', () => {
    const { child } = channelPair();
    expect(() => new IpcBroker({ channel: child, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => new IpcBroker({ channel: child, timeoutMs: Infinity })).toThrow(/timeoutMs/);
  });
});
