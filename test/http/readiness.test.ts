/**
 * Readiness on PostgreSQL, with real `coco serve` processes: false while the store does not
 * answer (with the reason), false on a node whose lease was lost while it rejoins, true again
 * once it has. Node A reaches the database through a cutting proxy (in this process); node B,
 * direct, fences A while the proxy refuses A.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CuttingProxy, until } from '../store-conformance/pg-harness.js';
import { startServeProcess, type CocoProcess } from '../e2e/support.js';
import { authGet, testTokens } from '../support/api.js';
import { tempDir } from '../support/harness.js';
import { adminQuery, describePg, freshSchema, PG_URL } from '../support/pg.js';

describePg('readiness on PostgreSQL (real node processes)', () => {
  const fresh = freshSchema('coco_ready');
  const proxy = new CuttingProxy();
  const dir = tempDir('coco-ready-');
  const nodes: CocoProcess[] = [];
  let proxied = '';

  const storeUrl = (base: string): string => {
    const u = new URL(base);
    u.searchParams.set('schema', fresh.schema);
    // A short lease: B fences A within seconds of A losing the database.
    u.searchParams.set('leaseMs', '1500');
    return u.toString();
  };
  /** Starts `coco serve` as node `nodeId` on the store at `base`; resolves with its API URL. */
  const start = async (base: string, nodeId: string): Promise<string> => {
    const config = join(dir, `${nodeId}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        store: storeUrl(base),
        nodeId,
        api: { port: 0, tokens: testTokens() }, // any free port: the node reports it
        // An agent nobody runs: the node needs one configured, and never reaches it here.
        agents: [{ id: 'h1', url: 'http://127.0.0.1:9', secret: 'readiness-test-secret-0123' }],
        tuning: { agentCallTimeoutMs: 400 },
      }),
    );
    const node = await startServeProcess(config, { COCO_LOG_LEVEL: 'info' });
    nodes.push(node);
    return node.url;
  };
  const ready = async (
    url: string,
  ): Promise<{ ready: boolean; nodeId: string; reason?: string }> => {
    const res = await authGet(`${url}/v1/ready`);
    const body = (await res.json()) as {
      ready: boolean;
      nodeId: string;
      reason?: string;
      detail?: string;
    };
    // With a token, the failure behind the reason too: both are looked at.
    if (body.detail) body.reason = `${body.reason} (${body.detail})`;
    expect(res.status).toBe(body.ready ? 200 : 503);
    return body;
  };

  beforeAll(async () => {
    proxied = await proxy.start();
  });
  afterAll(async () => {
    proxy.refuse = false;
    for (const n of nodes) {
      n.child.kill('SIGTERM');
      await n.exited;
    }
    await proxy.stop();
    await fresh.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is false while the store is unreachable and after the lease was lost, true once rejoined', async () => {
    const a = await start(proxied, 'ready-a');
    expect(await ready(a)).toMatchObject({ ready: true });

    // The database goes away for A.
    proxy.refuse = true;
    proxy.cutAll();
    let seen = '';
    await until(
      'A to say it is not ready',
      async () => {
        const r = await ready(a);
        seen = r.reason ?? '';
        return !r.ready;
      },
      15_000,
    );
    expect(seen).toMatch(/store|LEASE_LOST|halted|rejoining/);

    // B fences A once A's lease has run out.
    const b = await start(PG_URL, 'ready-b');
    expect(await ready(b)).toMatchObject({ ready: true });
    await until(
      'B to fence A',
      async () =>
        (
          await adminQuery(
            `SELECT 1 FROM ${fresh.schema}.coco_nodes WHERE node_id = 'ready-a' AND fenced`,
          )
        ).rowCount === 1,
      20_000,
    );
    expect((await ready(a)).ready).toBe(false);

    // The database is back: A learns it lost its lease (its engine halts: not ready), rejoins
    // as a fresh node, and is ready again.
    const reasons = new Set<string>();
    proxy.refuse = false;
    await until(
      'A to be ready again',
      async () => {
        const r = await ready(a);
        if (r.reason) reasons.add(r.reason);
        return r.ready;
      },
      30_000,
    );
    expect((await ready(a)).nodeId).toMatch(/^ready-a-r\d+$/);
    expect([...reasons].join(' | ')).toMatch(/LEASE_LOST|rejoining/);
  }, 90_000);
});
