import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { InProcessAgent } from '../../../src/brokers/in-process/agent.js';
import { ErrorCode } from '../../../src/core/errors.js';
import { rejection as caught } from '../../support/errors.js';

const noop = (taskId: string) => ({ taskId, verb: 'noop', args: null });

describe('AgentFaults', () => {
  it('failNextCalls fails calls before applying them, then lets them through', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    agent.faults.failNextCalls(2);
    const error = await caught(agent.startTasks([noop('t1')]));
    expect(error.code).toBe(ErrorCode.AgentUnavailable);
    expect(error.retryable).toBe(true);
    await caught(agent.getStatuses(['t1']));
    expect(agent.size).toBe(0);
    await agent.startTasks([noop('t1')]);
    expect(agent.counters()).toMatchObject({
      startCalls: 1,
      starts: 1,
      statusCalls: 0,
      injectedFailures: 2,
    });
  });

  it('failNextCalls can target one method', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    agent.faults.failNextCalls(1, 'getStatuses');
    await agent.startTasks([noop('t1')]);
    await caught(agent.getStatuses(['t1']));
    expect(await agent.getStatuses(['t1'])).toHaveLength(1);
  });

  it('dropNextReplies applies the call but loses its reply', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    agent.faults.dropNextReplies(1, 'startTasks');
    expect((await caught(agent.startTasks([noop('t1')]))).code).toBe(ErrorCode.AgentUnavailable);
    expect(agent.task('t1')?.state).toBe('succeeded');
    await agent.startTasks([noop('t1')]);
    expect(agent.taskHistory('t1')).toMatchObject({ starts: 1, duplicateStarts: 1 });
  });

  it('delayCalls applies at once and answers later', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    agent.faults.delayCalls(60, 'startTasks');
    const began = Date.now();
    const pending = agent.startTasks([noop('t1')]);
    expect(agent.task('t1')?.state).toBe('succeeded');
    await pending;
    expect(Date.now() - began).toBeGreaterThanOrEqual(55);
    const quick = Date.now();
    await agent.getStatuses(['t1']);
    expect(Date.now() - quick).toBeLessThan(50);
    agent.faults.delayCalls(0, 'startTasks');
    const again = Date.now();
    await agent.startTasks([noop('t2')]);
    expect(Date.now() - again).toBeLessThan(50);
  });

  it('hang holds calls unapplied until resume, then runs them in arrival order', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    agent.faults.hang();
    const order: string[] = [];
    const first = agent.startTasks([noop('t1')]).then(() => order.push('start'));
    const second = agent.getStatuses(['t1']).then((reports) => order.push(reports[0]!.state));
    await sleep(20);
    expect(agent.faults.heldCalls).toBe(2);
    expect(agent.size).toBe(0);
    expect(order).toEqual([]);
    agent.faults.resume();
    await Promise.all([first, second]);
    expect(order).toEqual(['start', 'succeeded']);
    expect(agent.faults.heldCalls).toBe(0);
  });

  it('hang can target one method', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    agent.faults.hang('getStatuses');
    await agent.startTasks([noop('t1')]);
    let answered = false;
    const statuses = agent.getStatuses(['t1']).then(() => (answered = true));
    await sleep(10);
    expect(answered).toBe(false);
    agent.faults.resume();
    await statuses;
    expect(answered).toBe(true);
  });

  it('composes: a held call meets an armed failure when released', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    agent.faults.hang().failNextCalls(1);
    const first = caught(agent.startTasks([noop('t1')]));
    const second = agent.startTasks([noop('t2')]);
    agent.faults.resume();
    expect((await first).code).toBe(ErrorCode.AgentUnavailable);
    expect(await second).toEqual([{ taskId: 't2', accepted: true }]);
    expect(agent.task('t1')).toBeUndefined();
  });

  it('consumes counted rules in the order they were armed', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    agent.faults.failNextCalls(1, 'getStatuses').failNextCalls(1);
    await agent.startTasks([noop('t1')]).catch(() => 'failed by the second rule');
    expect(agent.counters().starts).toBe(0);
    await caught(agent.getStatuses([]));
    await agent.getStatuses([]);
    expect(agent.counters().injectedFailures).toBe(2);
  });

  it('rejectNextStarts refuses new tasks (not duplicates)', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    await agent.startTasks([noop('t0')]);
    agent.faults.rejectNextStarts(1);
    const results = await agent.startTasks([noop('t0'), noop('t1'), noop('t2')]);
    expect(results).toEqual([
      { taskId: 't0', accepted: true },
      {
        taskId: 't1',
        accepted: false,
        error: {
          code: ErrorCode.TaskRejected,
          message: 'start refused (injected)',
          details: { taskId: 't1' },
        },
      },
      { taskId: 't2', accepted: true },
    ]);
    expect(agent.counters()).toMatchObject({ rejectedStarts: 1, duplicateStarts: 1 });
  });

  it('vanish forgets a task silently and stops its verb', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    const seen: string[] = [];
    agent.onActivity((id) => seen.push(id));
    await agent.startTasks([{ taskId: 't1', verb: 'sleep', args: { ms: 60_000 } }]);
    expect(agent.faults.vanish('t1')).toBe(true);
    expect(agent.faults.vanish('t1')).toBe(false);
    expect(await agent.getStatuses(['t1'])).toEqual([{ taskId: 't1', state: 'unknown' }]);
    expect(agent.taskHistory('t1')).toMatchObject({
      starts: 1,
      vanished: true,
      endedState: undefined,
    });
    expect(agent.runningCount).toBe(0);
    await sleep(5);
    expect(seen).toEqual([]);
  });

  it('forgetAll forgets every task, as after a host restart', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    await agent.startTasks([noop('t1'), { taskId: 't2', verb: 'sleep', args: { ms: 60_000 } }]);
    expect(agent.faults.forgetAll()).toBe(2);
    expect(agent.size).toBe(0);
    expect(agent.runningCount).toBe(0);
  });

  it('reset disarms everything and releases held calls', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    agent.faults.hang().failNextCalls(5).dropNextReplies(5).delayCalls(10_000).rejectNextStarts(5);
    const held = agent.startTasks([noop('t1')]);
    agent.faults.reset();
    expect(await held).toEqual([{ taskId: 't1', accepted: true }]);
    expect(await agent.startTasks([noop('t2')])).toEqual([{ taskId: 't2', accepted: true }]);
  });
});
