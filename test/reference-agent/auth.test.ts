/**
 * Refusals: unauthenticated, replayed or misdirected requests (401, logged, nothing done, the
 * body never read), malformed or invalid bodies (400 naming the fields, nothing changed), unknown
 * calls (404) and calls of another protocol version (404 naming both), oversized bodies (413),
 * a full replay memory (503).
 */
import { createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AgentErrorCode, BODY_LIMIT_BYTES } from '../../src/reference-agent/index.js';
import { PATHS } from '../../src/protocol/agent-v2.js';
import { NonceMemory } from '../../src/protocol/replay.js';
import { MAX_CLOCK_SKEW_MS } from '../../src/protocol/signature.js';
import {
  agent,
  CALLER,
  Client,
  cleanup,
  refusal,
  resend,
  SECRET,
  send,
  server,
  type SignOptions,
} from './support.js';

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
    [
      'a body other than the signed one',
      { signedBody: '{"tasks":[]}' },
      'does not match its signed',
    ],
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

  it('refuses a captured start sent again after its task was cleared: 401, the task does not run twice', async () => {
    const { agent: a, client, lines } = await agent();
    const first = await send(a.url, 'POST', PATHS.start, START);
    expect(first.status).toBe(200);
    await vi.waitFor(async () => expect((await client.one('sneaky')).state).toBe('succeeded'));
    await client.clear(['sneaky']);

    const replayed = refusal(await resend(a.url, 'POST', PATHS.start, START, first.sent), 401);
    expect(replayed.code).toBe(AgentErrorCode.Unauthorized);
    expect(replayed.message).toMatch(/nonce .* already used/);
    expect(await client.one('sneaky')).toEqual({ taskId: 'sneaky', state: 'unknown' });
    const logged = lines().filter((l) => l.msg?.toString().startsWith('refused'));
    expect(logged).toEqual([expect.objectContaining({ reason: replayed.message })]);
  });

  it('refuses a request signed before the agent started (its previous run may have accepted it)', async () => {
    const { agent: a, client } = await agent();
    const answer = await send(a.url, 'POST', PATHS.start, START, {
      timestamp: Date.now() - 60_000,
    });
    const error = refusal(answer, 401);
    expect(error.message).toMatch(/signed before this agent started/);
    expect(await client.one('sneaky')).toEqual({ taskId: 'sneaky', state: 'unknown' });
  });

  it('refuses any call sent twice, a status as well as a start', async () => {
    const { agent: a } = await agent();
    const body = JSON.stringify({ taskIds: ['x'] });
    const first = await send(a.url, 'POST', PATHS.status, body);
    expect(first.status).toBe(200);
    refusal(await resend(a.url, 'POST', PATHS.status, body, first.sent), 401);
  });

  it('refuses a request signed for another agent, though both agents share the secret', async () => {
    const { agent: other } = await agent({ id: 'agent-2' });
    const { client } = await agent({ id: 'agent-1' });
    const answer = await send(other.url, 'POST', PATHS.start, START, { agentId: 'agent-1' });
    const error = refusal(answer, 401);
    expect(error.code).toBe(AgentErrorCode.Unauthorized);
    expect(error.message).toMatch(/for agent "agent-1".*this is agent "agent-2"/);
    expect((await new Client(other.url, { agentId: 'agent-2' }).health()).tasks).toBe(0);
    expect((await client.health()).tasks).toBe(0);
  });

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

/**
 * Sends the headers of a POST announcing a body of `length` bytes and only its first `sent`
 * bytes, and resolves with the answer's status and connection header — if the agent answers
 * while the rest of the body is still owed. Rejects after `patienceMs` without an answer (an
 * agent that waits for the whole body before checking anything).
 */
function answerWhileSending(
  url: string,
  path: string,
  headers: Record<string, string>,
  length: number,
  sent: number,
  patienceMs: number,
): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}${path}`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', 'content-length': length },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${patienceMs} ms while ${length - sent} bytes were owed`));
    }, patienceMs);
    req.on('response', (res) => {
      clearTimeout(timer);
      resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
      res.resume();
      req.destroy();
    });
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.write(Buffer.alloc(sent, 0x20));
  });
}

describe('no body before authentication', () => {
  it('answers 40 unauthenticated 8 MiB starts with 401 before their bodies are sent, and hangs up', async () => {
    const { agent: a, client } = await agent();
    const unsigned = { 'x-coco-caller': 'intruder' };
    const answers = await Promise.all(
      Array.from({ length: 40 }, () =>
        answerWhileSending(a.url, PATHS.start, unsigned, BODY_LIMIT_BYTES, 64 * 1024, 10_000),
      ),
    );
    expect(answers.map((x) => x.status)).toEqual(Array.from({ length: 40 }, () => 401));
    expect(answers.every((x) => x.connection === 'close')).toBe(true);
    expect((await client.health()).tasks).toBe(0);
  });

  it('answers a large body to an unknown path or another version with 404 before it is sent', async () => {
    const { agent: a } = await agent();
    for (const path of ['/v1/tasks/start', '/v2/tasks/nothing']) {
      const answer = await answerWhileSending(a.url, path, {}, BODY_LIMIT_BYTES, 64 * 1024, 10_000);
      expect(answer).toEqual({ status: 404, connection: 'close' });
    }
  });

  it('reads the body of an authenticated request, and refuses it if it is not the signed one', async () => {
    const { agent: a, client } = await agent();
    const signedFor = JSON.stringify({ taskIds: ['x'] });
    const swapped = JSON.stringify({ taskIds: ['y'] });
    const error = refusal(
      await send(a.url, 'POST', PATHS.stop, swapped, { signedBody: signedFor }),
      401,
    );
    expect(error.message).toBe('the body does not match its signed x-coco-content-sha256');
    expect((await client.status(['x'])).tasks).toEqual([{ taskId: 'x', state: 'unknown' }]);
  });
});

describe('protocol versions', () => {
  it('answers an engine of protocol 1 (/v1/... paths) with 404 PROTOCOL_VERSION naming both versions', async () => {
    const { agent: a } = await agent();
    // As a protocol 1 engine signed: v1= HMAC over method, path, timestamp, caller and body.
    const timestamp = Date.now();
    const v1 = createHmac('sha256', SECRET)
      .update(`GET\n/v1/health\n${timestamp}\n${CALLER}\n`)
      .digest('hex');
    const answer = await resend(a.url, 'GET', '/v1/health', undefined, {
      'x-coco-timestamp': String(timestamp),
      'x-coco-caller': CALLER,
      'x-coco-signature': `v1=${v1}`,
    });
    const error = refusal(answer, 404);
    expect(error.code).toBe(AgentErrorCode.ProtocolVersion);
    expect(error.message).toMatch(/speaks coco agent protocol 2 .*not protocol 1/);
    expect(error.details).toEqual({ protocol: 2, requested: 1 });
  });
});

describe('the replay memory', () => {
  it('when full, answers 503 BUSY and acts on nothing (it never forgets a nonce early)', async () => {
    const { server: srv, client } = await server({ nonces: new NonceMemory({ capacity: 2 }) });
    const ids = JSON.stringify({ taskIds: ['x'] });
    expect((await send(client.url, 'POST', PATHS.status, ids)).status).toBe(200);
    expect((await send(client.url, 'POST', PATHS.status, ids)).status).toBe(200);
    const busy = refusal(await send(client.url, 'POST', PATHS.start, START), 503);
    expect(busy.code).toBe(AgentErrorCode.Busy);
    expect(busy.message).toMatch(/remembers 2 recent requests/);
    expect(srv.table.size).toBe(0);
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
      ['GET', '/v2/nothing'],
      ['GET', PATHS.start],
      ['POST', '/tasks/start'],
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
