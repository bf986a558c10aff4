/**
 * PostgreSQL restarted mid-run (`pg_ctlcluster … restart`): two node processes share a mixed
 * workload; the server goes away and comes back while batches, claims, leases and relayed
 * reports are in flight. The nodes reconnect and go on: every command ends exactly once, every
 * task is started and cleared once, nothing acknowledged is lost. A node whose lease runs out
 * anyway (the restart took longer than the lease on a loaded machine) rejoins as a fresh node.
 *
 * Restarting the server disturbs every other test using it, so this file runs alone, after the
 * main run (vitest.serial.config.ts). It needs a local cluster it may restart (root, with
 * pg_ctlcluster); elsewhere it is skipped, loudly.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { postgresStore } from '../../src/store/postgres/pg-store.js';
import { PollRecorder, spawnNode, until, type NodeProcess } from '../cluster/fixtures/nodes.js';
import { verifyWorkload } from '../recovery/fixtures/verify.js';
import { randomWorkload, rng, type Submission } from '../recovery/fixtures/workload.js';
import { describePg, freshSchema, PG_REQUIRED, PG_URL } from '../support/pg.js';

const SEED = Number(process.env.COCO_CLUSTER_SEED ?? Date.now() % 1_000_000);
const AGENTS = ['h1', 'h2', 'h3'];
/** Longer than the restart takes (~1–3 s), so that no node loses its lease meanwhile. */
const LEASE_MS = 10_000;

/** Why the server cannot be restarted here, or null if it can. */
function cannotRestart(): string | null {
  if (!['127.0.0.1', 'localhost'].includes(new URL(PG_URL).hostname))
    return `the server at ${PG_URL} is not local`;
  if (process.getuid?.() !== 0) return 'restarting the cluster needs root';
  if (!existsSync('/usr/bin/pg_ctlcluster') || !existsSync('/etc/postgresql'))
    return 'pg_ctlcluster or /etc/postgresql is missing';
  return null;
}

function restartServer(): void {
  const version = readdirSync('/etc/postgresql')[0]!;
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'restart'], {
    stdio: 'inherit',
  });
}

const nodes: NodeProcess[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) if (n.child.exitCode === null) n.child.kill('SIGKILL');
  for (const c of cleanups.splice(0)) await c().catch(() => undefined);
});

const why = cannotRestart();
if (why !== null) {
  if (PG_REQUIRED)
    throw new Error(`COCO_REQUIRE_PG=1 but the PostgreSQL restart test cannot run: ${why}`);
  console.warn(`\n!!! the PostgreSQL restart test is SKIPPED: ${why}\n`);
}

describePg('PostgreSQL restarted mid-run', () => {
  it.skipIf(why !== null)(
    'two nodes ride out a server restart: nothing lost, nothing doubled',
    async () => {
      // Printed first, so that a failure anywhere below can be replayed (COCO_CLUSTER_SEED).
      console.log(`pg restart test: seed ${SEED}`);
      const fresh = freshSchema('coco_restart');
      cleanups.push(() => fresh.drop());
      const agents = inProcessAgents(AGENTS);
      const recorder = new PollRecorder();
      const settings = {
        url: PG_URL,
        schema: fresh.schema,
        leaseMs: LEASE_MS,
        agents,
        recorder,
        pollMs: 3,
      };
      const started = ['r1', 'r2'].map((name) => spawnNode(name, settings));
      nodes.push(...started);
      await Promise.all(started.map((n) => n.ready));

      const random = rng(SEED);
      const items = randomWorkload(random, 400, AGENTS);
      const submitted = new Map<number, Submission>();
      const BATCH = 20;
      const acks: Promise<void>[] = [];
      let restarted = false;
      for (let b = 0; b * BATCH < items.length; b++) {
        const batch = items.slice(b * BATCH, (b + 1) * BATCH);
        acks.push(
          started[b % 2]!.submit(b, batch).then((ids) =>
            ids.forEach((id, i) => submitted.set(id, batch[i]!)),
          ),
        );
        if (b === 8) {
          await new Promise((r) => setTimeout(r, 200 + Math.floor(random() * 300)));
          restartServer();
          restarted = true;
        }
      }
      // Every submit is acknowledged: the nodes kept them through the outage.
      await Promise.all(acks);
      expect(restarted).toBe(true);

      const verifier = postgresStore({ url: PG_URL, schema: fresh.schema });
      cleanups.unshift(() => verifier.close());
      const { storeId } = await verifier.identity();
      await until(
        'every command to end and settle',
        async () => (await verifier.loadActive()).commands.length === 0,
        120_000,
      );
      const summary = await verifyWorkload(verifier, storeId, agents, AGENTS, submitted);
      console.log('pg restart test: summary', summary);
      expect(summary.commands).toBeGreaterThan(1_000);
      expect(recorder.overlaps).toEqual([]);
      for (const n of started) {
        // A node whose lease ran out anyway (a loaded machine) rejoined as a fresh node: allowed.
        n.child.send({ kind: 'stop' });
        const stats = await n.stats;
        console.log(
          `pg restart test: ${n.name} longest event-loop stall ${stats.maxLoopDelayMs} ms, ` +
            `lost leases ${stats.halts}${n.rejoinedAs.length ? `, rejoined as ${n.rejoinedAs.join(', ')}` : ''}`,
        );
        expect(stats.halts).toBe(n.rejoinedAs.length);
        expect(await n.exited).toBe(0);
      }
    },
    240_000,
  );
});
