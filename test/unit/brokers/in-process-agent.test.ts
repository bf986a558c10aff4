import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { InProcessAgent } from '../../../src/brokers/in-process/agent.js';
import { rejectStart, type VerbContext } from '../../../src/verbs/model.js';
import { ManualClock } from '../../../src/core/clock.js';
import { CocoError, ErrorCode } from '../../../src/core/errors.js';

const noop = (taskId: string, args: unknown = null) => ({ taskId, verb: 'noop', args });

/** A verb whose end the test controls, remembering its context. */
function controlled() {
  const runs = new Map<
    string,
    {
      ctx: VerbContext;
      resolve: (value: unknown) => void;
      reject: (error: unknown) => void;
    }
  >();
  const verb = (_args: unknown, ctx: VerbContext) =>
    new Promise((resolve, reject) => runs.set(ctx.taskId, { ctx, resolve, reject }));
  return { runs, verb };
}

describe('InProcessAgent', () => {
  it('runs noop synchronously: the task has ended before startTasks answers', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    const results = await agent.startTasks([noop('t1', { x: 1 }), noop('t2')]);
    expect(results).toEqual([
      { taskId: 't1', accepted: true },
      { taskId: 't2', accepted: true },
    ]);
    expect(await agent.getStatuses(['t1', 't2'])).toEqual([
      { taskId: 't1', state: 'succeeded', result: { x: 1 } },
      { taskId: 't2', state: 'succeeded', result: null },
    ]);
  });

  it('reports one status per requested id, in order, with unknown for ids it lacks', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    await agent.startTasks([noop('t1')]);
    const reports = await agent.getStatuses(['x', 't1', 'x', 'y']);
    expect(reports.map((r) => [r.taskId, r.state])).toEqual([
      ['x', 'unknown'],
      ['t1', 'succeeded'],
      ['x', 'unknown'],
      ['y', 'unknown'],
    ]);
    expect(agent.counters()).toMatchObject({ statusCalls: 1, statusTasks: 4 });
  });

  it('refuses an unknown verb, naming it and the known verbs', async () => {
    const agent = new InProcessAgent({ id: 'a', verbs: { custom: () => 1 } });
    const [result] = await agent.startTasks([{ taskId: 't1', verb: 'nope', args: null }]);
    expect(result).toMatchObject({
      taskId: 't1',
      accepted: false,
      error: { code: ErrorCode.TaskRejected },
    });
    const message = result?.accepted === false ? result.error.message : '';
    expect(message).toContain('"nope"');
    expect(message).toContain('custom, echo, fail, noop, sleep');
    expect(agent.size).toBe(0);
    expect(agent.counters()).toMatchObject({ starts: 0, rejectedStarts: 1 });
    expect(await agent.getStatuses(['t1'])).toEqual([{ taskId: 't1', state: 'unknown' }]);
  });

  it('treats a synchronous TASK_REJECTED throw as a refused start', async () => {
    const agent = new InProcessAgent({ id: 'a', builtins: false });
    agent.registerVerb('picky', () => {
      throw rejectStart('bad args');
    });
    const [result] = await agent.startTasks([{ taskId: 't1', verb: 'picky', args: 1 }]);
    expect(result).toEqual({
      taskId: 't1',
      accepted: false,
      error: { code: 'TASK_REJECTED', message: 'bad args' },
    });
    expect(agent.size).toBe(0);
    expect(agent.verbNames()).toEqual(['picky']);
  });

  it('is idempotent per task id, and counts the duplicates', async () => {
    const { runs, verb } = controlled();
    const agent = new InProcessAgent({ id: 'a', verbs: { run: verb } });
    await agent.startTasks([{ taskId: 't1', verb: 'run', args: 1 }]);
    const again = await agent.startTasks([
      { taskId: 't1', verb: 'other', args: 2 },
      { taskId: 't1', verb: 'run', args: 3 },
    ]);
    expect(again).toEqual([
      { taskId: 't1', accepted: true },
      { taskId: 't1', accepted: true },
    ]);
    expect(runs.size).toBe(1);
    expect(agent.task('t1')).toMatchObject({ verb: 'run', args: 1, state: 'running' });
    expect(agent.counters()).toMatchObject({ startCalls: 2, starts: 1, duplicateStarts: 2 });
    expect(agent.taskHistory('t1')).toEqual({
      starts: 1,
      duplicateStarts: 2,
      clears: 0,
      endedState: undefined,
      vanished: false,
    });
  });

  it('ends tasks by their verb: result, CocoError code kept, other throws TASK_FAILED', async () => {
    const agent = new InProcessAgent({
      id: 'a',
      verbs: {
        value: async () => ({ ok: true }),
        undef: () => undefined,
        coco: async () => {
          throw new CocoError('DISK_FULL', 'no space', { details: { free: 0 } });
        },
        plain: () => {
          throw new Error('boom');
        },
        text: () => Promise.reject(new Error('late boom')),
      },
    });
    const ids = ['value', 'undef', 'coco', 'plain', 'text'];
    await agent.startTasks(ids.map((verb) => ({ taskId: verb, verb, args: null })));
    await nextMacrotask();
    expect(await agent.getStatuses(ids)).toEqual([
      { taskId: 'value', state: 'succeeded', result: { ok: true } },
      { taskId: 'undef', state: 'succeeded', result: null },
      {
        taskId: 'coco',
        state: 'failed',
        error: { code: 'DISK_FULL', message: 'no space', details: { free: 0 } },
      },
      { taskId: 'plain', state: 'failed', error: { code: 'TASK_FAILED', message: 'boom' } },
      { taskId: 'text', state: 'failed', error: { code: 'TASK_FAILED', message: 'late boom' } },
    ]);
    expect(agent.taskHistory('coco')?.endedState).toBe('failed');
  });

  it('stops a running task at once as cancelled, even if its verb ignores the signal', async () => {
    const { runs, verb } = controlled();
    const agent = new InProcessAgent({ id: 'a', verbs: { run: verb } });
    await agent.startTasks([{ taskId: 't1', verb: 'run', args: null }, noop('t2')]);
    const signal = runs.get('t1')!.ctx.signal;
    await agent.stopTasks(['t1', 't2', 'unknown']);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(CocoError);
    const cancelled = {
      taskId: 't1',
      state: 'cancelled',
      error: { code: ErrorCode.Cancelled, message: 'task stopped by request' },
    };
    expect(await agent.getStatuses(['t1', 't2'])).toEqual([
      cancelled,
      { taskId: 't2', state: 'succeeded', result: null },
    ]);
    runs.get('t1')!.resolve('too late');
    await nextMacrotask();
    expect(await agent.getStatuses(['t1'])).toEqual([cancelled]);
    expect(agent.counters()).toMatchObject({ stopCalls: 1, stops: 1 });
    expect(agent.runningCount).toBe(0);
  });

  it('gives an aborted signal and calls onStop at once when read after the stop', async () => {
    const { runs, verb } = controlled();
    const agent = new InProcessAgent({ id: 'a', verbs: { run: verb } });
    await agent.startTasks([{ taskId: 't1', verb: 'run', args: null }]);
    await agent.stopTasks(['t1']);
    const ctx = runs.get('t1')!.ctx;
    expect(ctx.signal.aborted).toBe(true);
    let called = 0;
    ctx.onStop(() => called++);
    expect(called).toBe(1);
  });

  it('runs every onStop listener of a task once', async () => {
    const { runs, verb } = controlled();
    const agent = new InProcessAgent({ id: 'a', verbs: { run: verb } });
    await agent.startTasks([{ taskId: 't1', verb: 'run', args: null }]);
    const calls: string[] = [];
    runs.get('t1')!.ctx.onStop(() => calls.push('first'));
    runs.get('t1')!.ctx.onStop(() => calls.push('second'));
    await agent.stopTasks(['t1']);
    await agent.stopTasks(['t1']);
    expect(calls).toEqual(['first', 'second']);
  });

  it('keeps progress within 0..100 and only while running', async () => {
    const { runs, verb } = controlled();
    const agent = new InProcessAgent({ id: 'a', verbs: { run: verb } });
    await agent.startTasks([{ taskId: 't1', verb: 'run', args: null }]);
    const { ctx, resolve } = runs.get('t1')!;
    const progress = async () => (await agent.getStatuses(['t1']))[0]?.progress;
    expect(await progress()).toBe(0);
    ctx.progress(42.5);
    expect(await progress()).toBe(42.5);
    ctx.progress(150);
    expect(await progress()).toBe(100);
    ctx.progress(-3);
    ctx.progress(Number.NaN);
    expect(await progress()).toBe(0);
    resolve(1);
    await nextMacrotask();
    ctx.progress(50);
    expect(await agent.getStatuses(['t1'])).toEqual([
      { taskId: 't1', state: 'succeeded', result: 1 },
    ]);
  });

  it('clears only ended tasks, counting running and unknown ids, and keeps the history', async () => {
    const { runs, verb } = controlled();
    const agent = new InProcessAgent({ id: 'a', verbs: { run: verb } });
    await agent.startTasks([noop('done'), { taskId: 'busy', verb: 'run', args: null }]);
    await agent.clearTasks(['done', 'busy', 'ghost', 'done']);
    expect(agent.counters()).toMatchObject({
      clearCalls: 1,
      clears: 1,
      clearsOfRunning: 1,
      clearsUnknown: 2,
    });
    expect(await agent.getStatuses(['done', 'busy'])).toMatchObject([
      { state: 'unknown' },
      { state: 'running' },
    ]);
    runs.get('busy')!.resolve('ok');
    await nextMacrotask();
    await agent.clearTasks(['busy']);
    expect(agent.size).toBe(0);
    expect(agent.taskHistory('done')).toEqual({
      starts: 1,
      duplicateStarts: 0,
      clears: 1,
      endedState: 'succeeded',
      vanished: false,
    });
    expect(agent.taskHistory('busy')).toMatchObject({
      starts: 1,
      clears: 1,
      endedState: 'succeeded',
    });
    expect(agent.taskHistory('ghost')).toBeUndefined();
    expect(agent.historyIds()).toEqual(['done', 'busy']);
    // A cleared id is used: starting it again is refused (and the history shows no new start).
    const [again] = await agent.startTasks([noop('done')]);
    expect(again).toMatchObject({ accepted: false, error: { code: ErrorCode.TaskIdUsed } });
    expect(agent.taskHistory('done')).toMatchObject({ starts: 1, clears: 1 });
  });

  it('lists held tasks by prefix, running or ended', async () => {
    const { verb } = controlled();
    const agent = new InProcessAgent({ id: 'a', verbs: { run: verb } });
    await agent.startTasks([
      noop('s1-a'),
      { taskId: 's1-b', verb: 'run', args: null },
      noop('s2-a'),
    ]);
    expect((await agent.listTasks('s1-')).sort()).toEqual(['s1-a', 's1-b']);
    expect(await agent.listTasks('')).toHaveLength(3);
    expect(agent.counters().listCalls).toBe(2);
  });

  it('stamps start and end times from its clock', async () => {
    const clock = new ManualClock(1_000);
    const { verb } = controlled();
    const agent = new InProcessAgent({ id: 'a', clock, verbs: { run: verb } });
    await agent.startTasks([{ taskId: 't1', verb: 'run', args: { n: 1 } }]);
    clock.advance(250);
    expect(agent.task('t1')).toEqual({
      taskId: 't1',
      verb: 'run',
      args: { n: 1 },
      state: 'running',
      progress: 0,
      result: undefined,
      error: undefined,
      startedAt: 1_000,
      endedAt: undefined,
    });
    await agent.stopTasks(['t1']);
    expect(agent.task('t1')).toMatchObject({
      state: 'cancelled',
      startedAt: 1_000,
      endedAt: 1_250,
    });
    expect(agent.task('nope')).toBeUndefined();
  });

  it('coalesces activity: one notification per macrotask however many tasks end', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    const seen: string[] = [];
    const unsubscribe = agent.onActivity((id) => seen.push(id));
    const requests = Array.from({ length: 10_000 }, (_, i) => noop(`t${i}`));
    await agent.startTasks(requests.slice(0, 5_000));
    await agent.startTasks(requests.slice(5_000));
    expect(seen).toEqual([]);
    await nextMacrotask();
    expect(seen).toEqual(['a']);
    await agent.startTasks([{ taskId: 'e', verb: 'echo', args: null }]);
    await nextMacrotask();
    await nextMacrotask();
    expect(seen).toEqual(['a', 'a']);
    unsubscribe();
    await agent.startTasks([noop('late')]);
    await nextMacrotask();
    expect(seen).toEqual(['a', 'a']);
  });

  it('keeps no history when told so', async () => {
    const agent = new InProcessAgent({ id: 'a', history: false });
    await agent.startTasks([noop('t1')]);
    expect(() => agent.taskHistory('t1')).toThrow(/no task history/);
    expect(agent.historyIds()).toEqual([]);
  });

  it('resets its counters', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    await agent.startTasks([noop('t1')]);
    agent.resetCounters();
    expect(Object.values(agent.counters()).every((n) => n === 0)).toBe(true);
  });

  it('validates its options and verbs', () => {
    expect(() => new InProcessAgent({ id: '' })).toThrow(/non-empty/);
    const agent = new InProcessAgent({ id: 'a' });
    expect(() => agent.registerVerb('', () => 1)).toThrow(CocoError);
  });

  it('answers through promises, and counters() is a snapshot', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    const before = agent.counters();
    const pending = agent.startTasks([noop('t1')]);
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    expect(before.starts).toBe(0);
    expect(agent.counters().starts).toBe(1);
  });
});
