/**
 * Who may call what: every route against each role, no token and a wrong token; state changes
 * only as same-origin JSON; a foreign Host refused; routes without a role refused to everyone;
 * refusals change nothing and are logged at warn without the token.
 */
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { buildApi } from '../../src/http/api.js';
import { startNode } from '../../src/server/node.js';
import { tempDir } from '../support/harness.js';
import type { Role } from '../../src/http/auth.js';
import { TOKENS } from '../support/api.js';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { codeOf, hold, startApiNode, work, type ApiNode } from './support.js';

let api: ApiNode;
beforeAll(async () => {
  api = await startApiNode();
});
afterAll(async () => {
  await api.close();
});

/** Every route, the role it needs, and a call that passes the access checks. */
const ROUTES: { method: string; path: string; role: Role | 'public'; body?: unknown }[] = [
  { method: 'GET', path: '/v1/health', role: 'public' },
  { method: 'GET', path: '/v1/ready', role: 'public' },
  { method: 'GET', path: '/openapi.json', role: 'public' },
  { method: 'GET', path: '/v1/node', role: 'viewer' },
  { method: 'GET', path: '/v1/whoami', role: 'viewer' },
  { method: 'GET', path: '/v1/agents', role: 'viewer' },
  { method: 'GET', path: '/v1/commands', role: 'viewer' },
  { method: 'GET', path: '/v1/commands/999999', role: 'viewer' },
  { method: 'GET', path: '/v1/jobs', role: 'viewer' },
  { method: 'GET', path: '/v1/jobs/999999', role: 'viewer' },
  { method: 'POST', path: '/v1/commands', role: 'operator', body: { type: 'no.such', params: {} } },
  { method: 'POST', path: '/v1/commands/999999/cancel', role: 'operator', body: {} },
  { method: 'POST', path: '/v1/commands/999999/release', role: 'operator', body: {} },
  { method: 'POST', path: '/v1/commands/999999/rerun', role: 'operator', body: {} },
  { method: 'GET', path: '/v1/admission', role: 'viewer' },
  { method: 'GET', path: '/v1/types', role: 'viewer' },
  { method: 'POST', path: '/v1/types/no.such/pause', role: 'operator', body: {} },
  { method: 'POST', path: '/v1/types/no.such/resume', role: 'operator', body: {} },
  { method: 'POST', path: '/v1/admin/limits', role: 'admin', body: {} },
  { method: 'POST', path: '/v1/admin/agents/999999/forget', role: 'admin', body: {} },
  {
    method: 'POST',
    path: '/v1/admin/prune',
    role: 'admin',
    body: { olderThanMs: 1, dryRun: true },
  },
];
const RANK = { viewer: 0, operator: 1, admin: 2 } as const;

describe('roles', () => {
  for (const route of ROUTES) {
    it(`${route.method} ${route.path} needs ${route.role}`, async () => {
      for (const role of ['viewer', 'operator', 'admin'] as const) {
        const r = await api.call(route.method, route.path, { role, body: route.body });
        if (route.role !== 'public' && RANK[role] < RANK[route.role]) {
          expect(r.status, `${role}`).toBe(403);
          expect(codeOf(r.body)).toBe('FORBIDDEN');
        } else {
          expect([401, 403], `${role}: ${JSON.stringify(r.body)}`).not.toContain(r.status);
        }
      }
      const none = await api.call(route.method, route.path, { role: null, body: route.body });
      const wrong = await api.call(route.method, route.path, {
        role: null,
        body: route.body,
        headers: { authorization: `Bearer ${TOKENS.admin}x` },
      });
      if (route.role === 'public') {
        expect(none.status).not.toBe(401);
      } else {
        for (const r of [none, wrong]) {
          expect(r.status).toBe(401);
          expect(codeOf(r.body)).toBe('UNAUTHORIZED');
        }
      }
    });
  }

  it('every route of the API is in this table (the OpenAPI document lists them)', async () => {
    const doc = (await api.call('GET', '/openapi.json')).body as {
      paths: Record<string, Record<string, unknown>>;
    };
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const here = new Set(
      ROUTES.map(
        (r) => `${r.method} ${r.path.replace(/999999/, '{id}').replace(/no\.such/, '{name}')}`,
      ),
    );
    const streams = ['GET /v1/jobs/{id}/events', 'GET /v1/events'];
    expect(listed.filter((r) => !here.has(r)).sort()).toEqual(streams.sort());
  });

  it('whoami names the token and its role', async () => {
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const r = await api.call('GET', '/v1/whoami', { role });
      expect(r).toEqual({ status: 200, body: { name: `test-${role}`, role } });
    }
  });

  it('an unknown route answers 401 without a token, 404 with one', async () => {
    expect((await api.call('GET', '/v1/nope', { role: null })).status).toBe(401);
    const r = await api.call('GET', '/v1/nope', { role: 'viewer' });
    expect(r.status).toBe(404);
    expect(codeOf(r.body)).toBe('NOT_FOUND');
  });
});

describe('state changes: same-origin JSON only, and refusals change nothing', () => {
  const submit = { type: 'api.work', params: {} };

  it('refuses another content type with 415, and stores nothing', async () => {
    const before = (await api.node.engine.list()).commands.length;
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']) {
      const r = await api.call('POST', '/v1/commands', {
        role: 'admin',
        body: JSON.stringify(submit),
        headers: { 'content-type': type },
      });
      expect(r.status, type).toBe(415);
      expect(codeOf(r.body)).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
    const noType = await fetch(`${api.url}/v1/commands/1/cancel`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    expect(noType.status).toBe(415);
    expect((await api.node.engine.list()).commands.length).toBe(before);
  });

  it("behind a TLS proxy (api.trustProxy) the browser's https origin is the node's own; without, it is refused", async () => {
    const proxied = {
      origin: 'https://coco.example',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'coco.example',
    };
    const direct = await api.call('POST', '/v1/commands', { body: submit, headers: proxied });
    expect(direct.status).toBe(403);
    const behind = await startApiNode({
      api: { trustProxy: ['127.0.0.1'], allowedHosts: ['coco.example'] },
    });
    try {
      const ok = await behind.call('POST', '/v1/commands', { body: submit, headers: proxied });
      expect(ok.status).toBe(201);
      // The forwarded host is the one checked against DNS rebinding.
      const rebound = await behind.call('POST', '/v1/commands', {
        body: submit,
        headers: { ...proxied, 'x-forwarded-host': 'evil.example', origin: 'https://evil.example' },
      });
      expect(rebound.status).toBe(421);
    } finally {
      await behind.close();
    }
  });

  it('refuses a cross-origin call with 403 (a web page the operator opens cannot submit or cancel)', async () => {
    const { id } = await api.node.engine.submit(work, { tasks: 1, verb: 'hold', key: 'origin' });
    const before = (await api.node.engine.list()).commands.length;
    for (const [path, body] of [
      ['/v1/commands', submit],
      [`/v1/commands/${id}/cancel`, {}],
    ] as const) {
      const r = await api.call('POST', path, {
        role: 'admin',
        body,
        headers: { origin: 'https://evil.example' },
      });
      expect(r.status).toBe(403);
      expect(codeOf(r.body)).toBe('FORBIDDEN');
      expect((r.body as { error: { message: string } }).error.message).toContain('cross-origin');
    }
    expect((await api.node.engine.list()).commands.length).toBe(before);
    expect((await api.node.engine.get(id))?.status).toBe('waiting');
    // Its own origin is fine.
    const own = await api.call('POST', `/v1/commands/${id}/cancel`, {
      body: {},
      headers: { origin: api.url },
    });
    expect(own.status).toBe(202);
    hold.release('origin');
  });

  it('refuses a Host header that names another server (DNS rebinding): 421, reads too', async () => {
    const { request } = await import('node:http');
    const call = (host: string, path: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const u = new URL(api.url);
        const req = request(
          {
            host: u.hostname,
            port: u.port,
            path,
            headers: { host, authorization: `Bearer ${TOKENS.admin}` },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
    expect(await call('evil.example:7390', '/v1/commands')).toBe(421);
    expect(await call('localhost:7390', '/v1/commands')).toBe(200);
    expect(await call('127.0.0.1', '/v1/commands')).toBe(200);
    expect(await call('[::1]:80', '/v1/commands')).toBe(200);
    // Liveness answers whatever the Host (probes use the pod's address or name).
    expect(await call('evil.example', '/v1/health')).toBe(200);
  });

  it('refuses an oversized body with 413, storing nothing', async () => {
    const before = (await api.node.engine.list()).commands.length;
    const r = await api.call('POST', '/v1/commands', {
      body: { type: 'api.work', params: { note: 'x'.repeat(5 * 1024 * 1024) } },
    });
    expect(r.status).toBe(413);
    expect(codeOf(r.body)).toBe('PAYLOAD_TOO_LARGE');
    expect((await api.node.engine.list()).commands.length).toBe(before);
  });

  it('logs each refusal at warn with the route and the caller address, never the token', async () => {
    await api.call('POST', '/v1/admin/prune', {
      role: 'viewer',
      body: { olderThanMs: 1 },
    });
    await api.call('GET', '/v1/commands', {
      role: null,
      headers: { authorization: `Bearer ${TOKENS.admin}-wrong` },
    });
    const refusals = api.logs.filter((l) => l.level === 40 && String(l.msg).includes('refused'));
    expect(refusals).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ route: '/v1/admin/prune', ip: '127.0.0.1', status: 403 }),
        expect.objectContaining({ route: '/v1/commands', ip: '127.0.0.1', status: 401 }),
      ]),
    );
    // The access log has every call at info, with the caller's token name.
    expect(api.logs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          level: 30,
          msg: 'API call',
          route: '/v1/whoami',
          caller: 'test-viewer',
        }),
      ]),
    );
    const text = api.logText();
    for (const token of Object.values(TOKENS)) expect(text).not.toContain(token);
  });
});

describe('deny by default', () => {
  it('a route registered without a role is refused to every token; /metrics gets viewer', async () => {
    const { app } = buildApi({
      engine: api.node.engine,
      commands: [],
      tokens: [
        { name: 'v', role: 'viewer', token: TOKENS.viewer },
        { name: 'a', role: 'admin', token: TOKENS.admin },
      ],
    });
    // As another part's plugin would add them, after the API was built.
    await app.register(async (plugin) => {
      plugin.get('/v1/undeclared', async () => ({ secret: true }));
      plugin.get('/metrics', async () => 'coco_up 1\n');
    });
    const inject = (url: string, token?: string) =>
      app.inject({
        method: 'GET',
        url,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
    expect((await inject('/v1/undeclared', TOKENS.admin)).statusCode).toBe(403);
    expect((await inject('/v1/undeclared')).statusCode).toBe(401);
    expect((await inject('/metrics')).statusCode).toBe(401);
    expect((await inject('/metrics', TOKENS.viewer)).statusCode).toBe(200);
    await app.close();
  });

  it('a node without configured tokens creates its own admin token beside the store (mode 0600) and logs where', async () => {
    const dir = tempDir('coco-api-own-');
    const seen: { obj: object; msg?: string }[] = [];
    const log = (obj: object, msg?: string) => void seen.push({ obj, msg });
    const config = parseConfig({ store: `sqlite:${join(dir, 'c.db')}`, api: { port: 0 } }, dir);
    const node = await startNode({
      config,
      commands: [],
      broker: inProcessAgents(['a1']),
      logger: { debug: log, info: log, warn: log, error: log },
    });
    try {
      const file = join(dir, 'c.db.token');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const token = readFileSync(file, 'utf8').trim();
      expect(token.length).toBeGreaterThanOrEqual(43);
      expect(seen.some((s) => JSON.stringify(s.obj).includes(file))).toBe(true);
      expect(JSON.stringify(seen)).not.toContain(token);
      const who = await fetch(`${node.url!}/v1/whoami`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(await who.json()).toEqual({ name: 'local-admin', role: 'admin' });
    } finally {
      await node.close();
    }
    // Again: the same token, read back.
    const again = await startNode({
      config,
      commands: [],
      broker: inProcessAgents(['a1']),
      logger: { debug: log, info: log, warn: log, error: log },
    });
    expect(seen.some((s) => s.msg?.startsWith('using the API admin token'))).toBe(true);
    await again.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to bind a non-loopback address without configured tokens', async () => {
    const dir = tempDir('coco-api-bind-');
    const config = parseConfig(
      { store: `sqlite:${join(dir, 'c.db')}`, api: { host: '0.0.0.0', port: 0 } },
      dir,
    );
    const quiet = { debug() {}, info() {}, warn() {}, error() {} };
    await expect(
      startNode({ config, commands: [], broker: inProcessAgents(['a1']), logger: quiet }),
    ).rejects.toThrow(
      /refusing to serve the API on 0\.0\.0\.0 without configured tokens.*api\.tokens/,
    );
  });
});
