/**
 * The HTTP broker's bounds on its own use of the network: call slots (`maxConcurrentCalls`), a
 * connection per long-poll plus per slot, local exhaustion (`EMFILE`, no slot within the budget)
 * not blamed on the agent, and a busy event loop not turned into timeouts.
 */
import { describe, expect, it } from 'vitest';
import { HttpBroker } from '../../src/brokers/http/broker.js';
import type { HttpFetch } from '../../src/brokers/http/transport.js';
import type { AgentInfo } from '../../src/brokers/port.js';
import { ErrorCode } from '../../src/core/errors.js';
import { PATHS } from '../../src/protocol/agent-v2.js';
import { captureLogger, onCleanup, rejection, setup, until } from './http-setup.js';

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `a${i}`);

describe('HttpBroker bounds', () => {
  it('keeps at most maxConcurrentCalls calls (and connections) open while many agents come up', async () => {
    const agents = ids(40);
    const { server, broker } = await setup(agents, { maxConcurrentCalls: 5 });
    // Every agent answers slowly: without a bound, all 80 calls below are open at once.
    for (const id of agents)
      server.agent(id).faults.push({ kind: 'delay', ms: 30, paths: [PATHS.health, PATHS.list] });
    const infos: AgentInfo[] = [];
    broker.onAgentInfo((info) => infos.push(info)); // a health check of every agent at once
    const lists = await Promise.all(agents.map((id) => broker.listTasks(id, '')));
    await until(() => infos.filter((i) => i.up).length === agents.length, 5_000, 'all up');
    await until(() => broker.callSlots().inFlight === 0, 5_000, 'the health checks done');
    expect(lists).toHaveLength(agents.length);
    expect(server.traffic.peakCalls).toBeGreaterThan(1);
    expect(server.traffic.peakCalls).toBeLessThanOrEqual(5);
    expect(server.traffic.peakConnections).toBeLessThanOrEqual(5);
    expect(broker.callSlots()).toMatchObject({ limit: 5, peak: 5, inFlight: 0, waiting: 0 });
  });

  it('brings long-polls up through the slots: one connection per agent plus one per slot', async () => {
    const agents = ids(40);
    const { server, broker } = await setup(agents, {
      maxConcurrentCalls: 4,
      longPoll: { waitMs: 20_000 },
    });
    for (const id of agents) {
      server.agent(id).faults.push({ kind: 'delay', ms: 30, paths: [PATHS.health] });
      server.agent(id).faults.push({ kind: 'delay', ms: 30, paths: [PATHS.changes], times: 1 });
    }
    broker.onActivity(() => undefined); // health checks and long-polls of every agent
    await until(
      () => agents.every((id) => server.agent(id).requests(PATHS.changes) >= 2),
      5_000,
      'every long-poll held',
    );
    await until(() => agents.every((id) => broker.agent(id).info?.up === true), 5_000, 'all up');
    expect(server.traffic.peakCalls).toBeLessThanOrEqual(4);
    expect(server.traffic.peakConnections).toBeLessThanOrEqual(agents.length + 4);
    // The held requests take no slot.
    await until(() => broker.callSlots().inFlight === 0, 5_000, 'the health checks done');
    expect(await broker.listTasks('a0', '')).toEqual([]);
  });

  it('a call that waits its whole budget for a slot fails BROKER_SATURATED; the agent is not blamed', async () => {
    // A transport whose first request never ends (nor heeds its abort) holds the only slot.
    let sent = 0;
    const fetch: HttpFetch = () => {
      sent++;
      return new Promise(() => undefined);
    };
    const logger = captureLogger();
    const broker = new HttpBroker({
      caller: 'engine-test',
      agents: [
        { id: 'a1', url: 'http://127.0.0.1:9/a1', secret: 'a-secret-of-16-characters' },
        { id: 'a2', url: 'http://127.0.0.1:9/a2', secret: 'a-secret-of-16-characters' },
      ],
      longPoll: false,
      maxConcurrentCalls: 1,
      timeoutMs: 200,
      logger,
      fetch,
    });
    onCleanup(() => broker.close());
    const infos: AgentInfo[] = [];
    void broker.listTasks('a1', '').catch(() => undefined);
    await until(() => sent === 1, 1_000, 'the first request');
    broker.onAgentInfo((info) => infos.push(info));
    const error = await rejection(broker.listTasks('a2', ''));
    expect(error).toMatchObject({ code: ErrorCode.BrokerSaturated, retryable: true });
    expect(sent).toBe(1); // a2 was never asked
    expect(broker.agent('a2').circuit).toBe('closed');
    expect(infos.filter((i) => i.agentId === 'a2' && !i.up)).toEqual([]);
    expect(broker.callSlots()).toMatchObject({ refused: expect.any(Number) as number });
    expect(broker.callSlots().refused).toBeGreaterThanOrEqual(1);
  });

  it('a call whose wait left too little budget is refused, not sent to time out on the wire', async () => {
    // The only slot is held 850 ms by a slow answer; a call queued behind it (budget 1,000 ms)
    // would get ~150 ms: under a quarter of its budget, so it is not sent.
    const sent: string[] = [];
    const fetch: HttpFetch = (url) => {
      sent.push(url);
      return new Promise((resolve) =>
        setTimeout(
          () =>
            resolve({ status: 200, text: () => Promise.resolve('{"bootId":"b","taskIds":[]}') }),
          850,
        ),
      );
    };
    const broker = new HttpBroker({
      caller: 'engine-test',
      agents: [
        { id: 'a1', url: 'http://127.0.0.1:9/a1', secret: 'a-secret-of-16-characters' },
        { id: 'a2', url: 'http://127.0.0.1:9/a2', secret: 'a-secret-of-16-characters' },
      ],
      longPoll: false,
      maxConcurrentCalls: 1,
      timeoutMs: 1_000,
      logger: captureLogger(),
      fetch,
    });
    onCleanup(() => broker.close());
    broker.onAgentInfo(() => undefined); // the health checks at first use, out of the way
    await until(() => broker.callSlots().inFlight + broker.callSlots().waiting === 0, 3_000);
    sent.length = 0;
    const first = broker.listTasks('a1', '');
    const second = rejection(broker.listTasks('a2', ''));
    expect(await first).toEqual([]);
    expect(await second).toMatchObject({ code: ErrorCode.BrokerSaturated });
    expect(sent.filter((url) => url.includes('/a2/'))).toEqual([]); // a2 was not asked
    expect(broker.agent('a2').circuit).toBe('closed');
  });

  it('EMFILE fails BROKER_SATURATED, logged once, without opening the circuit or marking the agent down', async () => {
    const fetch: HttpFetch = () =>
      Promise.reject(Object.assign(new Error('connect EMFILE'), { code: 'EMFILE' }));
    const logger = captureLogger();
    const broker = new HttpBroker({
      caller: 'engine-test',
      agents: [{ id: 'a1', url: 'http://127.0.0.1:9', secret: 'a-secret-of-16-characters' }],
      longPoll: false,
      circuit: { failureThreshold: 2 },
      logger,
      fetch,
    });
    onCleanup(() => broker.close());
    const infos: AgentInfo[] = [];
    broker.onAgentInfo((info) => infos.push(info));
    for (let i = 0; i < 5; i++) {
      const error = await rejection(broker.listTasks('a1', ''));
      expect(error).toMatchObject({ code: ErrorCode.BrokerSaturated });
      expect(error.message).toContain('ulimit -n');
    }
    expect(broker.agent('a1').circuit).toBe('closed');
    expect(broker.agent('a1').requests.retries).toBe(0);
    expect(infos.filter((i) => !i.up)).toEqual([]);
    expect(
      logger.lines.filter((l) => l.level === 'error' && /EMFILE/.test(l.msg ?? '')),
    ).toHaveLength(1);
  });

  it('logs an error at start when `ulimit -n` is below what the broker may need', async () => {
    const { broker, logger } = await setup(['a1'], { maxConcurrentCalls: 1_000_000 });
    await broker.checkHealth('a1');
    const line = logger.lines.find((l) => l.level === 'error' && /ulimit -n/.test(l.msg ?? ''));
    expect(line?.obj).toMatchObject({
      code: ErrorCode.BrokerSaturated,
      maxConcurrentCalls: 1_000_000,
    });
  });

  it('a request whose timer fires late behind a blocked event loop gets its answer, not a timeout', async () => {
    const { broker } = await setup(['a1'], { timeoutMs: 150, retries: 0 });
    await broker.listTasks('a1', ''); // a warm connection
    const call = broker.listTasks('a1', '');
    // The loop is blocked past the budget right after the request was handed to the socket.
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        const until = performance.now() + 400;
        while (performance.now() < until);
        resolve();
      }),
    );
    expect(await call).toEqual([]);
    expect(broker.agent('a1').requests.list).toBe(2);
  });
});

describe('HttpBroker under congestion', () => {
  it('serves the newest waiting calls first once more wait than there are slots', async () => {
    const { CallGate } = await import('../../src/brokers/http/gate.js');
    const gate = new CallGate(1);
    const signal = new AbortController().signal;
    const aborted = (): never => {
      throw new Error('aborted');
    };
    const what = { agentId: 'a', op: 'status' };
    const first = await gate.acquire(1_000, signal, what, aborted);
    const order: number[] = [];
    const waits = [1, 2, 3].map((n) =>
      gate.acquire(1_000, signal, what, aborted).then((release) => {
        order.push(n);
        release();
      }),
    );
    first();
    await Promise.all(waits);
    // Three waited for one slot: the newest first while more than one waited.
    expect(order).toEqual([3, 2, 1]);
    // As many waiting as there are slots (or fewer): first come first served.
    const two = new CallGate(2);
    const held = [
      await two.acquire(1_000, signal, what, aborted),
      await two.acquire(1_000, signal, what, aborted),
    ];
    const fifo: number[] = [];
    const queued = [1, 2].map((n) =>
      two.acquire(1_000, signal, what, aborted).then((release) => {
        fifo.push(n);
        release();
      }),
    );
    for (const release of held) release();
    await Promise.all(queued);
    expect(fifo).toEqual([1, 2]);
  });

  it('puts off the status refresh while calls wait for a slot, answering from the long-poll', async () => {
    const { server, broker } = await setup(['a1', 'a2'], {
      maxConcurrentCalls: 1,
      longPoll: { waitMs: 5_000, statusRefreshMs: 100 },
    });
    broker.onActivity(() => undefined);
    await broker.startTasks('a1', [{ taskId: 't0', verb: 'hold', args: null }]);
    const a1 = server.agent('a1');
    // The second request of a1's long-poll is held: the first, with t0, was answered.
    await until(() => a1.requests(PATHS.changes) >= 2, 2_000, 'the long-poll held');
    expect(await broker.getStatuses('a1', ['t0'])).toMatchObject([{ state: 'running' }]);
    expect(a1.requests(PATHS.status)).toBe(1);
    // Congestion: a2 holds the only slot, a second call waits for it.
    server.agent('a2').faults.push({ kind: 'hang', paths: [PATHS.list] });
    const held = broker.listTasks('a2', '').catch(() => undefined);
    const waiting = broker.listTasks('a2', '').catch(() => undefined);
    await until(() => broker.callSlots().waiting === 1, 1_000, 'a call waiting');
    await new Promise((r) => setTimeout(r, 150)); // past the refresh time
    expect(await broker.getStatuses('a1', ['t0'])).toMatchObject([{ state: 'running' }]);
    expect(a1.requests(PATHS.status)).toBe(1); // answered from the long-poll's view
    await broker.close();
    await Promise.all([held, waiting]);
  });
});
