import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { InProcessAgent } from '../../../src/brokers/in-process/agent.js';
import { builtinVerbs } from '../../../src/verbs/builtins.js';
import { ErrorCode } from '../../../src/core/errors.js';

const start = (agent: InProcessAgent, taskId: string, verb: string, args: unknown) =>
  agent.startTasks([{ taskId, verb, args }]).then((results) => results[0]!);

describe('built-in verbs', () => {
  it('are noop, echo, sleep and fail', () => {
    expect(Object.keys(builtinVerbs).sort()).toEqual(['echo', 'fail', 'noop', 'sleep']);
  });

  it('echo returns its arguments after startTasks has answered', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    await start(agent, 't1', 'echo', { hello: 'world' });
    await start(agent, 't2', 'echo', undefined);
    expect((await agent.getStatuses(['t1']))[0]?.state).toBe('running');
    await sleep(5);
    expect(await agent.getStatuses(['t1', 't2'])).toEqual([
      { taskId: 't1', state: 'succeeded', result: { hello: 'world' } },
      { taskId: 't2', state: 'succeeded', result: null },
    ]);
  });

  it('echo can be stopped before it answers', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    await start(agent, 't1', 'echo', 1);
    await agent.stopTasks(['t1']);
    await sleep(5);
    expect((await agent.getStatuses(['t1']))[0]?.state).toBe('cancelled');
  });

  it('sleep waits, reports progress, then returns its result', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    const began = Date.now();
    await start(agent, 't1', 'sleep', { ms: 200, result: 'rested' });
    await sleep(110);
    const [mid] = await agent.getStatuses(['t1']);
    expect(mid?.state).toBe('running');
    expect(mid?.progress).toBeGreaterThan(20);
    expect(mid?.progress).toBeLessThan(100);
    await sleep(150);
    expect(await agent.getStatuses(['t1'])).toEqual([
      { taskId: 't1', state: 'succeeded', result: 'rested' },
    ]);
    expect(agent.task('t1')!.endedAt! - began).toBeGreaterThanOrEqual(195);
  });

  it('sleep honours a stop at once', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    await start(agent, 't1', 'sleep', { ms: 60_000 });
    await agent.stopTasks(['t1']);
    expect(await agent.getStatuses(['t1'])).toEqual([
      {
        taskId: 't1',
        state: 'cancelled',
        error: { code: ErrorCode.Cancelled, message: 'task stopped by request' },
      },
    ]);
  });

  it('sleep with bad arguments is refused at start', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    for (const args of [undefined, { ms: -1 }, { ms: 'soon' }]) {
      const result = await start(agent, 't1', 'sleep', args);
      expect(result).toMatchObject({ accepted: false, error: { code: ErrorCode.TaskRejected } });
    }
    expect(agent.size).toBe(0);
  });

  it('fail fails the task with the given code, or TASK_FAILED', async () => {
    const agent = new InProcessAgent({ id: 'a' });
    await start(agent, 't1', 'fail', {
      message: 'disk on fire',
      code: 'DISK_FIRE',
      details: { disk: 2 },
    });
    await start(agent, 't2', 'fail', undefined);
    await start(agent, 't3', 'fail', { code: ErrorCode.TaskRejected });
    expect(await agent.getStatuses(['t1', 't2', 't3'])).toEqual([
      {
        taskId: 't1',
        state: 'failed',
        error: { code: 'DISK_FIRE', message: 'disk on fire', details: { disk: 2 } },
      },
      {
        taskId: 't2',
        state: 'failed',
        error: { code: ErrorCode.TaskFailed, message: 'failed on purpose' },
      },
      {
        taskId: 't3',
        state: 'failed',
        error: { code: ErrorCode.TaskRejected, message: 'failed on purpose' },
      },
    ]);
  });
});
