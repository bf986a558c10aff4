/**
 * The protocol's calls against a real agent over HTTP: health, start (idempotent, refusals),
 * status, stop, clear, list.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { rejectStart, type Verb } from '../../src/reference-agent/index.js';
import { ErrorCode } from '../../src/core/errors.js';
import { agent, cleanup, gate } from './support.js';

afterEach(cleanup);

describe('reference agent calls', () => {
  it('health names the agent, its boot, its verbs and protocol 2', async () => {
    const { agent: a, client } = await agent({ version: '1.2.3' });
    const health = await client.health();
    expect(health).toMatchObject({
      protocol: 2,
      agentId: 'agent-1',
      bootId: a.bootId,
      version: '1.2.3',
      tasks: 0,
    });
    expect(health.verbs).toEqual(expect.arrayContaining(['noop', 'sleep', 'fail']));
    expect(Math.abs(health.time - Date.now())).toBeLessThan(5_000);
    expect(a.previousBootId).toBeNull();
  });

  it('starts are idempotent: a repeated task id changes nothing (verb and args not compared)', async () => {
    const { client } = await agent();
    const first = await client.start([{ taskId: 't1', verb: 'noop', args: { a: 1 } }]);
    expect(first.results).toEqual([{ taskId: 't1', accepted: true }]);
    expect(await client.one('t1')).toEqual({ taskId: 't1', state: 'succeeded', result: { a: 1 } });

    const again = await client.start([
      { taskId: 't1', verb: 'fail', args: {} },
      { taskId: 't2', verb: 'sleep', args: { ms: 60_000 } },
      { taskId: 't2', verb: 'noop', args: 'second in the same batch' },
    ]);
    expect(again.results).toEqual([
      { taskId: 't1', accepted: true },
      { taskId: 't2', accepted: true },
      { taskId: 't2', accepted: true },
    ]);
    expect(await client.one('t1')).toEqual({ taskId: 't1', state: 'succeeded', result: { a: 1 } });
    expect(await client.one('t2')).toMatchObject({ taskId: 't2', state: 'running' });
    expect((await client.health()).tasks).toBe(2);
  });

  it('refuses unknown verbs and bad arguments: the task does not exist', async () => {
    const strict: Verb = (args) => {
      if (typeof args !== 'number') throw rejectStart('strict wants a number');
      return args * 2;
    };
    const { client } = await agent({ verbs: { strict } });
    const { results } = await client.start([
      { taskId: 'a', verb: 'nope', args: null },
      { taskId: 'b', verb: 'sleep', args: { ms: 'long' } },
      { taskId: 'c', verb: 'strict', args: 'x' },
      { taskId: 'd', verb: 'strict', args: 21 },
    ]);
    expect(results.map((r) => [r.taskId, r.accepted])).toEqual([
      ['a', false],
      ['b', false],
      ['c', false],
      ['d', true],
    ]);
    for (const r of results.slice(0, 3)) {
      if (r.accepted) throw new Error('accepted');
      expect(r.error.code).toBe(ErrorCode.TaskRejected);
    }
    expect(results[0]).toMatchObject({
      error: { message: expect.stringContaining('"nope"') as string },
    });
    const { tasks } = await client.status(['a', 'b', 'c', 'd']);
    expect(tasks.map((t) => t.state)).toEqual(['unknown', 'unknown', 'unknown', 'succeeded']);
    expect(tasks[3]).toMatchObject({ result: 42 });
    expect((await client.list('')).taskIds).toEqual(['d']);
  });

  it('reports statuses in request order, unknown ids as unknown, failures with their code', async () => {
    const { client } = await agent();
    await client.start([
      { taskId: 'ok', verb: 'noop', args: 'r' },
      { taskId: 'bad', verb: 'fail', args: { code: 'DISK_FULL', message: 'no space' } },
      { taskId: 'slow', verb: 'sleep', args: { ms: 60_000 } },
    ]);
    await vi.waitFor(async () => expect((await client.one('bad')).state).toBe('failed'));
    const { tasks } = await client.status(['slow', 'ghost', 'bad', 'ok', 'slow']);
    expect(tasks).toEqual([
      { taskId: 'slow', state: 'running', progress: 0 },
      { taskId: 'ghost', state: 'unknown' },
      { taskId: 'bad', state: 'failed', error: { code: 'DISK_FULL', message: 'no space' } },
      { taskId: 'ok', state: 'succeeded', result: 'r' },
      { taskId: 'slow', state: 'running', progress: 0 },
    ]);
  });

  it('reports progress and a result that must survive JSON', async () => {
    const release = gate();
    const stepper: Verb = async (_args, ctx) => {
      ctx.progress(42.5);
      await release.promise;
      return undefined;
    };
    const bigint: Verb = () => 10n;
    const { client } = await agent({ verbs: { stepper, bigint } });
    await client.start([
      { taskId: 's', verb: 'stepper' },
      { taskId: 'n', verb: 'bigint' },
    ]);
    expect(await client.one('s')).toEqual({ taskId: 's', state: 'running', progress: 42.5 });
    expect(await client.one('n')).toMatchObject({
      state: 'failed',
      error: { code: ErrorCode.TaskFailed },
    });
    release.open(null);
    await vi.waitFor(async () =>
      expect(await client.one('s')).toEqual({ taskId: 's', state: 'succeeded', result: null }),
    );
  });

  it('stop cancels a running task at once and aborts its verb; other ids are ignored', async () => {
    let aborted: unknown;
    const waits: Verb = (_args, ctx) =>
      new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => {
          aborted = ctx.signal.reason;
          reject(new Error('aborted'));
        });
      });
    const { client } = await agent({ verbs: { waits } });
    await client.start([
      { taskId: 'w', verb: 'waits' },
      { taskId: 'z', verb: 'sleep', args: { ms: 60_000 } },
      { taskId: 'done', verb: 'noop' },
    ]);
    await client.stop(['w', 'z', 'done', 'ghost']);
    const { tasks } = await client.status(['w', 'z', 'done']);
    expect(tasks).toEqual([
      {
        taskId: 'w',
        state: 'cancelled',
        error: { code: ErrorCode.Cancelled, message: 'task stopped by request' },
      },
      {
        taskId: 'z',
        state: 'cancelled',
        error: { code: ErrorCode.Cancelled, message: 'task stopped by request' },
      },
      { taskId: 'done', state: 'succeeded', result: null },
    ]);
    expect(aborted).toMatchObject({ code: ErrorCode.Cancelled });
    // The verb's own rejection after the stop changes nothing.
    await new Promise((resolve) => setImmediate(resolve));
    expect((await client.one('w')).state).toBe('cancelled');
  });

  it('clear forgets ended tasks only; a cleared id is not started again', async () => {
    const { client } = await agent();
    await client.start([
      { taskId: 'e', verb: 'noop', args: 1 },
      { taskId: 'r', verb: 'sleep', args: { ms: 60_000 } },
    ]);
    await client.clear(['e', 'r', 'ghost']);
    const { tasks } = await client.status(['e', 'r']);
    expect(tasks.map((t) => t.state)).toEqual(['unknown', 'running']);
    const { results } = await client.start([{ taskId: 'e', verb: 'noop', args: 2 }]);
    expect(results).toMatchObject([{ accepted: false, error: { code: ErrorCode.TaskIdUsed } }]);
    expect(await client.one('e')).toEqual({ taskId: 'e', state: 'unknown' });
  });

  it('lists task ids by prefix, in start order', async () => {
    const { client } = await agent();
    await client.start([
      { taskId: 'n1:b', verb: 'noop' },
      { taskId: 'n2:a', verb: 'noop' },
      { taskId: 'n1:a', verb: 'sleep', args: { ms: 60_000 } },
    ]);
    expect((await client.list('n1:')).taskIds).toEqual(['n1:b', 'n1:a']);
    expect((await client.list('')).taskIds).toEqual(['n1:b', 'n2:a', 'n1:a']);
    expect((await client.list('n3:')).taskIds).toEqual([]);
  });
});
