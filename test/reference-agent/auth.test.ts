/**
 * Refusals: unauthenticated requests (401, logged, nothing done), malformed or invalid bodies
 * (400 naming the fields, nothing changed), unknown calls (404), oversized bodies (413).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AgentErrorCode, BODY_LIMIT_BYTES } from '../../src/reference-agent/index.js';
import { MAX_CLOCK_SKEW_MS, PATHS } from '../../src/protocol/agent-v1.js';
import { agent, CALLER, cleanup, refusal, send, type SignOptions } from './support.js';

afterEach(cleanup);

const START = JSON.stringify({ tasks: [{ taskId: 'sneaky', verb: 'noop', args: null }] });

describe('authentication', () => {
  const cases: [string, SignOptions, string][] = [
    ['no signature headers', { unsigned: true }, 'missing'],
    ['a wrong secret', { secret: 'not-the-secret-at-all' }, 'bad signature'],
    ['a stale timestamp', { timestamp: Date.now() - MAX_CLOCK_SKEW_MS - 60_000 }, 'away from'],
    [
      'a timestamp from the future',
      { timestamp: Date.now() + MAX_CLOCK_SKEW_MS + 60_000 },
      'away from',
    ],
    ['a signature over another body', { signedBody: '{"tasks":[]}' }, 'bad signature'],
    ['a signature made for another caller', { sentCaller: 'intruder' }, 'bad signature'],
  ];

  for (const [what, sign, reason] of cases) {
    it(`refuses a start with ${what}: 401, logged, not started`, async () => {
      const { agent: a, client, lines } = await agent();
      const answer = await send(a.url, 'POST', PATHS.start, START, sign);
      const error = refusal(answer, 401);
      expect(error.code).toBe(AgentErrorCode.Unauthorized);
      expect(error.message).toContain(reason);

      expect(await client.one('sneaky')).toEqual({ taskId: 'sneaky', state: 'unknown' });
      expect((await client.health()).tasks).toBe(0);
      const logged = lines().filter((l) => l.msg?.toString().startsWith('refused'));
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({
        level: 40,
        reason: error.message,
        method: 'POST',
        url: PATHS.start,
        caller: sign.unsigned === true ? null : (sign.sentCaller ?? CALLER),
      });
    });
  }

  it('refuses an unsigned health call too', async () => {
    const { agent: a } = await agent();
    const error = refusal(
      await send(a.url, 'GET', PATHS.health, undefined, { unsigned: true }),
      401,
    );
    expect(error.code).toBe(AgentErrorCode.Unauthorized);
  });

  it('refuses an unauthenticated stop: the task keeps running', async () => {
    const { agent: a, client } = await agent();
    await client.start([{ taskId: 'r', verb: 'sleep', args: { ms: 60_000 } }]);
    const body = JSON.stringify({ taskIds: ['r'] });
    refusal(
      await send(a.url, 'POST', PATHS.stop, body, { secret: 'wrong-secret-wrong-secret' }),
      401,
    );
    expect((await client.one('r')).state).toBe('running');
  });
});

describe('bad requests', () => {
  it('answers malformed JSON with 400 BAD_REQUEST and changes nothing', async () => {
    const { agent: a, client } = await agent();
    const error = refusal(await send(a.url, 'POST', PATHS.start, '{"tasks": [', {}), 400);
    expect(error.code).toBe(AgentErrorCode.BadRequest);
    expect(error.message).toContain('not valid JSON');
    expect((await client.health()).tasks).toBe(0);
  });

  it('answers a body failing the schema with 400 naming the fields, and starts nothing', async () => {
    const { client } = await agent();
    const answer = await client.post(PATHS.start, {
      tasks: [
        { taskId: 'fine', verb: 'noop', args: null },
        { taskId: 'not ok!', verb: 'noop', args: null },
        { taskId: 'no-verb', args: null },
      ],
    });
    const error = refusal(answer, 400);
    expect(error.code).toBe(AgentErrorCode.BadRequest);
    expect(error.message).toContain('tasks.1.taskId');
    expect(error.message).toContain('tasks.2.verb');
    expect(error.details).toMatchObject({
      issues: expect.arrayContaining([
        expect.objectContaining({ path: 'tasks.1.taskId' }),
      ]) as unknown,
    });
    expect((await client.list('')).taskIds).toEqual([]);
  });

  it('requires the args key of a start (the schema says so, though its type makes it optional)', async () => {
    const { client } = await agent();
    const error = refusal(
      await client.post(PATHS.start, { tasks: [{ taskId: 't', verb: 'noop' }] }),
      400,
    );
    expect(error.message).toContain('tasks.0.args');
  });

  it('names the field of other calls too (waitMs over the maximum, missing taskIds)', async () => {
    const { client } = await agent();
    const waitError = refusal(
      await client.post(PATHS.changes, { cursor: 0, waitMs: 3_600_000 }),
      400,
    );
    expect(waitError.message).toContain('waitMs');
    const idsError = refusal(await client.post(PATHS.status, {}), 400);
    expect(idsError.message).toContain('taskIds');
    const rootError = refusal(await client.post(PATHS.list, ['prefix']), 400);
    expect(rootError.message).toContain('(root)');
  });

  it('answers unknown calls with 404 NOT_FOUND', async () => {
    const { agent: a } = await agent();
    for (const [method, path] of [
      ['GET', '/v1/nothing'],
      ['GET', PATHS.start],
      ['POST', '/v2/tasks/start'],
    ] as const) {
      const error = refusal(
        await send(a.url, method, path, method === 'POST' ? '{}' : undefined),
        404,
      );
      expect(error.code).toBe(AgentErrorCode.NotFound);
    }
  });

  it('answers a body over the limit with 413 PAYLOAD_TOO_LARGE', async () => {
    const { agent: a, client } = await agent();
    const huge = JSON.stringify({
      tasks: [{ taskId: 'big', verb: 'noop', args: 'x'.repeat(BODY_LIMIT_BYTES) }],
    });
    const error = refusal(await send(a.url, 'POST', PATHS.start, huge), 413);
    expect(error.code).toBe(AgentErrorCode.PayloadTooLarge);
    expect(await client.one('big')).toEqual({ taskId: 'big', state: 'unknown' });
  });
});
