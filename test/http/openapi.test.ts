/**
 * The OpenAPI document: valid OpenAPI 3.1, and no drift — every route the server has is in it
 * with its role, and real answers validate against the schemas it publishes.
 */
import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/http/api.js';
import { errorAnswer } from '../../src/http/contracts.js';
import { startApiNode, work, type ApiNode } from './support.js';

let api: ApiNode;
let doc: {
  openapi: string;
  paths: Record<string, Record<string, { 'x-coco-role': string; responses: object }>>;
  components: { schemas: Record<string, unknown> };
};
beforeAll(async () => {
  api = await startApiNode();
  doc = (await api.call('GET', '/openapi.json', { role: null })).body as typeof doc;
});
afterAll(async () => {
  await api.close();
});

describe('/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toBe('3.1.0');
    await SwaggerParser.validate(structuredClone(doc) as never);
  });

  it('lists every route the server has, with the role it enforces (drift)', async () => {
    const { app, served } = buildApi({ engine: api.node.engine, commands: [work], tokens: [] });
    await app.ready();
    // The JSON API: /v1 and this document (other parts add /metrics and static files).
    const routes = served
      .filter((r) => r.url.startsWith('/v1/') || r.url === '/openapi.json')
      .map((r) => `${r.method} ${r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')} ${r.role}`);
    const described = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([m, op]) => `${m.toUpperCase()} ${path} ${op['x-coco-role']}`),
    );
    expect(routes.length).toBeGreaterThan(10);
    expect(described.sort()).toEqual(routes.sort());
    await app.close();
  });

  it('answers match the contracts the document is generated from, status by status', async () => {
    const { specs } = buildApi({ engine: api.node.engine, commands: [work], tokens: [] }).routes;
    const { id } = await api.node.engine.submit(work, { tasks: 1 });
    await api.node.engine.waitFor(id);
    await api.node.monitor!.flush();
    const calls: [string, string, string, unknown?][] = [
      ['GET', '/v1/commands', '/v1/commands?limit=5'],
      ['GET', '/v1/commands/:id', `/v1/commands/${id}`],
      ['GET', '/v1/jobs', '/v1/jobs'],
      ['GET', '/v1/jobs/:id', `/v1/jobs/${id}`],
      ['GET', '/v1/agents', '/v1/agents'],
      ['GET', '/v1/whoami', '/v1/whoami'],
      ['GET', '/v1/node', '/v1/node'],
      ['GET', '/v1/health', '/v1/health'],
      ['GET', '/v1/ready', '/v1/ready'],
      ['POST', '/v1/commands', '/v1/commands', { type: 'api.work', params: {} }],
      ['POST', '/v1/admin/prune', '/v1/admin/prune', { olderThanMs: 1, dryRun: true }],
      ['GET', '/v1/commands/:id', '/v1/commands/999999'],
      ['POST', '/v1/commands', '/v1/commands', { type: 'nope', params: {} }],
    ];
    for (const [method, route, url, body] of calls) {
      const spec = specs.find((s) => s.method === method && s.url === route)!;
      const r = await api.call(method, url, body === undefined ? {} : { body });
      const path = route.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      // The status is one the document lists for the route.
      expect(Object.keys(doc.paths[path]![method.toLowerCase()]!.responses)).toContain(
        String(r.status),
      );
      if (r.status < 300) {
        if (spec.ok.schema === 'sse') continue;
        const parsed = spec.ok.schema.safeParse(r.body);
        expect(parsed.success, `${method} ${url}: ${JSON.stringify(parsed.error?.issues)}`).toBe(
          true,
        );
        // Nothing beyond the contract (zod's parse drops unknown keys: compare).
        expect(parsed.data).toEqual(r.body);
      } else {
        expect(errorAnswer.safeParse(r.body).success).toBe(true);
      }
    }
  });
});
