/**
 * `npm run bench [-- name...]`: runs the benchmarks (all, or the named ones), each in its own
 * process so heaps and files do not mix. Each prints human lines and, last, one JSON line.
 * Names: one-task, fanout, chain, memory, recovery, agents-http, pg (coco on PostgreSQL at
 * COCO_PG_URL with 1, 2 and 3 nodes, all three patterns; it says it is skipped and passes when no
 * server answers); and, only when named, pg-one-task, pg-fanout, pg-chain (one pattern of pg,
 * one node, its JSON line last)
 * peers (graphile-worker and pg-boss on PostgreSQL at COCO_PG_URL, see bench/peers/) and
 * retention (the store's size under a steady workload with and without retention, SQLite then
 * PostgreSQL), api (the node's HTTP API under load: submits/s and gets/s) and dashboard (the
 * jobs list's first page with 10,000 jobs, API and browser), growth (one-task on a store
 * already holding 0, 1,000,000 and 10,000,000 ended commands; SQLite) and latency (one command
 * at a time: a task's end to its command's durable end, SQLite and PostgreSQL) and pg-cost (what a
 * command costs the PostgreSQL server: WAL bytes, rows, transactions, CPU; one node) and
 * root-queue (100,000 roots of a paused type queued, then admitted by its resume: CPU ms).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
/** Each benchmark's processes, run one after the other: `[file, ...args]` each. */
const BENCHES: Record<string, string[][]> = {
  'one-task': [[`one-task${ext}`]],
  fanout: [[`trees${ext}`, 'fanout']],
  chain: [[`trees${ext}`, 'chain']],
  memory: [[`memory${ext}`]],
  recovery: [[`recovery${ext}`]],
  'agents-http': [[`agents-http${ext}`]],
  latency: [[`latency${ext}`]],
  api: [[`api${ext}`]],
  growth: [
    [`one-task${ext}`, 'prefill=0'],
    [`one-task${ext}`, 'prefill=1000000'],
    [`one-task${ext}`, 'prefill=10000000'],
  ],
  dashboard: [[`dashboard${ext}`]],
  pg: [[`pg${ext}`]],
  'pg-one-task': [[`pg${ext}`, 'one-task', 'nodes=1']],
  'pg-fanout': [[`pg${ext}`, 'fanout', 'nodes=1']],
  'pg-chain': [[`pg${ext}`, 'chain', 'nodes=1']],
  'pg-cost': [[`pg-cost${ext}`]],
  'root-queue': [[`root-queue${ext}`]],
  peers: [[`peers/graphile-worker${ext}`], [`peers/pg-boss${ext}`]],
  retention: [
    [`retention${ext}`, 'sqlite'],
    [`retention${ext}`, 'postgres'],
  ],
};
/**
 * Run only when named: the peers measure other libraries, not coco; the pg-* names are parts of
 * `pg`, which the default run includes; retention measures sizes over minutes, not speed; api
 * loads the HTTP server for 20 s; dashboard needs a browser and runs 10,000 jobs first; growth
 * writes 11 million rows first (minutes, ~3 GB of disk); latency measures one command at a time,
 * not throughput, and wants a PostgreSQL server; pg-cost reads the server's counters (a minute
 * per pattern, most of it waiting for statistics to be flushed); root-queue measures one part
 * (root admission) alone.
 */
const OPT_IN = new Set([
  'peers',
  'pg-one-task',
  'pg-fanout',
  'pg-chain',
  'retention',
  'api',
  'dashboard',
  'growth',
  'latency',
  'pg-cost',
  'root-queue',
]);
const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const name of names) {
  if (!BENCHES[name]) {
    console.error(`unknown benchmark "${name}"; choose from: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
}
let failed = 0;
const all = Object.keys(BENCHES).filter((name) => !OPT_IN.has(name));
for (const name of names.length > 0 ? names : all) {
  for (const [file, ...args] of BENCHES[name]!) {
    const execArgv = ['--expose-gc', ...(ext === '.ts' ? ['--import', 'tsx'] : [])];
    const run = spawnSync(process.execPath, [...execArgv, join(here, file!), ...args], {
      stdio: 'inherit',
      env: process.env,
    });
    if (run.status !== 0) {
      failed++;
      console.error(`benchmark ${name} (${file}) failed (exit ${run.status ?? run.signal})`);
    }
  }
}
process.exit(failed > 0 ? 1 : 0);
