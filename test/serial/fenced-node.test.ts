/**
 * A node fenced after its database was away longer than its lease (issue 10, item 8). Three
 * `coco serve` processes share a PostgreSQL server of their own (a second cluster this test
 * creates, so the shared server is never disturbed) with a 6 s lease; the server is stopped for
 * longer than the lease. Two nodes are also paused (SIGSTOP) meanwhile, so that when the server
 * is back the third one fences them (a node that is first back simply renews its expired lease:
 * nobody took its work). Resumed, the fenced node configured `onLeaseLost: rejoin` halts and
 * rejoins as a fresh node (a new node id), its trees claimed like any others; the one configured
 * `onLeaseLost: exit` exits with 75. Health never says ok for a halted engine; afterwards every
 * acknowledged command has ended, once, and the rejoined node takes work again.
 *
 * It needs root and pg_createcluster (a local Debian PostgreSQL); elsewhere it is skipped,
 * loudly (required when COCO_REQUIRE_PG=1).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { z } from 'zod';
import { ApiClient } from '../../src/cli/client.js';
import { TOKENS, testTokens } from '../support/api.js';
import { postgresStore } from '../../src/store/postgres/pg-store.js';
import {
  freePort,
  startAgentProcess,
  startServeProcess,
  type CocoProcess,
} from '../e2e/support.js';
import { tempDir } from '../support/harness.js';
import { PG_REQUIRED } from '../support/pg.js';

const CLUSTER = 'cocofence';
const PORT = Number(process.env.COCO_FENCE_PG_PORT ?? 5439);
const URL_BASE = `postgres://postgres@127.0.0.1:${PORT}/postgres`;
/** Short, so that an outage outlasts it quickly; ≥ 3 agent call timeouts (1 s in the config). */
const LEASE_MS = 6_000;
/** Longer than the lease, with room: every lease has expired when the server comes back. */
const OUTAGE_MS = 9_000;

function cannotRun(): string | null {
  if (process.getuid?.() !== 0) return 'managing a PostgreSQL cluster needs root';
  if (!existsSync('/usr/bin/pg_createcluster') || !existsSync('/etc/postgresql'))
    return 'pg_createcluster or /etc/postgresql is missing';
  return null;
}
const why = cannotRun();
if (why !== null) {
  if (PG_REQUIRED) throw new Error(`COCO_REQUIRE_PG=1 but the fenced-node test cannot run: ${why}`);
  console.warn(`\n!!! the fenced-node test is SKIPPED: ${why}\n`);
}

const version = (): string => readdirSync('/etc/postgresql')[0]!;
const pgctl = (action: 'start' | 'stop'): void => {
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version(), CLUSTER, action], {
    stdio: 'inherit',
  });
};
const dropCluster = (): void => {
  try {
    execFileSync('pg_dropcluster', ['--stop', version(), CLUSTER], { stdio: 'ignore' });
  } catch {
    // not there
  }
};

const healthOf = z.object({ ok: z.boolean(), state: z.string(), nodeId: z.string() }).passthrough();

async function health(url: string): Promise<z.infer<typeof healthOf> | null> {
  try {
    const res = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(1_000) });
    return healthOf.parse(await res.json());
  } catch {
    return null;
  }
}

const processes: CocoProcess[] = [];
let dir = '';

describe.skipIf(why !== null)('a node fenced after a database outage longer than its lease', () => {
  beforeAll(() => {
    dropCluster();
    execFileSync(
      'pg_createcluster',
      [version(), CLUSTER, '-p', String(PORT), '--', '--auth=trust'],
      { stdio: 'ignore' },
    );
    pgctl('start');
    dir = tempDir('coco-fence-');
  }, 60_000);

  afterAll(() => {
    for (const p of processes) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    dropCluster();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('rejoins as a fresh node (or exits 75 if so configured); health never says ok while halted; every command ends once', async () => {
    const secret = 'fenced-node-test-shared-secret';
    const agent = await startAgentProcess({
      id: 'host-1',
      port: await freePort(),
      dataDir: join(dir, 'agent'),
      storageRoot: join(dir, 'storage'),
      secret,
    });
    processes.push(agent);
    const schema = `fence_${process.pid}`;
    const store = `${URL_BASE}?schema=${schema}&leaseMs=${LEASE_MS}`;
    const nodes: { name: string; url: string; proc: CocoProcess }[] = [];
    for (const [name, onLeaseLost] of [
      ['fa', 'rejoin'],
      ['fb', 'rejoin'],
      ['fx', 'exit'],
    ] as const) {
      const port = await freePort();
      const config = join(dir, `${name}.json`);
      writeFileSync(
        config,
        JSON.stringify({
          store,
          nodeId: name,
          onLeaseLost,
          api: { port, tokens: testTokens() },
          agents: [{ id: 'host-1', url: agent.url, secret }],
          commands: [new URL('./fixtures/fence-commands.ts', import.meta.url).pathname],
          tuning: { agentCallTimeoutMs: 1_000, pollIntervalMs: 100, claimIntervalMs: 250 },
        }),
      );
      const proc = await startServeProcess(config);
      processes.push(proc);
      nodes.push({ name, url: `http://127.0.0.1:${port}`, proc });
    }
    const [fa, fb, fx] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];

    // Work in flight on the rejoining nodes when the server goes away.
    const ids: number[] = [];
    for (let i = 0; i < 12; i++) {
      const api = new ApiClient(i % 2 === 0 ? fa.url : fb.url, TOKENS.admin);
      const { id } = z
        .object({ id: z.number() })
        .parse(await api.post('/v1/commands', { type: 'fence.sleep', params: { ms: 3_000 } }));
      ids.push(id);
    }

    pgctl('stop');
    fa.proc.child.kill('SIGSTOP');
    fx.proc.child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    pgctl('start');
    // fb, back first, fences the two paused nodes (their leases have expired).
    const admin = new pg.Client({ connectionString: URL_BASE });
    await admin.connect();
    try {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const r = await admin.query<{ node_id: string }>(
          `SELECT node_id FROM "${schema}".coco_nodes WHERE fenced AND node_id IN ('fa', 'fx')`,
        );
        if (r.rowCount === 2) break;
        if (Date.now() > deadline) throw new Error('fb did not fence the paused nodes');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await admin.end();
    }
    fa.proc.child.kill('SIGCONT');
    fx.proc.child.kill('SIGCONT');

    // fa finds out, halts and rejoins under a new id: once it halted, its health is never ok
    // until it runs again as a fresh node. The exit-configured node exits with 75.
    const seen: string[] = [];
    const deadline = Date.now() + 90_000;
    let haltedSeen = false;
    for (;;) {
      const h = await health(fa.url);
      if (h) seen.push(`${h.nodeId}:${h.state}:${h.ok}`);
      if (h && h.state !== 'running') {
        haltedSeen = true;
        expect(h.ok).toBe(false);
      }
      if (h?.ok && h.nodeId !== 'fa') break;
      if (Date.now() > deadline) throw new Error(`fa did not rejoin: ${seen.slice(-5).join(' ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen.at(-1)).toMatch(/^fa-r\d+:running:true$/);
    console.log(`fenced-node test: fa's health ${seen.join(' ')} (halted seen: ${haltedSeen})`);
    expect(await fx.proc.exited).toBe(75);
    expect(fx.proc.stderr()).toMatch(/lease lost: this node exits/);

    // Every acknowledged command ends, once; the rejoined nodes took work again.
    const verifier = postgresStore({ url: URL_BASE, schema });
    try {
      for (const id of ids) {
        for (;;) {
          const c = await verifier.getCommand(id);
          if (c && c.status === 'succeeded' && c.tasksCleared) break;
          if (c && ['failed', 'cancelled'].includes(c.status))
            throw new Error(`command ${id} ${c.status}: ${c.error?.message}`);
          if (Date.now() > deadline) throw new Error(`command ${id} did not end: ${c?.status}`);
          await new Promise((r) => setTimeout(r, 200));
        }
        const tasks = await verifier.getTasks(id);
        expect(tasks.map((t) => t.status)).toEqual(['succeeded']);
      }
      const after = new ApiClient(fa.url, TOKENS.admin);
      const { id } = z
        .object({ id: z.number() })
        .parse(await after.post('/v1/commands', { type: 'fence.sleep', params: { ms: 10 } }));
      for (;;) {
        const c = await verifier.getCommand(id);
        if (c?.status === 'succeeded') break;
        if (Date.now() > deadline) throw new Error(`the rejoined node did not run command ${id}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await verifier.close();
    }
    for (const n of [fa, fb]) {
      n.proc.child.kill('SIGTERM');
      expect(await n.proc.exited).toBe(0);
    }
  }, 180_000);
});
