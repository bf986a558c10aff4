/**
 * Fan-out and chain benchmarks: 1,000 parents, each with 10 concurrent children (fanout) or 5
 * serial children (chain); every child runs one `noop` task on an in-process agent. Measures
 * parents/s from the first submit to the last durable parent end.
 *
 * Run as `bench/trees.ts fanout` or `bench/trees.ts chain`.
 */
import { inProcessAgents } from '../src/brokers/in-process/broker.js';
import { benchCommands } from './patterns.js';
import { rawLimit } from './raw.js';
import { benchEngine, countOps, machine, median, report, tempDb, untilCommitted } from './lib.js';
import { sqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { TreeTracer } from './tree-trace.js';

const kind = process.argv[2] === 'chain' ? 'chain' : 'fanout';
const PARENTS = Number(process.env.BENCH_PARENTS ?? 1_000);
const CHILDREN = kind === 'chain' ? 5 : 10;
/** Measured rounds; the figure is their median. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/**
 * Commands the warm-up rounds run at least (`BENCH_WARMUP`, 20,000 by default; whole rounds): a
 * process takes ~10,000 commands to settle its JIT (issue 15's cold start), and one round of
 * chains is 6,000 — with one warm-up round the measured chain rounds still sped up one after the
 * other (BENCHMARKS.md, stop 26). Fan-out: 2 rounds, chain: 4.
 */
const WARMUP_ROUNDS = Math.max(
  1,
  Math.ceil(Number(process.env.BENCH_WARMUP ?? 20_000) / (PARENTS * (CHILDREN + 1))),
);

const { leaf, fanout, chain } = benchCommands('a1');
const parentType = kind === 'chain' ? chain : fanout;

const db = tempDb();
const store = sqliteStore({ path: db.path, synchronous: 'FULL' });
const engine = benchEngine(
  db.path,
  inProcessAgents(['a1'], { history: false }),
  [leaf, fanout, chain],
  {},
  { store },
);
await engine.start();
/** `BENCH_TRACE=1`: batch-by-batch counts of each round (bench/tree-trace.ts). */
const tracer = process.env.BENCH_TRACE
  ? new TreeTracer(
      engine,
      () => store.writerStats(),
      () => store.writerUsage(),
    )
  : null;
const { ops } = countOps(engine);
const roots = new Set<number>();
let rootsEnded = 0;
/** A round's submitMany has not answered yet. */
let submitting = false;
/**
 * Commands whose end was committed while their submit had not answered yet: a root's end may
 * be stored with (or before) the batch that makes the last root of its submitMany durable.
 */
const endedEarly = new Set<number>();
engine.on('committed', (b) => {
  for (const c of b.commandUpdates) {
    if (c.endedAt === null) continue;
    if (roots.delete(c.id)) rootsEnded++;
    else if (submitting) endedEarly.add(c.id);
  }
});

/** One round: submit `parents` parents at once, wait for every one to end. Seconds. */
async function round(parents: number): Promise<number> {
  rootsEnded = 0;
  await tracer?.begin();
  const t0 = performance.now();
  submitting = true;
  const ids = await engine.submitMany(
    Array.from({ length: parents }, () => ({ type: parentType, params: { children: CHILDREN } })),
  );
  submitting = false;
  for (const { id } of ids) {
    if (endedEarly.has(id)) rootsEnded++;
    else roots.add(id);
  }
  endedEarly.clear();
  await untilCommitted(engine, () => rootsEnded === parents);
  const seconds = (performance.now() - t0) / 1000;
  if (tracer) for (const line of await tracer.lines(parents)) console.log(line);
  // Let the round settle (tasks cleared) so rounds do not overlap.
  while (engine.stats().liveCommands > 0) await new Promise((r) => setTimeout(r, 5));
  return seconds;
}

// Warm-up rounds (the JIT, the writer thread, the page cache), then the measured rounds.
for (let r = 0; r < WARMUP_ROUNDS; r++) await round(PARENTS);
const opsBefore = { ...ops };
const times: number[] = [];
for (let r = 0; r < ROUNDS; r++) times.push(await round(PARENTS));
for (const k of Object.keys(ops) as (keyof typeof ops)[]) ops[k] = (ops[k] - opsBefore[k]) / ROUNDS;
const seconds = median(times);
const value = PARENTS / seconds;
await engine.stop();
db.cleanup();
const raw = process.env.BENCH_NO_RAW
  ? NaN
  : await rawLimit(ops, PARENTS, 100, 2_000, (use, units) => {
      if (tracer)
        console.log(
          `  trace: raw store, CPU per parent (schedstat): ${((1000 * use.cpuMs) / units).toFixed(1)} us (+ ${((1000 * use.runQueueMs) / units).toFixed(1)} us waiting for a core)`,
        );
    });
const unit = kind === 'chain' ? 'chains/s' : 'parents/s';
report(
  {
    bench: kind,
    value: Math.round(value),
    unit,
    rawLimit: Math.round(raw),
    ratio: +(value / raw).toFixed(3),
    parents: PARENTS,
    children: CHILDREN,
    rounds: times.map((t) => Math.round(PARENTS / t)),
    synchronous: 'FULL',
    // With BENCH_TRACE: CPU per parent (schedstat), the median over the measured rounds —
    // steadier than the rate on a shared machine (`scripts/bench-pairs.mjs --only cpu-chain`).
    ...(tracer && {
      cpuUsPerParent: {
        writer: +median(tracer.cpuPerParent.writer.slice(WARMUP_ROUNDS)).toFixed(1),
        main: +median(tracer.cpuPerParent.main.slice(WARMUP_ROUNDS)).toFixed(1),
        all: +median(tracer.cpuPerParent.all.slice(WARMUP_ROUNDS)).toFixed(1),
      },
    }),
  },
  [
    `${kind}: ${PARENTS} parents x ${CHILDREN} ${kind === 'chain' ? 'serial' : 'concurrent'} children in ${seconds.toFixed(2)} s = ${Math.round(value)} ${unit} (median of ${ROUNDS} rounds after a warm-up: ${times.map((t) => Math.round(PARENTS / t)).join(', ')}) (${machine()})`,
    `  row writes per parent: ${((ops.commandInserts + ops.commandUpdates + ops.commandsSettled + ops.taskInserts + ops.taskUpdates) / PARENTS).toFixed(1)} in ${ops.batches} batches`,
    `  raw-store limit for the same writes (100 parents per transaction): ${Math.round(raw)} ${unit}; coco = ${((value / raw) * 100).toFixed(0)}% of it`,
  ],
);
