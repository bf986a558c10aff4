/**
 * Handlers that answer themselves (a status other than the route's usual one, an ETag, a 304, an
 * event stream) answer once: fastify is never asked to send a second time (it would log
 * "Reply was already sent" at warn for each such call and build an error with its stack).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TOKENS } from '../support/api.js';
import { startApiNode, type ApiNode } from './support.js';

let api: ApiNode;
beforeAll(async () => {
  api = await startApiNode();
});
afterAll(async () => {
  await api.close();
});

it('health, an idempotent resubmit, a kept detail and its 304 each answer once, with nothing logged at warn', async () => {
  const before = api.logs.length;
  expect((await api.call('GET', '/v1/health', { role: null })).status).toBe(200);
  expect((await api.call('GET', '/v1/ready', { role: null })).status).toBe(200);
  const body = { type: 'api.work', params: { tasks: 0 }, idempotencyKey: 'once' };
  const first = await api.call('POST', '/v1/commands', { role: 'operator', body });
  expect(first.status).toBe(201);
  expect((await api.call('POST', '/v1/commands', { role: 'operator', body })).status).toBe(200);
  const id = (first.body as { id: number }).id;
  await api.node.engine.waitFor(id);
  expect((await api.call('GET', `/v1/commands/${id}`, { role: 'viewer' })).status).toBe(200);
  const authorization = `Bearer ${TOKENS.viewer}`;
  const again = await fetch(`${api.url}/v1/commands/${id}`, { headers: { authorization } });
  const notModified = await fetch(`${api.url}/v1/commands/${id}`, {
    headers: { authorization, 'if-none-match': again.headers.get('etag')! },
  });
  expect(notModified.status).toBe(304);
  const lines = api.logs.slice(before);
  expect(lines.filter((l) => (l.level as number) >= 40)).toEqual([]);
  // One access line per call, each with the status the client saw.
  expect(lines.filter((l) => l.msg === 'API call').map((l) => l.status)).toEqual([
    200, 200, 201, 200, 200, 200, 304,
  ]);
});
