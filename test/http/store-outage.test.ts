/**
 * The API while the node's store takes no write (its PostgreSQL server down behind a cutting
 * proxy): a submit made before the outage was known waits and is answered 201 once the server is
 * back; once `storeOutageMs` has passed, readiness says why and a submit is answered 503
 * `STORE_FAILED` at once with a `Retry-After`, and nothing of it is stored; the metrics show how
 * long the store has owed its oldest batch.
 */
import { afterAll, expect, it } from 'vitest';
import { CuttingProxy, until } from '../store-conformance/pg-harness.js';
import { TOKENS } from '../support/api.js';
import { adminQuery, describePg, freshSchema } from '../support/pg.js';
import { SLOW_OPEN_MS, SLOW_OPEN_TEXT } from '../../src/server/node.js';
import { codeOf, startApiNode, type ApiNode } from './support.js';

const proxy = new CuttingProxy();
let listening: Promise<string> | undefined;
/** The proxy's URL (it listens once for both tests). */
const proxied = (): Promise<string> => (listening ??= proxy.start());
const fresh = freshSchema('coco_api_outage');
let node: ApiNode | undefined;
afterAll(async () => {
  proxy.refuse = false;
  await node?.close();
  await proxy.stop();
  await fresh.drop();
});

describePg('a node started while its store does not answer', () => {
  it('says so after SLOW_OPEN_MS, without the password, and starts once the store answers', async () => {
    const url = new URL(await proxied());
    url.password = 'not-a-real-password';
    url.searchParams.set('schema', `${fresh.schema}_slow`);
    // Refused until the start has said that it waits.
    proxy.refuse = true;
    const slow = await startApiNode({
      store: url.toString(),
      onLog: (l) => {
        if (String(l.msg).startsWith(SLOW_OPEN_TEXT)) proxy.refuse = false;
      },
    });
    try {
      const line = slow.logs.find((l) => String(l.msg).startsWith(SLOW_OPEN_TEXT));
      expect(line).toMatchObject({ level: 40, waitedMs: SLOW_OPEN_MS });
      expect(slow.logText()).not.toContain('not-a-real-password');
      expect((await slow.call('GET', '/v1/ready')).status).toBe(200);
    } finally {
      await slow.close();
      await adminQuery(`DROP SCHEMA IF EXISTS "${fresh.schema}_slow" CASCADE`);
    }
  }, 60_000);
});

describePg('the API during a store outage', () => {
  it('answers 503 STORE_FAILED with Retry-After once the store has taken no write for storeOutageMs', async () => {
    const url = new URL(await proxied());
    url.searchParams.set('schema', fresh.schema);
    // A lease far longer than the test: the node must not halt meanwhile.
    url.searchParams.set('leaseMs', '60000');
    node = await startApiNode({ store: url.toString(), tuning: { storeOutageMs: 400 } });
    const api = node;
    const submit = (note: string): ReturnType<ApiNode['call']> =>
      api.call('POST', '/v1/commands', { body: { type: 'api.work', params: { note } } });
    expect((await submit('before')).status).toBe(201);

    proxy.refuse = true;
    proxy.cutAll();
    const waiting = submit('taken');
    let seen: unknown;
    await until(
      'readiness to report the outage',
      async () => {
        const r = await api.call('GET', '/v1/ready');
        seen = r.body;
        return (
          r.status === 503 && /taken no write/.test((r.body as { reason?: string }).reason ?? '')
        );
      },
      10_000,
    );
    // With a token, what failed; without (a public probe), only the reason.
    expect(seen).toMatchObject({
      ready: false,
      reason: expect.stringMatching(/^the store has taken no write for [\d.]+ s$/) as unknown,
      detail: 'no answer',
    });
    const probe = await api.call('GET', '/v1/ready', { role: null });
    expect(probe.status).toBe(503);
    expect(probe.body).not.toHaveProperty('detail');

    const refused = await fetch(`${api.url}/v1/commands`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.operator}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'api.work', params: { note: 'refused' } }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    const body: unknown = await refused.json();
    expect(codeOf(body)).toBe('STORE_FAILED');
    expect(body).toMatchObject({ error: { details: { lastError: null } } });
    // Expected while the outage lasts: a warning with the code, not an error with a stack.
    const refusal = api.logs.filter((l) => /^API call (refused|failed)/.test(String(l.msg)));
    expect(refusal).toHaveLength(1);
    expect(refusal[0]).toMatchObject({ level: 40, code: 'STORE_FAILED' });
    expect(refusal[0]).not.toHaveProperty('err');

    const gauge = async (): Promise<number> => {
      const text = (await api.call('GET', '/metrics')).body as string;
      return Number(/^coco_store_write_wait_seconds (\S+)$/m.exec(text)?.[1]);
    };
    expect(await gauge()).toBeGreaterThanOrEqual(0.4);

    proxy.refuse = false;
    expect((await waiting).status).toBe(201);
    await until(
      'the node to be ready again',
      async () => (await api.call('GET', '/v1/ready')).status === 200,
      10_000,
    );
    expect((await submit('after')).status).toBe(201);
    expect(await gauge()).toBeLessThan(0.4);
    const { rows } = await adminQuery(
      `SELECT params::jsonb->>'note' AS note FROM "${fresh.schema}".commands ORDER BY id`,
    );
    expect(rows.map((r: { note: string }) => r.note)).toEqual(['before', 'taken', 'after']);
  });
});
