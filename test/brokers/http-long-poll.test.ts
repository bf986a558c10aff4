import { describe, expect, it, vi } from 'vitest';
import type { AgentInfo, TaskStatusReport } from '../../src/brokers/port.js';
import { systemClock } from '../../src/core/clock.js';
import { PATHS } from '../../src/protocol/agent-v2.js';
import { setup, tasks, until } from './http-setup.js';

interface Push {
  readonly agentId: string;
  readonly reports: readonly TaskStatusReport[];
  readonly at: number;
}

function recordPushes(broker: {
  onActivity(l: (a: string, r?: readonly TaskStatusReport[]) => void): () => void;
}): {
  pushes: Push[];
  off: () => void;
} {
  const pushes: Push[] = [];
  const off = broker.onActivity((agentId, reports) =>
    pushes.push({
      agentId,
      reports: reports ?? [],
      at: performance.timeOrigin + performance.now(),
    }),
  );
  return { pushes, off };
}

const ended = (pushes: readonly Push[], taskId: string): Push | undefined =>
  pushes.find((p) => p.reports.some((r) => r.taskId === taskId && r.state !== 'running'));

describe('HttpBroker long-poll', () => {
  it('pushes a task end to onActivity within milliseconds of the agent ending it', async () => {
    const { server, broker } = await setup(['a1', 'a2'], { longPoll: { waitMs: 5_000 } });
    const { pushes } = recordPushes(broker);
    await broker.startTasks('a1', tasks(20));
    await broker.startTasks('a2', tasks(1, 'hold', 'other-'));
    const a1 = server.agent('a1');
    // The start itself is pushed (running); after it the loop waits on the agent.
    await until(
      () => pushes.some((p) => p.reports.some((r) => r.taskId === 't19')),
      5_000,
      'the starts',
    );
    const endedAt = new Map<string, number>();
    a1.onEnded = (taskId, at) => endedAt.set(taskId, at);
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const id = `t${i}`;
      // Let the loop go back to waiting, as in a real run where ends are spread out.
      await new Promise((r) => setTimeout(r, 10));
      a1.finish(id, { result: { i } });
      await until(() => ended(pushes, id) !== undefined, 2_000, `the push of ${id}`);
      const push = ended(pushes, id)!;
      expect(push.agentId).toBe('a1');
      expect(push.reports.find((r) => r.taskId === id)).toEqual({
        taskId: id,
        state: 'succeeded',
        result: { i },
      });
      latencies.push(push.at - endedAt.get(id)!);
    }
    latencies.sort((x, y) => x - y);
    const p50 = latencies[latencies.length >> 1]!;
    console.log(
      `long-poll: agent end -> onActivity p50 ${p50.toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms`,
    );
    // Measured on the 2-core dev VM: p50 ~1-2 ms; the bound leaves room for a loaded machine.
    expect(latencies.at(-1)!).toBeLessThan(200);
    // No status poll was needed for any of it; the idle agent's loop just waits.
    expect(a1.requests(PATHS.status)).toBe(0);
    expect(server.agent('a2').requests(PATHS.changes)).toBeLessThanOrEqual(3);
  });

  it('pushes again, after its start returned, a task that ended while its start was in flight', async () => {
    const { broker } = await setup(['a1'], { longPoll: { waitMs: 5_000 } });
    const { pushes } = recordPushes(broker);
    await until(() => broker.agent('a1').requests.changes >= 1, 2_000, 'the loop');
    await new Promise((r) => setTimeout(r, 50));
    let startReturned = 0;
    await broker.startTasks('a1', [{ taskId: 'quick', verb: 'noop', args: 1 }]).then(() => {
      startReturned = performance.timeOrigin + performance.now();
    });
    await until(
      () =>
        pushes.some((p) => p.at >= startReturned && p.reports.some((r) => r.taskId === 'quick')),
      2_000,
      'a push after the start',
    );
  });

  it('answers status polls from the live long-poll, with a real status call every statusRefreshMs', async () => {
    const { server, broker } = await setup(['a1'], {
      longPoll: { waitMs: 5_000, statusRefreshMs: 1_500 },
    });
    const { pushes, off } = recordPushes(broker);
    const a1 = server.agent('a1');
    await broker.startTasks('a1', tasks(5));
    await until(
      () => pushes.some((p) => p.reports.some((r) => r.taskId === 't4')),
      2_000,
      'the starts pushed',
    );
    const ids = tasks(5).map((t) => t.taskId);
    const running = ids.map((taskId) => ({ taskId, state: 'running', progress: 0 }));
    // The first poll is a real call; the next ones, within the refresh time, are not.
    expect(await broker.getStatuses('a1', ids)).toEqual(running);
    expect(a1.requests(PATHS.status)).toBe(1);
    expect(await broker.getStatuses('a1', ids)).toEqual(running);
    a1.finish('t2', { result: 'two' });
    await until(() => ended(pushes, 't2') !== undefined, 2_000, 'the push of t2');
    expect(await broker.getStatuses('a1', ['t2', 't3'])).toEqual([
      { taskId: 't2', state: 'succeeded', result: 'two' },
      { taskId: 't3', state: 'running', progress: 0 },
    ]);
    expect(a1.requests(PATHS.status)).toBe(1);
    expect(broker.agent('a1').statusFromView).toBe(2);
    // A task the long-poll never reported needs a real call.
    expect(await broker.getStatuses('a1', ['t0', 'never'])).toEqual([
      running[0],
      { taskId: 'never', state: 'unknown' },
    ]);
    expect(a1.requests(PATHS.status)).toBe(2);
    // So does a cleared one.
    await broker.clearTasks('a1', ['t2']);
    expect(await broker.getStatuses('a1', ['t2'])).toEqual([{ taskId: 't2', state: 'unknown' }]);
    expect(a1.requests(PATHS.status)).toBe(3);
    // After the refresh time, a real call again.
    await new Promise((r) => setTimeout(r, 1_600));
    await broker.getStatuses('a1', ['t0']);
    expect(a1.requests(PATHS.status)).toBe(4);
    // Without a live long-poll, every poll is a call.
    off();
    await broker.getStatuses('a1', ['t0']);
    await broker.getStatuses('a1', ['t0']);
    expect(a1.requests(PATHS.status)).toBe(6);
  });

  it('spreads the refreshes of many live feeds: at most about statusRefreshesPerSecond over all agents', async () => {
    // The broker's clock stands still but for steps by hand (its timers stay real): the refresh
    // schedule alone.
    const base = Date.now();
    let offset = 0;
    const clock = {
      now: () => base + offset,
      setTimer: (ms: number, fn: () => void) => systemClock.setTimer(ms, fn),
    };
    const ids = ['a1', 'a2', 'a3'];
    const refreshAt = async (perSecond: number): Promise<number> => {
      const { broker } = await setup(ids, {
        clock,
        longPoll: { waitMs: 5_000, statusRefreshMs: 100, statusRefreshesPerSecond: perSecond },
      });
      const { pushes, off } = recordPushes(broker);
      for (const id of ids) await broker.startTasks(id, tasks(1, 'hold', `${id}-`));
      await until(() => pushes.length >= ids.length, 2_000, 'the starts pushed');
      // The next refresh at the least of its jitter, half the interval after a real call.
      const jitter = vi.spyOn(Math, 'random').mockReturnValue(0);
      try {
        offset = 0;
        await broker.getStatuses('a1', ['a1-t0']);
        expect(broker.pushesStatuses('a1')).toBe(true);
        // Step by 10 ms until the refresh is due: how long after the call it came.
        while (broker.pushesStatuses('a1')) offset += 10;
        return offset;
      } finally {
        jitter.mockRestore();
        off();
      }
    };
    // Three live feeds at 1 refresh a second: 4 s apart (4/3 × 3 s, the jitter's mean ¾ of it),
    // the first 2 s after the call; unbounded in effect, statusRefreshMs's 100 ms (50 ms first).
    expect(await refreshAt(1)).toBe(2_000);
    expect(await refreshAt(1_000)).toBe(50);
  });

  it("says it pushes an agent's statuses while its feed is live and the refresh is not due; a call for a task the view lacks does not put the refresh off", async () => {
    const { broker } = await setup(['a1'], {
      longPoll: { waitMs: 5_000, statusRefreshMs: 1_500 },
    });
    const { pushes, off } = recordPushes(broker);
    await broker.startTasks('a1', tasks(3));
    await until(
      () => pushes.some((p) => p.reports.some((r) => r.taskId === 't2')),
      2_000,
      'the starts pushed',
    );
    // No real status call yet: the engine must ask about every task once.
    expect(broker.pushesStatuses('a1')).toBe(false);
    const ids = tasks(3).map((t) => t.taskId);
    // The refresh comes 0.75-1.5 s after a real call (jitter): at 1.5 s, with Math.random at 1.
    const jitter = vi.spyOn(Math, 'random').mockReturnValue(1);
    try {
      const t0 = performance.now();
      await broker.getStatuses('a1', ids);
      expect(broker.pushesStatuses('a1')).toBe(true);
      // The engine asks about a task the view has not seen (a real call) 0.3 s later: the
      // refresh stays due at 1.5 s after the first call (it was put off to 1.8 s before).
      await new Promise((r) => setTimeout(r, 300));
      await broker.getStatuses('a1', ['never']);
      expect(broker.pushesStatuses('a1')).toBe(true);
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + 1_600 - performance.now())));
      expect(broker.pushesStatuses('a1')).toBe(false);
      await broker.getStatuses('a1', ids);
      expect(broker.pushesStatuses('a1')).toBe(true);
    } finally {
      jitter.mockRestore();
    }
    // Without a live feed it never does.
    off();
    await until(() => !broker.pushesStatuses('a1'), 2_000, 'the feed stopped');
    expect(broker.pushesStatuses('unknown-agent')).toBe(false);
  });

  it('stops its loops when the last listener unsubscribes, and on close', async () => {
    const { server, broker } = await setup(['a1'], { longPoll: { waitMs: 100 } });
    const { off } = recordPushes(broker);
    await until(() => server.agent('a1').requests(PATHS.changes) >= 3, 2_000, 'a few long-polls');
    off();
    await new Promise((r) => setTimeout(r, 50));
    const after = server.agent('a1').requests(PATHS.changes);
    await new Promise((r) => setTimeout(r, 300));
    expect(server.agent('a1').requests(PATHS.changes)).toBe(after);
    recordPushes(broker);
    await until(() => server.agent('a1').requests(PATHS.changes) > after, 2_000, 'the loop again');
    await broker.close();
    // A request written just before the close may reach the agent just after it (as after off()).
    await new Promise((r) => setTimeout(r, 50));
    const closed = server.agent('a1').requests(PATHS.changes);
    await new Promise((r) => setTimeout(r, 300));
    expect(server.agent('a1').requests(PATHS.changes)).toBe(closed);
  });

  it('backs off on errors (the circuit applies), then recovers and delivers', async () => {
    const { server, broker } = await setup(['a1'], {
      longPoll: { waitMs: 2_000, backoffBaseMs: 50, backoffMaxMs: 200 },
      circuit: { failureThreshold: 3, coolDownMs: 300 },
    });
    const a1 = server.agent('a1');
    a1.fault({ kind: 'status', status: 500, paths: [PATHS.changes] });
    const { pushes } = recordPushes(broker);
    await new Promise((r) => setTimeout(r, 800));
    // Without back-off this would be hundreds; with it a handful, and none while the circuit is open.
    const failed = a1.requests(PATHS.changes);
    expect(failed).toBeGreaterThanOrEqual(3);
    expect(failed).toBeLessThanOrEqual(8);
    a1.heal();
    // The loop's next request after the cool-down is the probe that closes the circuit.
    await until(() => broker.agent('a1').circuit === 'closed', 3_000, 'the circuit to close');
    await broker.startTasks('a1', tasks(1));
    a1.finish('t0');
    await until(() => ended(pushes, 't0') !== undefined, 5_000, 'the push after recovery');
  });

  it('reports a new boot id with the previous one (a restart), seen by the long-poll', async () => {
    const { server, broker } = await setup(['a1'], { longPoll: { waitMs: 5_000 } });
    const infos: AgentInfo[] = [];
    broker.onAgentInfo((info) => infos.push(info));
    const { pushes } = recordPushes(broker);
    const a1 = server.agent('a1');
    const first = a1.bootId;
    await until(() => infos.length === 1, 2_000, 'the first info');
    expect(infos[0]).toMatchObject({
      agentId: 'a1',
      up: true,
      bootId: first,
      address: server.url('a1'),
    });
    expect(infos[0]!.previousBootId).toBeUndefined();
    expect(infos[0]!.lastSeenAt).toBeGreaterThan(0);
    await broker.startTasks('a1', tasks(2));
    await until(() => pushes.length > 0, 2_000, 'the first push');
    const second = a1.restart(false);
    // The held long-poll is answered by the new boot: no other call needed.
    await until(() => infos.length === 2, 2_000, 'the restart info');
    expect(infos[1]).toMatchObject({
      agentId: 'a1',
      up: true,
      bootId: second,
      previousBootId: first,
    });
    // Nothing more while the boot stays the same.
    await broker.getStatuses('a1', ['t0']);
    await broker.checkHealth('a1');
    expect(infos).toHaveLength(2);
    // A late subscriber gets the current state.
    const late: AgentInfo[] = [];
    broker.onAgentInfo((info) => late.push(info));
    await until(() => late.length === 1, 1_000, 'the replay');
    expect(late[0]!.bootId).toBe(second);
  });

  it('sees a restart through any call when long-polling is off', async () => {
    const { server, broker } = await setup(['a1']);
    const infos: AgentInfo[] = [];
    broker.onAgentInfo((info) => infos.push(info));
    await until(() => infos.length === 1, 2_000, 'the first info');
    const first = server.agent('a1').bootId;
    const second = server.agent('a1').restart();
    await broker.listTasks('a1', '');
    expect(infos[1]).toMatchObject({ bootId: second, previousBootId: first, up: true });
  });
});
