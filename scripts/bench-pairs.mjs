#!/usr/bin/env node
// Interleaved before/after pairs of the issue-15 benchmarks, the way BENCHMARKS.md's "quiet
// figures" sections were measured: two built checkouts (e.g. a worktree of the base commit and
// this one, each after `npm run build`), each bench run on one side then the other, the order
// reversed every other pair (so neither side always runs on the warmer or quieter minute), then
// the medians of every number each bench's last JSON line holds (nested ones as a.b).
//
//   node scripts/bench-pairs.mjs <base dir> <main dir> [pairs] [--log file] [--only name,...]
//
// pairs: 5 by default. --log keeps every run's JSON line (side | bench | line). --only picks
// benches by name (one-task, fanout, chain, pg-one-task, pg-fanout, pg-chain, latency, recovery;
// and, only when named, cpu-fanout and cpu-chain: CPU per tree by thread, no raw limit; and
// cpu-pg-one-task, cpu-pg-fanout, cpu-pg-chain: the PostgreSQL node's CPU per unit, warm).
// The PostgreSQL benches skip themselves without a server at COCO_PG_URL. On a shared machine
// the wall-clock figures swing ±20–30 % between minutes: quote medians and the load average
// (printed per side), and prefer the CPU figures the benches print.
import { spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Each bench: its name, node arguments and extra environment (sizes as in BENCHMARKS.md). */
const BENCHES = [
  { name: 'one-task', args: ['--expose-gc', 'dist/bench/one-task.js'] },
  { name: 'fanout', args: ['--expose-gc', 'dist/bench/run.js', 'fanout'] },
  { name: 'chain', args: ['--expose-gc', 'dist/bench/run.js', 'chain'] },
  // CPU per tree by thread (schedstat; no raw limit): steadier than the rates when the machine
  // is noisy. Only when named.
  ...['fanout', 'chain'].map((kind) => ({
    name: `cpu-${kind}`,
    args: ['--expose-gc', 'dist/bench/trees.js', kind],
    env: { BENCH_NO_RAW: '1', BENCH_TRACE: '1' },
    named: true,
  })),
  {
    name: 'pg-one-task',
    args: ['dist/bench/pg.js', 'one-task', 'nodes=1'],
    env: { BENCH_REPEATS: '1' },
  },
  {
    name: 'pg-fanout',
    args: ['dist/bench/pg.js', 'fanout', 'nodes=1'],
    env: { BENCH_REPEATS: '1' },
  },
  { name: 'pg-chain', args: ['dist/bench/pg.js', 'chain', 'nodes=1'], env: { BENCH_REPEATS: '1' } },
  // The PostgreSQL node's CPU per unit, warm (three runs, the first of them pays what JIT is left
  // after the warm-up; no raw limit): steadier than the one-run pairs above, whose tree runs
  // last half a second with the JIT in them. Only when named.
  ...['one-task', 'fanout', 'chain'].map((pattern) => ({
    name: `cpu-pg-${pattern}`,
    args: ['dist/bench/pg.js', pattern, 'nodes=1'],
    env: { BENCH_NO_RAW: '1', BENCH_REPEATS: '3' },
    named: true,
  })),
  {
    name: 'latency',
    args: ['--expose-gc', 'dist/bench/latency.js'],
    env: { BENCH_LATENCY_N: '1500' },
  },
  // Each side keeps its own filled store (filled by its first run), copied for every run.
  { name: 'recovery', args: ['--expose-gc', 'dist/bench/recovery.js'], side: 'BENCH_RECOVERY_DB' },
];

function usage(message) {
  if (message) console.error(message);
  console.error(
    'usage: node scripts/bench-pairs.mjs <base dir> <main dir> [pairs] [--log file] [--only a,b]',
  );
  process.exit(2);
}

const positional = [];
let log = null;
let only = null;
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--log') log = process.argv[++i] ?? usage('--log needs a file');
  else if (a === '--only') only = (process.argv[++i] ?? usage('--only needs names')).split(',');
  else positional.push(a);
}
const [baseDir, mainDir, pairsArg] = positional;
if (!baseDir || !mainDir) usage();
const pairs = pairsArg === undefined ? 5 : Number(pairsArg);
if (!Number.isInteger(pairs) || pairs < 1)
  usage(`pairs must be a positive integer, not ${pairsArg}`);
const benches =
  only === null ? BENCHES.filter((b) => !b.named) : BENCHES.filter((b) => only.includes(b.name));
if (benches.length === 0) usage(`--only: none of ${only.join(', ')} is a bench here`);
const sides = { base: resolve(baseDir), main: resolve(mainDir) };
const tag = `${process.pid}`;

/** side -> bench -> key -> values */
const values = { base: new Map(), main: new Map() };

function record(side, bench, json, prefix = '') {
  for (const [key, value] of Object.entries(json)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      record(side, bench, value, `${prefix}${key}.`);
    } else if (typeof value === 'number' && Number.isFinite(value)) {
      const byKey = values[side].get(bench) ?? new Map();
      values[side].set(bench, byKey);
      const list = byKey.get(prefix + key) ?? [];
      byKey.set(prefix + key, list);
      list.push(value);
    }
  }
}

function runSide(side) {
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  console.log(`=== ${side} ${new Date().toISOString().slice(11, 19)} load ${load}`);
  for (const bench of benches) {
    const env = { ...process.env, ...bench.env };
    if (bench.side) env[bench.side] = join('/tmp', `bench-pairs-${tag}-${side}.db`);
    const r = spawnSync(process.execPath, bench.args, {
      cwd: sides[side],
      env,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    const last = (r.stdout ?? '').trim().split('\n').at(-1) ?? '';
    let json = null;
    try {
      json = JSON.parse(last);
    } catch {
      console.log(
        `  ${side} ${bench.name}: no JSON line (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').at(-1)}`,
      );
      continue;
    }
    if (log !== null) appendFileSync(log, `${side} | ${bench.name} | ${last}\n`);
    record(side, bench.name, json);
    const ratio = typeof json.ratio === 'number' ? ` (× raw ${json.ratio})` : '';
    console.log(`  ${side} ${bench.name}: ${json.value} ${json.unit ?? ''}${ratio}`);
  }
}

for (let i = 0; i < pairs; i++) {
  const order = i % 2 === 0 ? ['base', 'main'] : ['main', 'base'];
  for (const side of order) runSide(side);
}
for (const side of Object.keys(sides))
  rmSync(join('/tmp', `bench-pairs-${tag}-${side}.db`), { force: true });

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x) => (x === undefined ? '-' : Number(x.toPrecision(4)).toString());
console.log('\nmedians (base → main, runs per side):');
for (const bench of benches) {
  const keys = new Set([
    ...(values.base.get(bench.name)?.keys() ?? []),
    ...(values.main.get(bench.name)?.keys() ?? []),
  ]);
  for (const key of keys) {
    const b = values.base.get(bench.name)?.get(key) ?? [];
    const m = values.main.get(bench.name)?.get(key) ?? [];
    console.log(
      `  ${bench.name.padEnd(12)} ${key.padEnd(34)} ${fmt(b.length ? median(b) : undefined).padStart(10)} → ${fmt(m.length ? median(m) : undefined).padEnd(10)} (${b.length}/${m.length})`,
    );
  }
}
