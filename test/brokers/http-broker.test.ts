import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { AGENT_UNAUTHORIZED, HttpBroker } from '../../src/brokers/http/broker.js';
import type { AgentInfo } from '../../src/brokers/port.js';
import { ErrorCode, ValidationError } from '../../src/core/errors.js';
import { MAX_BATCH, PATHS } from '../../src/protocol/agent-v2.js';
import { FakeAgentServer, secretOf } from './fake-agent.js';
import { captureLogger, onCleanup, rejection, setup, tasks, until } from './http-setup.js';

/** A broker over `agents` (long-poll off), closed after the test, and the infos it reports. */
function brokerOf(agents: HttpBrokerAgents): { broker: HttpBroker; infos: AgentInfo[] } {
  const broker = new HttpBroker({
    caller: 'engine-test',
    agents,
    longPoll: false,
    logger: captureLogger(),
  });
  onCleanup(() => broker.close());
  const infos: AgentInfo[] = [];
  broker.onAgentInfo((info) => infos.push(info));
  return { broker, infos };
}
type HttpBrokerAgents = ConstructorParameters<typeof HttpBroker>[0]['agents'];

describe('HttpBroker: the port over real HTTP', () => {
  it('answers every port call from the agent', async () => {
    const { server, broker } = await setup(['a1', 'a2']);
    expect(await broker.agentIds()).toEqual(['a1', 'a2']);
    expect(
      await broker.startTasks('a1', [
        { taskId: 'p-1', verb: 'noop', args: { n: 1 } },
        { taskId: 'p-2', verb: 'hold', args: null },
        { taskId: 'p-3', verb: 'nope', args: undefined },
      ]),
    ).toEqual([
      { taskId: 'p-1', accepted: true },
      { taskId: 'p-2', accepted: true },
      {
        taskId: 'p-3',
        accepted: false,
        error: { code: 'TASK_REJECTED', message: 'unknown verb "nope"' },
      },
    ]);
    // `args: undefined` arrives as null (JSON has no undefined).
    expect(
      await broker.startTasks('a2', [{ taskId: 'q-1', verb: 'hold', args: undefined }]),
    ).toEqual([{ taskId: 'q-1', accepted: true }]);
    expect(server.agent('a2').tasks.get('q-1')?.args).toBeNull();
    expect(await broker.getStatuses('a1', ['p-1', 'p-2', 'zz'])).toEqual([
      { taskId: 'p-1', state: 'succeeded', result: { n: 1 } },
      { taskId: 'p-2', state: 'running', progress: 0 },
      { taskId: 'zz', state: 'unknown' },
    ]);
    expect([...(await broker.listTasks('a1', 'p-'))].sort()).toEqual(['p-1', 'p-2']);
    expect(await broker.listTasks('a1', 'q-')).toEqual([]);
    await broker.stopTasks('a1', ['p-2', 'unknown-id']);
    expect(await broker.getStatuses('a1', ['p-2'])).toMatchObject([
      { taskId: 'p-2', state: 'cancelled' },
    ]);
    await broker.clearTasks('a1', ['p-1', 'p-2']);
    expect(await broker.listTasks('a1', '')).toEqual([]);
    // Empty lists need no request.
    expect(await broker.getStatuses('a1', [])).toEqual([]);
    await broker.stopTasks('a1', []);
    const a1 = server.agent('a1');
    expect(
      [PATHS.start, PATHS.status, PATHS.list, PATHS.stop, PATHS.clear].map((p) => a1.requests(p)),
    ).toEqual([1, 2, 3, 1, 1]);
  });

  it('passes single-use refusals through: a start after a stop or a clear of its id is refused', async () => {
    const { server, broker } = await setup(['a1']);
    await broker.startTasks('a1', [{ taskId: 'ran', verb: 'noop', args: null }]);
    await broker.clearTasks('a1', ['ran']);
    await broker.stopTasks('a1', ['late']);
    expect(await broker.getStatuses('a1', ['late', 'ran'])).toMatchObject([
      { taskId: 'late', state: 'cancelled', error: { code: ErrorCode.Cancelled } },
      { taskId: 'ran', state: 'unknown' },
    ]);
    const results = await broker.startTasks('a1', [
      { taskId: 'late', verb: 'noop', args: null },
      { taskId: 'ran', verb: 'noop', args: null },
    ]);
    expect(results).toMatchObject([
      { taskId: 'late', accepted: false, error: { code: ErrorCode.TaskIdUsed } },
      { taskId: 'ran', accepted: false, error: { code: ErrorCode.TaskIdUsed } },
    ]);
    expect(server.agent('a1').tasks.size).toBe(0);
  });

  it('signs every request: an agent with another secret refuses, and the broker neither retries nor hides it', async () => {
    const { server, broker, logger } = await setup(['a1'], { retries: 3 });
    const infos: unknown[] = [];
    broker.onAgentInfo((info) => infos.push(info));
    await until(() => infos.length > 0, 5_000, 'the first health check');
    const a1 = server.agent('a1');
    const before = a1.requests(PATHS.status);
    a1.secret = 'another-secret-0123456789';
    const error = await rejection(broker.getStatuses('a1', ['x']));
    expect(error.code).toBe(AGENT_UNAUTHORIZED);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/unauthorized.*bad signature.*check the secret/);
    expect(a1.requests(PATHS.status) - before).toBe(1); // not retried
    expect(a1.counters.unauthorized).toBe(1);
    expect(logger.lines.some((l) => l.level === 'error' && /secret/.test(l.msg ?? ''))).toBe(true);
    await until(() => infos.length === 2, 1_000, 'the down info');
    expect(infos[1]).toMatchObject({
      agentId: 'a1',
      up: false,
      error: { code: AGENT_UNAUTHORIZED },
    });
    // The circuit stays closed: the agent answers, it is our configuration that is wrong.
    expect(broker.agent('a1').circuit).toBe('closed');
  });

  it('signs for the agent it means: an agent of another id at that URL refuses, even with the right secret', async () => {
    const server = await FakeAgentServer.start({ agents: ['a1'] });
    onCleanup(() => server.close());
    const { broker, infos } = brokerOf([
      { id: 'a9', url: server.url('a1'), secret: secretOf('a1') },
    ]);
    const error = await rejection(broker.getStatuses('a9', ['x']));
    expect(error.code).toBe(AGENT_UNAUTHORIZED);
    expect(error.message).toMatch(
      /for agent "a9"; this is agent "a1".*check the secret and the id/,
    );
    expect(server.agent('a1').counters.statusSizes).toEqual([]);
    await until(() => infos.some((i) => !i.up), 5_000, 'the down info');
  });

  it('sends one request per call per agent however many tasks it carries, and chunks above MAX_BATCH', async () => {
    const { server, broker } = await setup(['a1', 'a2']);
    await broker.startTasks('a1', tasks(2_500));
    await broker.startTasks('a2', tasks(7));
    const a1 = server.agent('a1');
    expect(a1.requests(PATHS.start)).toBe(1);
    const ids = tasks(2_500).map((t) => t.taskId);
    const reports = await broker.getStatuses('a1', ids);
    expect(reports).toHaveLength(2_500);
    expect(reports.every((r, i) => r.taskId === ids[i] && r.state === 'running')).toBe(true);
    expect(a1.requests(PATHS.status)).toBe(1);
    expect(a1.counters.statusSizes).toEqual([2_500]);
    expect(server.agent('a2').requests(PATHS.status)).toBe(0);
    // Above the protocol's batch limit: as few requests as the limit allows.
    const many = Array.from({ length: MAX_BATCH + 5 }, (_, i) => `big-${i}`);
    const big = await broker.getStatuses('a1', many);
    expect(big).toHaveLength(MAX_BATCH + 5);
    expect(a1.counters.statusSizes.slice(1)).toEqual([MAX_BATCH, 5]);
  });

  it('fails a call that gets no answer in time with AGENT_TIMEOUT', async () => {
    const { server, broker } = await setup(['a1'], { timeoutMs: 150 });
    server.agent('a1').fault({ kind: 'hang', paths: [PATHS.status] });
    const began = Date.now();
    const error = await rejection(broker.getStatuses('a1', ['x']));
    expect(error.code).toBe(ErrorCode.AgentTimeout);
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/did not answer status within 150 ms/);
    expect(Date.now() - began).toBeLessThan(2_000);
    expect(server.agent('a1').requests(PATHS.status)).toBe(1); // the budget is spent: no retry
    // A slow answer within the budget is fine.
    server
      .agent('a1')
      .heal()
      .fault({ kind: 'delay', ms: 30, times: 1, paths: [PATHS.status] });
    expect(await broker.getStatuses('a1', ['x'])).toEqual([{ taskId: 'x', state: 'unknown' }]);
  });

  it('retries 5xx and dropped connections with backoff, then fails with AGENT_UNAVAILABLE', async () => {
    const { server, broker } = await setup(['a1'], {
      retries: { max: 2, baseMs: 40, maxMs: 1_000 },
      circuit: { failureThreshold: 100 },
    });
    const a1 = server.agent('a1');
    a1.fault({ kind: 'status', status: 500, paths: [PATHS.status] });
    const began = Date.now();
    const error = await rejection(broker.getStatuses('a1', ['x']));
    const took = Date.now() - began;
    expect(error.code).toBe(ErrorCode.AgentUnavailable);
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/failed status with 500 \(FAKE_FAULT: injected 500\)/);
    expect(error.details).toMatchObject({
      agentId: 'a1',
      status: 500,
      agentError: { code: 'FAKE_FAULT' },
    });
    expect(a1.requests(PATHS.status)).toBe(3); // the call and two retries
    // Backoff of [20, 40] then [40, 80] ms between them.
    expect(took).toBeGreaterThanOrEqual(60);
    // Two failures then recovery: the caller never sees the blips.
    a1.heal()
      .fault({ kind: 'status', status: 503, times: 1, paths: [PATHS.status] })
      .fault({ kind: 'drop', times: 1, paths: [PATHS.status] });
    expect(await broker.getStatuses('a1', ['x'])).toEqual([{ taskId: 'x', state: 'unknown' }]);
    expect(broker.agent('a1').requests.retries).toBe(4);
  });

  it('turns other 4xx into AGENT_PROTOCOL with the agent error, without retries', async () => {
    const { server, broker } = await setup(['a1'], { retries: 3 });
    const a1 = server.agent('a1');
    a1.fault({ kind: 'status', status: 413, times: 1, paths: [PATHS.stop] });
    const error = await rejection(broker.stopTasks('a1', ['x']));
    expect(error.code).toBe(ErrorCode.AgentProtocol);
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/refused stop with 413 \(FAKE_FAULT: injected 413\)/);
    expect(a1.requests(PATHS.stop)).toBe(1);
    // A bad id is refused by the agent's own validation (400).
    const bad = await rejection(broker.getStatuses('a1', ['spaces are not allowed']));
    expect(bad.code).toBe(ErrorCode.AgentProtocol);
    expect(bad.message).toMatch(/400 \(BAD_REQUEST/);
  });

  it('refuses malformed or non-conforming replies with AGENT_PROTOCOL', async () => {
    const { server, broker } = await setup(['a1'], { retries: 3 });
    const a1 = server.agent('a1');
    a1.fault({ kind: 'malformed', times: 1, paths: [PATHS.list] });
    const malformed = await rejection(broker.listTasks('a1', ''));
    expect(malformed.code).toBe(ErrorCode.AgentProtocol);
    expect(malformed.message).toMatch(/malformed JSON/);
    a1.fault({ kind: 'invalid', times: 1, paths: [PATHS.status] });
    const invalid = await rejection(broker.getStatuses('a1', ['x']));
    expect(invalid.code).toBe(ErrorCode.AgentProtocol);
    expect(invalid.message).toMatch(/breaks the protocol: tasks: /);
    expect(a1.requests(PATHS.list) + a1.requests(PATHS.status)).toBe(2); // not retried
  });

  it('refuses an answer that does not match the ids asked', async () => {
    const { server, broker } = await setup(['a1']);
    const a1 = server.agent('a1');
    const original = a1.status.bind(a1);
    a1.status = (body) => original({ taskIds: [...body.taskIds].reverse() });
    const error = await rejection(broker.getStatuses('a1', ['x', 'y']));
    expect(error.code).toBe(ErrorCode.AgentProtocol);
    expect(error.message).toMatch(/out of order: item 0 is about y, not x/);
  });

  it('works the same over the global fetch (an injected transport)', async () => {
    const { server, broker } = await setup(['a1'], {
      fetch: globalThis.fetch,
      timeoutMs: 200,
      retries: { max: 1, baseMs: 10 },
    });
    expect(await broker.startTasks('a1', tasks(3))).toHaveLength(3);
    expect(await broker.getStatuses('a1', ['t0', 'zz'])).toEqual([
      { taskId: 't0', state: 'running', progress: 0 },
      { taskId: 'zz', state: 'unknown' },
    ]);
    const a1 = server.agent('a1');
    a1.fault({ kind: 'status', status: 500, times: 1, paths: [PATHS.list] });
    expect(await broker.listTasks('a1', '')).toHaveLength(3);
    a1.fault({ kind: 'hang', times: 1, paths: [PATHS.stop] });
    expect((await rejection(broker.stopTasks('a1', ['t0']))).code).toBe(ErrorCode.AgentTimeout);
    a1.secret = 'another-secret-0123456789';
    expect((await rejection(broker.clearTasks('a1', ['t0']))).code).toBe(AGENT_UNAUTHORIZED);
  });

  it('fails calls for unknown agents with AGENT_UNKNOWN, and after close with AGENT_UNAVAILABLE', async () => {
    const { broker } = await setup(['a1']);
    const unknown = await rejection(broker.getStatuses('nope', ['x']));
    expect(unknown.code).toBe(ErrorCode.AgentUnknown);
    expect(unknown.details).toMatchObject({ agentId: 'nope', knownAgents: ['a1'] });
    await broker.close();
    const closed = await rejection(broker.getStatuses('a1', ['x']));
    expect(closed.message).toMatch(/closed/);
  });

  it('aborts requests in flight on close', async () => {
    const { server, broker } = await setup(['a1']);
    server.agent('a1').fault({ kind: 'hang', paths: [PATHS.status] });
    const pending = rejection(broker.getStatuses('a1', ['x']));
    await until(() => server.agent('a1').requests(PATHS.status) === 1, 2_000, 'the request');
    await broker.close();
    const error = await pending;
    expect(error.code).toBe(ErrorCode.AgentUnavailable);
    expect(error.message).toMatch(/broker is closed/);
  });

  it('validates its options, naming the bad field and never the secret', () => {
    const base = {
      caller: 'e1',
      agents: [{ id: 'a1', url: 'http://127.0.0.1:1', secret: 'x'.repeat(16) }],
    };
    expect(() => new HttpBroker(base)).not.toThrow();
    const cases: [unknown, RegExp][] = [
      [{ ...base, agents: [{ ...base.agents[0], url: 'ftp://h' }] }, /agents\.0\.url/],
      [
        { ...base, agents: [{ ...base.agents[0], secret: 'short-secret' }] },
        /agents\.0\.secret: must be at least 16/,
      ],
      [
        { ...base, agents: [base.agents[0], base.agents[0]] },
        /agents\.1\.id: duplicate agent id "a1"/,
      ],
      [{ ...base, caller: '' }, /caller/],
      [{ ...base, timeoutMs: 0 }, /timeoutMs/],
      [{ ...base, retries: { max: -1 } }, /retries\.max/],
      [{ ...base, longPoll: { waitMs: 60_000 } }, /longPoll/],
      [{ ...base, circuit: { failureThreshold: 0 } }, /circuit\.failureThreshold/],
      [{ ...base, agents: [] }, /agents: at least one agent/],
      [{ ...base, surprise: 1 }, /surprise|Unrecognized/],
    ];
    for (const [options, message] of cases) {
      let thrown: unknown;
      try {
        new HttpBroker(options as never);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, String(message)).toBeInstanceOf(ValidationError);
      const error = thrown as ValidationError;
      expect(error.code).toBe(ErrorCode.InvalidOptions);
      expect(error.message).toMatch(message);
      expect(error.message).not.toContain('short-secret');
    }
  });
});

describe('HttpBroker: agents of another protocol version', () => {
  it('an agent of protocol 1: AGENT_PROTOCOL naming both versions, from the health check and every call, shown in its state', async () => {
    const server = await FakeAgentServer.start({ agents: ['a1'], protocol: 1 });
    onCleanup(() => server.close());
    const { broker, infos } = brokerOf(server.configs());

    const health = await broker.checkHealth('a1');
    expect(health).toMatchObject({
      agentId: 'a1',
      up: false,
      error: { code: ErrorCode.AgentProtocol },
    });
    const said = health?.error?.message ?? '';
    expect(said).toMatch(/does not serve coco agent protocol 2: GET \/v2\/health answered 404/);
    expect(said).toMatch(/older protocol than 2 \(protocol 1 agents answer so\)/);
    await until(() => infos.some((i) => i.error?.code === ErrorCode.AgentProtocol), 5_000, 'info');

    const call = await rejection(broker.startTasks('a1', tasks(1)));
    expect(call.code).toBe(ErrorCode.AgentProtocol);
    expect(call.retryable).toBe(false);
    expect(call.message).toMatch(/POST \/v2\/tasks\/start answered 404 .*protocol 1/);
    expect(call.details).toMatchObject({ protocol: 2, agentProtocol: null, status: 404 });
    // The agent answered: its circuit stays closed (no retries, no back-off storm).
    expect(broker.agent('a1').circuit).toBe('closed');
    expect(broker.requestCounts().retries).toBe(0);
  });

  it('a newer agent that names its version: the error names both', async () => {
    const newer = createServer((req, res) => {
      res.writeHead(404, { 'content-type': 'application/json', connection: 'close' });
      res.end(
        JSON.stringify({
          error: {
            code: 'PROTOCOL_VERSION',
            message: 'this agent speaks coco agent protocol 3',
            details: { protocol: 3, requested: 2 },
          },
        }),
      );
    });
    await new Promise<void>((resolve) => newer.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise((resolve) => newer.close(resolve)));
    const url = `http://127.0.0.1:${(newer.address() as AddressInfo).port}`;
    const { broker } = brokerOf([{ id: 'a3', url, secret: secretOf('a3') }]);
    const error = await rejection(broker.getStatuses('a3', ['x']));
    expect(error.code).toBe(ErrorCode.AgentProtocol);
    expect(error.message).toMatch(/does not serve coco agent protocol 2.*it speaks protocol 3/);
    expect(error.details).toMatchObject({ protocol: 2, agentProtocol: 3 });
  });
});
