/**
 * coco on PostgreSQL with 1, 2 and 3 coordinator nodes: one-task commands, fan-out (1,000 parents
 * × 10 concurrent children) and chain (1,000 parents × 5 serial children), each against the
 * raw-store limit measured in the same run (bench/raw-pg.ts).
 *
 * For each (pattern, nodes) this process creates a fresh schema (random name; dropped at the
 * end, also on error) on the server at `COCO_PG_URL`, forks that many node processes
 * (bench/pg-node.ts: each an engine on `postgresStore` with its own in-process agent), waits
 * until every node has warmed up, then sends `go` to all at once and times the wall clock until
 * the last node reports its share ended durably. The total work is fixed and split evenly. Each
 * (pattern, nodes) is measured `BENCH_REPEATS` times; the figure is the median. After each run
 * (interleaved, so that both see the same window of a shared machine) the nodes measure the
 * raw-store limit the same way: all nodes applying their share of the row writes counted so far
 * at once, straight through `PostgresStore.apply`, their engines idle.
 *
 * Durable: every connection runs with `synchronous_commit=on` (the server's default, forced), so
 * a batch is acknowledged only once its WAL is flushed. Each (pattern, nodes) also prints where
 * the time went: batches and rows per batch, the nodes' CPU, how long each node's main thread
 * waited for a CPU (the run queue, schedstat), how long each node's store had a batch to apply
 * (its batches go one at a time through one connection), how much of that time its server
 * backend was on CPU, and the CPU of the server and of everything else on the machine.
 *
 * `node --import tsx bench/pg.ts [one-task|fanout|chain...]` (or `npm run bench -- pg`). With no
 * server answering at `COCO_PG_URL` it says so and exits 0 (skipped).
 *
 * Environment: `BENCH_PG_NODES` (default `1,2,3`), `BENCH_REPEATS` (3), `BENCH_PG_N` (one-task
 * commands per run, 30,000), `BENCH_PG_PARENTS` (1,000), `BENCH_IN_FLIGHT` (one-task window over
 * all nodes, 10,000), `BENCH_CHUNK` (1,000), `BENCH_PG_TUNING` (JSON engine tuning merged over
 * {@link PG_TUNING}), `BENCH_PG_RAW_N` (20,000) / `BENCH_PG_RAW_PARENTS` (2,000) (raw-limit
 * sample sizes), `BENCH_NO_RAW`, `BENCH_PG_PROF` (a folder: node 1 runs with `--cpu-prof` there),
 * `BENCH_PG_CAPTURE` (a file: node 1 writes there the batches of its last run, which
 * bench/pg-encode.ts replays),
 * `BENCH_PG_WARMUP` (the warm-up each node runs before the measured runs, as a fraction of the
 * run's whole size: 1 by default — a node's JIT and heap are its own, and a shorter warm-up left
 * the first measured run partly cold: BENCHMARKS.md, stop 26; before stop 26 it was a fifth of
 * the size split over the nodes, `BENCH_PG_WARMUP=0.2` for one node),
 * `BENCH_PG_TRACE` (times every statement the nodes send, by name, and prints the totals),
 * `BENCH_PG_LANES` (apply connections per node, the store's `applyConnections`; its default),
 * `BENCH_PG_PEERS` (a file holding the output of `npm run bench -- peers`: prints coco's ratio
 * to the peers' figures), `BENCH_PG_PREFILL` (ended commands the schema holds before the measured
 * runs: the warm-ups' copied, bench/pg-prefill.ts — the cost of a store that has grown),
 * `BENCH_PG_STATS` (after the runs: rows updated, HOT, dead, bytes and WAL per ended command,
 * bench/pg-stats.ts; with `BENCH_NO_RAW`, the raw-limit rows are not counted in),
 * `BENCH_PG_FILL_POOL` (before the measured runs, after any prefill: the server's shared buffers
 * filled with a filler table and checkpointed, so that an empty store's runs, like a grown
 * store's, find no free buffer; bench/pg-prefill.ts `fillPool`), `BENCH_PG_POOL` (per run: the
 * pool's free and dirty buffers at its start, pg_stat_bgwriter's buffer counts over it, and the
 * apply backends' write(2) bytes and CPU per unit), `BENCH_PG_PERF` (a folder: `perf record` of
 * the apply backends over each measured run), `BENCH_PG_KEEP` (a schema name: the runs use that
 * schema, created and migrated on first use, and keep it — with `BENCH_PG_PREFILL`, a store of
 * 10,000,000 ended commands is filled once and measured by later invocations, which copy only
 * what is missing; one (pattern, nodes) per invocation).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import type pg from 'pg';
import type { EngineTuning } from '../src/engine/options.js';
import { postgresStore } from '../src/store/postgres/pg-store.js';
import { BENCH_TUNING, machine, zeroOps, type OpCounts } from './lib.js';
import {
  PATTERNS,
  PG_URL,
  UNITS,
  durableUrl,
  unreachable,
  withClient,
  type NodeRun,
  type Pattern,
  type PerUnit,
} from './pg-common.js';
import { Node, READY_TIMEOUT_MS, RUN_TIMEOUT_MS, children } from './pg-fork.js';
import { fillPool, prefillEndedPg } from './pg-prefill.js';
import { printWaits, sampleWaits } from './pg-waits.js';
import {
  diskMark,
  diskReport,
  printDisk,
  poolSample,
  printPool,
  printStatements,
  resetStatements,
  type DiskMark,
} from './pg-stats.js';
import {
  cpuSample,
  cpuUse,
  peerRatios,
  reportMeasure,
  type CpuUse,
  type Result,
} from './pg-report.js';
import { DEFAULT_APPLY_CONNECTIONS } from '../src/store/postgres/options.js';

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer: ${raw}`);
  return n;
}

/** A positive number from the environment (a fraction or more), or the fallback. */
function positiveFraction(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number: ${raw}`);
  return n;
}

/**
 * Engine tuning on PostgreSQL: the engine's defaults (8 batches in flight on a shared store,
 * `maxBatchRows` 3,000) over the benchmarks' {@link BENCH_TUNING} (1 s poll safety net, id blocks
 * of 50,000). Since a batch is pipelined (applier.ts) its fixed cost is small, so big batches no
 * longer pay: measured on one node, 3–5 runs each, interleaved: 5,000 × 4 in flight beat
 * 20,000 × 2 and 5,000 × 2 on fan-out and chains (stop 7); 3,000 × 8 beat 5,000 × 4 on chains
 * by 15–25%, within 3% on one-task, 4–7% behind on fan-out (stop 8; BENCHMARKS.md).
 */
const PG_TUNING: EngineTuning = { ...BENCH_TUNING };

/** `nodes=1` (an argument, as `npm run bench -- pg-chain` passes) wins over BENCH_PG_NODES. */
const nodesArg = process.argv
  .slice(2)
  .find((a) => a.startsWith('nodes='))
  ?.slice('nodes='.length);
const options = {
  nodes: (nodesArg ?? process.env.BENCH_PG_NODES ?? '1,2,3').split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_PG_NODES: bad node count "${s}"`);
    return n;
  }),
  repeats: positiveInt('BENCH_REPEATS', 3),
  commands: positiveInt('BENCH_PG_N', 30_000),
  parents: positiveInt('BENCH_PG_PARENTS', 1_000),
  inFlight: positiveInt('BENCH_IN_FLIGHT', 10_000),
  chunk: positiveInt('BENCH_CHUNK', 1_000),
  rawCommands: positiveInt('BENCH_PG_RAW_N', 20_000),
  rawParents: positiveInt('BENCH_PG_RAW_PARENTS', 2_000),
  noRaw: Boolean(process.env.BENCH_NO_RAW),
  warmup: positiveFraction('BENCH_PG_WARMUP', 1),
  tuning: {
    ...PG_TUNING,
    ...(JSON.parse(process.env.BENCH_PG_TUNING ?? '{}') as EngineTuning),
  },
  prof: process.env.BENCH_PG_PROF,
  peers: process.env.BENCH_PG_PEERS,
  prefill: process.env.BENCH_PG_PREFILL ? positiveInt('BENCH_PG_PREFILL', 0) : 0,
  stats: Boolean(process.env.BENCH_PG_STATS),
  pool: Boolean(process.env.BENCH_PG_POOL),
  waits: Boolean(process.env.BENCH_PG_WAITS),
  fillPool: Boolean(process.env.BENCH_PG_FILL_POOL),
  perf: process.env.BENCH_PG_PERF,
  keep: process.env.BENCH_PG_KEEP,
};
if (options.keep !== undefined && !/^[a-z_][a-z0-9_]*$/.test(options.keep))
  throw new Error(`BENCH_PG_KEEP: "${options.keep}" is not a plain lower-case schema name`);

/**
 * With `BENCH_PG_PERF` (a folder): `perf record` (software CPU clock, call graphs: VMs rarely
 * expose hardware counters) on the apply backends over one measured run, to
 * `<folder>/<schema>-run<r>.data`; null without the option. perf attaches while the run starts,
 * so the run's first milliseconds may be missed.
 */
function perfRecord(pids: ReadonlySet<number>, schema: string, run: number): ChildProcess | null {
  if (!options.perf || pids.size === 0) return null;
  const out = `${options.perf}/${schema}-run${run}.data`;
  const args = ['record', '-q', '-e', 'cpu-clock', '-F', '999', '-g', '-o', out];
  args.push('-p', [...pids].join(','));
  const child = spawn('perf', args, { stdio: 'ignore' });
  child.on('error', () => undefined);
  return child;
}

/** Stops a {@link perfRecord} and waits until it has written its file. */
async function perfStop(child: ChildProcess | null): Promise<void> {
  // No pid: perf could not be started (not installed); it never emits 'exit' then.
  if (!child || child.pid === undefined || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  await exited;
}

/** Commands (or parents) per raw-store transaction group, as in the SQLite limit. */
const RAW_PER_BATCH = 100;

const patterns: Pattern[] = [];
for (const arg of process.argv.slice(2)) {
  if (arg.startsWith('nodes=')) continue;
  if (!(PATTERNS as readonly string[]).includes(arg)) {
    console.error(`unknown pattern "${arg}"; choose from: ${PATTERNS.join(', ')}`);
    process.exit(2);
  }
  patterns.push(arg as Pattern);
}
if (patterns.length === 0) patterns.push(...PATTERNS);

/**
 * How long a DROP SCHEMA waits for a lock before it gives up: the schema's connections are
 * closed by then (nodes stopped or killed), so a wait means someone else is in it; the schema is
 * then left, named in the error, rather than the benchmark hanging.
 */
const DROP_LOCK_TIMEOUT_MS = 10_000;

const url = durableUrl(PG_URL);
const schemas = new Set<string>();

const admin = <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => withClient(url, fn);

async function dropSchema(schema: string): Promise<void> {
  if (!schemas.delete(schema)) return;
  await admin(async (c) => {
    await c.query(`SET lock_timeout = ${DROP_LOCK_TIMEOUT_MS}`);
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  });
}

async function cleanup(): Promise<void> {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  for (const schema of [...schemas]) {
    await dropSchema(schema).catch((error: unknown) =>
      console.error(`could not drop schema ${schema}: ${String(error)}`),
    );
  }
}

/** Set on SIGINT / SIGTERM: the cleanup is under way, the failures it causes are not news. */
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`pg: ${signal}, stopping the nodes and dropping the schema`);
    void cleanup().finally(() => process.exit(130));
  });
}

// -- one (pattern, nodes) --

function split(total: number, parts: number): number[] {
  return Array.from(
    { length: parts },
    (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0),
  );
}

function sum(a: OpCounts, b: OpCounts): OpCounts {
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof OpCounts)[]) out[k] += b[k];
  return out;
}

async function measure(pattern: Pattern, n: number): Promise<Result> {
  const size = pattern === 'one-task' ? options.commands : options.parents;
  const unit = UNITS[pattern];
  const schema = options.keep ?? `bench_pg_${randomBytes(6).toString('hex')}`;
  // A kept schema is not dropped (dropSchema drops only the schemas listed here).
  if (options.keep === undefined) schemas.add(schema);
  const migrator = postgresStore({ url, schema });
  await migrator.migrate();
  await migrator.close();
  const mark: DiskMark | null = options.stats ? await admin(diskMark) : null;

  const shares = split(size, n);
  // The warm-up (the JIT, the server's plans and caches, the connections): each node runs the
  // whole run's size by default, as a lone node would — the JIT is per process, and it takes
  // ~10,000 commands to settle (issue 15's cold start). With the fifth split over the nodes that
  // this was until stop 26, a lone node's first measured fan-out run ran at half the next ones'
  // rate and its CPU per parent was 15–30 % higher (BENCHMARKS.md, stop 26).
  const warmup = Math.max(1, Math.round(size * options.warmup));
  const warmups = Array<number>(n).fill(warmup);
  const windows = split(options.inFlight, n);
  const nodes: Node[] = [];
  try {
    for (let k = 1; k <= n; k++) {
      const execArgv = [...process.execArgv];
      if (options.prof && k === 1) execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.prof}`);
      nodes.push(
        new Node(
          {
            pattern,
            url,
            schema,
            node: k,
            share: shares[k - 1]!,
            warmup: warmups[k - 1]!,
            inFlight: Math.max(1, windows[k - 1]!),
            chunk: options.chunk,
            tuning: options.tuning,
          },
          execArgv,
        ),
      );
    }
    await Promise.all(nodes.map((node) => node.next('ready', READY_TIMEOUT_MS)));
    if (options.prefill > 0) {
      const f = await admin((c) => prefillEndedPg(c, schema, options.prefill));
      console.log(
        `  store grown by ${f.added} ended commands (copies of the warm-ups') in ${f.seconds.toFixed(1)} s before the measured runs`,
      );
    }
    if (options.fillPool) {
      const f = await admin((c) => fillPool(c, schema));
      console.log(
        `  buffer pool filled: ${Math.round(f.bytes / 1e6)} MB of filler in ${f.seconds.toFixed(1)} s`,
      );
    }

    const statements = options.stats && (await admin(resetStatements));
    const seconds: number[] = [];
    const perRun: NodeRun[][] = [];
    const cpu: CpuUse[] = [];
    // The server processes of the nodes' connections (the store names them after the schema):
    // all of them, and those of the apply connections.
    const backends = await admin(async (c) => {
      const r = await c.query<{ pid: number; application_name: string }>(
        'SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE $1',
        [`coco/%${schema}`],
      );
      return r.rows;
    });
    const ourPids = new Set(backends.map((b) => b.pid));
    const applyPids = new Set(
      backends.filter((b) => b.application_name === `coco/apply/${schema}`).map((b) => b.pid),
    );
    const rawRuns: number[] = [];
    const rawCpu: CpuUse[] = [];
    let rawUnits = 0;
    const rawSize = pattern === 'one-task' ? options.rawCommands : options.rawParents;
    const rawShares = split(rawSize, n);
    /** Row writes per unit over the runs so far, over every node: what the raw-store limit replays. */
    const perUnitSoFar = (): PerUnit => {
      const o = perRun.flat().reduce((acc, x) => sum(acc, x.ops), zeroOps());
      const u = size * perRun.length;
      return {
        commandInserts: o.commandInserts / u,
        commandUpdates: o.commandUpdates / u,
        commandsSettled: o.commandsSettled / u,
        taskInserts: o.taskInserts / u,
        taskUpdates: o.taskUpdates / u,
      };
    };
    for (let r = 0; r < options.repeats; r++) {
      const poolBefore = options.pool ? await admin((c) => poolSample(c, applyPids)) : null;
      const perf = perfRecord(applyPids, schema, r + 1);
      const before = cpuSample(ourPids, applyPids);
      const waits = options.waits ? sampleWaits(applyPids) : null;
      const t0 = performance.now();
      for (const node of nodes) node.send({ t: 'go', run: r });
      const done = await Promise.all(nodes.map((node) => node.next('done', RUN_TIMEOUT_MS)));
      const wall = (Math.max(...done.map((d) => d.at)) - t0) / 1000;
      const waitShares = waits?.stop() ?? null;
      const after = cpuSample(ourPids, applyPids);
      await perfStop(perf);
      const poolAfter = poolBefore ? await admin((c) => poolSample(c, applyPids)) : null;
      seconds.push(wall);
      perRun.push(done.map((d) => d.m));
      const use = cpuUse(before, after, wall);
      if (use) cpu.push(use);
      console.log(
        `  ${pattern} × ${n} node${n > 1 ? 's' : ''}, run ${r + 1}/${options.repeats}: ${size} in ${wall.toFixed(2)} s = ${Math.round(size / wall)} ${unit}`,
      );
      if (poolBefore && poolAfter)
        printPool(r + 1, poolBefore, poolAfter, size, wall, applyPids.size);
      if (waits) printWaits(r + 1, waitShares);
      await Promise.all(nodes.map((node) => node.next('idle', RUN_TIMEOUT_MS)));
      if (options.noRaw) continue;
      // The raw-store limit right after each run (interleaved: both see the same window of this
      // shared machine, so their ratio is steadier than that of runs minutes apart), replaying
      // the row writes counted so far; the nodes' engines are idle meanwhile.
      nodes.forEach((node, i) =>
        node.send({
          t: 'raw',
          perUnit: perUnitSoFar(),
          units: rawShares[i]!,
          perBatch: RAW_PER_BATCH,
        }),
      );
      await Promise.all(nodes.map((node) => node.next('raw-ready', RUN_TIMEOUT_MS)));
      const rawBefore = cpuSample();
      const r0 = performance.now();
      for (const node of nodes) node.send({ t: 'raw-go' });
      const rawDone = await Promise.all(nodes.map((node) => node.next('raw-done', RUN_TIMEOUT_MS)));
      const rawWall = (Math.max(...rawDone.map((d) => d.at)) - r0) / 1000;
      const rawUse = cpuUse(rawBefore, cpuSample(), rawWall);
      if (rawUse) rawCpu.push(rawUse);
      const applied = rawDone.reduce((a, d) => a + d.m.units, 0);
      rawUnits += applied;
      rawRuns.push(applied / rawWall);
      console.log(
        `  raw-store limit, run ${r + 1}/${options.repeats}: ${Math.round(rawRuns.at(-1)!)} ${unit}`,
      );
    }

    // Row writes per unit, over every node and run.
    const ops = perRun.flat().reduce((acc, x) => sum(acc, x.ops), zeroOps());
    const units = size * options.repeats;
    for (const node of nodes) await node.stop();
    if (statements) await admin((c) => printStatements(c, schema));
    if (mark) printDisk(await admin((c) => diskReport(c, schema, mark)));

    return reportMeasure({
      pattern,
      n,
      size,
      unit,
      repeats: options.repeats,
      seconds,
      perRun,
      cpu,
      ops,
      units,
      rawRuns,
      rawCpu,
      rawUnits,
      rawPerBatch: RAW_PER_BATCH,
    });
  } finally {
    for (const node of nodes) node.proc.kill('SIGKILL');
    await dropSchema(schema);
  }
}

// -- main --

async function main(): Promise<void> {
  const reason = await unreachable(url);
  if (reason !== null) {
    console.log(
      `pg: skipped — no PostgreSQL server answers at ${PG_URL} (${reason}); set COCO_PG_URL to run it`,
    );
    console.log(JSON.stringify({ bench: 'pg', store: 'postgres', skipped: true, reason }));
    return;
  }
  const server = await admin(async (c) => {
    const show = async (name: string): Promise<string> =>
      String(((await c.query(`SHOW ${name}`)).rows[0] as Record<string, unknown>)[name]);
    return {
      version: (await show('server_version')).split(' ')[0],
      synchronous_commit: await show('synchronous_commit'),
      fsync: await show('fsync'),
      wal_sync_method: await show('wal_sync_method'),
      commit_delay: await show('commit_delay'),
      shared_buffers: await show('shared_buffers'),
    };
  });
  const cpu = cpus();
  console.log(
    `coco on PostgreSQL ${server.version} (${machine()}, ${cpu.length} cores): ${patterns.join(', ')} with ${options.nodes.join(', ')} node(s), median of ${options.repeats}`,
  );
  console.log(
    `  server: ${JSON.stringify(server)} (durable: every batch's COMMIT waits for its WAL flush)`,
  );
  console.log(`  engine tuning: ${JSON.stringify(options.tuning)}`);
  console.log(
    `  apply connections per node: ${process.env.BENCH_PG_LANES ?? DEFAULT_APPLY_CONNECTIONS} (BENCH_PG_LANES; the raw limit: 1)`,
  );
  const results: Result[] = [];
  for (const pattern of patterns)
    for (const n of options.nodes) results.push(await measure(pattern, n));

  const ratios = options.peers ? peerRatios(results, options.peers) : null;
  // One pattern on one node count (`npm run bench -- pg-chain`): its own JSON line, printed by
  // reportMeasure, stays the last line, as scripts read it.
  if (results.length === 1 && !ratios) return;
  console.log(
    JSON.stringify({
      bench: 'pg',
      store: 'postgres',
      machine: machine(),
      server,
      repeats: options.repeats,
      tuning: options.tuning,
      results: results.map(({ bench, nodes, value, unit, rawLimit, ratio, runs }) => ({
        bench,
        nodes,
        value,
        unit,
        rawLimit,
        ratio,
        runs,
      })),
      ...(ratios ? { peerRatios: ratios } : {}),
    }),
  );
}

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    if (interrupted) return;
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    await cleanup();
    process.exit(1);
  },
);
