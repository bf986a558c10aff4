/**
 * `api.rateLimit`: each token gets at most `max` calls per window; past it a call is answered
 * 429 `RATE_LIMITED` with `Retry-After`, nothing done; other tokens are not held back; public
 * routes (probes) are not counted; the CLI maps the refusal to "not now" (exit 9); a reload
 * turns it on, changes it or turns it off.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { CocoError } from '../../src/core/errors.js';
import { TOKENS } from '../support/api.js';
import { coco } from '../cli/support.js';
import { codeOf, startApiNode, type ApiNode } from './support.js';

let node: ApiNode;
beforeAll(async () => {
  node = await startApiNode({ api: { rateLimit: { max: 3, window: '1h' } } });
});
afterAll(() => node?.close());

it('refuses a token’s calls past its limit with 429 RATE_LIMITED and Retry-After, and nothing done', async () => {
  const submit = (note: string) =>
    node.call('POST', '/v1/commands', {
      role: 'operator',
      body: { type: 'api.work', params: { note } },
    });
  expect((await submit('one')).status).toBe(201);
  expect((await node.call('GET', '/v1/commands', { role: 'operator' })).status).toBe(200);
  expect((await submit('three')).status).toBe(201);
  const refused = await fetch(`${node.url}/v1/commands`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKENS.operator}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'api.work', params: { note: 'four' } }),
  });
  expect(refused.status).toBe(429);
  expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(3000);
  const body: unknown = await refused.json();
  expect(codeOf(body)).toBe('RATE_LIMITED');
  expect((body as { error: { message: string } }).error.message).toMatch(
    /^too many calls from token "test-operator": at most 3 per 3600 s \(api\.rateLimit\); try again in \d+ s$/,
  );
  expect(JSON.stringify(body)).not.toContain(TOKENS.operator);
  const metrics = (await node.call('GET', '/metrics', { role: 'admin' })).body as string;
  expect(metrics).toMatch(/^coco_api_rate_limited_total 1$/m);
  // Nothing of the refused call was done.
  const list = (await node.call('GET', '/v1/commands', { role: 'admin' })).body as {
    commands: unknown[];
  };
  expect(list.commands).toHaveLength(2);
});

it('counts per token: another token goes on; probes are never counted', async () => {
  for (let i = 0; i < 3; i++)
    expect((await node.call('GET', '/v1/node', { role: 'viewer' })).status).toBe(200);
  expect((await node.call('GET', '/v1/node', { role: 'viewer' })).status).toBe(429);
  for (let i = 0; i < 10; i++) {
    expect((await node.call('GET', '/v1/health', { role: null })).status).toBe(200);
    expect((await node.call('GET', '/v1/ready', { role: null })).status).toBe(200);
  }
});

it('the CLI says not now: exit 9', async () => {
  // The operator's token has used its three calls (above).
  const r = await coco('list', '--server', node.url, '--token-file', tokenFile());
  expect(r.code, r.err).toBe(9);
  expect(r.err).toContain('RATE_LIMITED');
});

function tokenFile(): string {
  const path = `${node.dir}/operator.token`;
  writeFileSync(path, TOKENS.operator, { mode: 0o600 });
  return path;
}

it('the configuration refuses a limit that is not a positive whole number, naming it', () => {
  for (const rateLimit of [
    { max: 0 },
    { max: 1.5 },
    { max: 5, window: 'soon' },
    { window: '1m' },
  ]) {
    let error: unknown;
    try {
      parseConfig({ api: { rateLimit } }, node.dir);
    } catch (e) {
      error = e;
    }
    expect(error, JSON.stringify(rateLimit)).toBeInstanceOf(CocoError);
    expect(JSON.stringify((error as CocoError).details)).toContain('api.rateLimit');
  }
});

it('a reload turns it on, changes it and turns it off, each from an empty window', async () => {
  const plain = await startApiNode();
  try {
    const calls = async (n: number): Promise<number[]> => {
      const statuses: number[] = [];
      for (let i = 0; i < n; i++)
        statuses.push((await plain.call('GET', '/v1/node', { role: 'viewer' })).status);
      return statuses;
    };
    const metrics = async (): Promise<string> =>
      (await plain.call('GET', '/metrics', { role: 'admin' })).body as string;
    expect(await calls(5)).toEqual([200, 200, 200, 200, 200]);
    // Off: no series.
    expect(await metrics()).not.toContain('coco_api_rate_limited_total');
    plain.node.setRateLimit({ max: 2, window: 3_600_000 });
    expect(await calls(3)).toEqual([200, 200, 429]);
    expect(await metrics()).toMatch(/^coco_api_rate_limited_total 1$/m);
    plain.node.setRateLimit({ max: 4, window: 3_600_000 });
    expect(await calls(5)).toEqual([200, 200, 200, 200, 429]);
    plain.node.setRateLimit(undefined);
    expect(await calls(6)).toEqual([200, 200, 200, 200, 200, 200]);
  } finally {
    await plain.close();
  }
});
