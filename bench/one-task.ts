/**
 * One-task commands end to end: submit (in chunks, a bounded number in flight), the task runs
 * on an in-process agent (`noop`), the command ends. Measures commands/s from the first submit
 * to the last durable end, and the raw-store limit for the same row writes.
 *
 * `COCO_BENCH_OBS` measures what metrics and tracing cost (BENCHMARKS.md):
 * - unset or `0`: off — no metrics, and the engine's tracer `null` (no tracing call at all);
 * - `1`: a node's default — the node's metrics attached (scraped once at the end, outside the
 *   timing) and spans made through `@opentelemetry/api` with no SDK registered (no-ops);
 * - `sdk`: as `1`, with an OpenTelemetry SDK registered that records every span and exports
 *   none (no span processor), and the async-hooks context manager;
 * - `sdk-sampled`: as `sdk`, sampling 1 % of the traces (ParentBased(TraceIdRatioBased(0.01)));
 * - `sdk-nocontext`: as `sdk`, without the context manager (the engine nests its own spans
 *   explicitly; only spans a handler or verb starts itself need one).
 *
 * `prefill=N` (an argument; `npm run bench -- growth` runs 0, 1,000,000 and 10,000,000): after the
 * warm-up the engine stops, the store is filled up to N ended commands (bench/prefill.ts), and a
 * new engine runs the measured commands — the cost of a store that has grown. `prefill=0` stops
 * and restarts the same way, for a like-for-like baseline.
 */
import { inProcessAgents } from '../src/brokers/in-process/broker.js';
import { benchCommands } from './patterns.js';
import { rawLimit } from './raw.js';
import { benchEngine, countOps, machine, report, tempDb, untilCommitted } from './lib.js';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { createNodeMetrics } from '../src/observability/metrics.js';
import { prefillEnded } from './prefill.js';

const N = Number(process.env.BENCH_N ?? 100_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 10_000);
const CHUNK = Number(process.env.BENCH_CHUNK ?? 1_000);

const PREFILL_ARG = process.argv.slice(2).find((a) => a.startsWith('prefill='));
const PREFILL = PREFILL_ARG === undefined ? null : Number(PREFILL_ARG.slice('prefill='.length));
if (PREFILL !== null && !Number.isSafeInteger(PREFILL)) throw new Error(`bad ${PREFILL_ARG}`);

const OBS_MODE = process.env.COCO_BENCH_OBS ?? '0';
const OBS = OBS_MODE !== '0';
const SDK = OBS_MODE.startsWith('sdk');

const { one } = benchCommands('a1');
if (SDK) {
  // An SDK with no span processor: spans are recorded (when sampled) and dropped at their end.
  const sampler =
    OBS_MODE === 'sdk-sampled'
      ? new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.01) })
      : new AlwaysOnSampler();
  trace.setGlobalTracerProvider(new BasicTracerProvider({ sampler }));
  if (OBS_MODE !== 'sdk-nocontext')
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
}

const db = tempDb();
const newEngine = (): ReturnType<typeof benchEngine> =>
  benchEngine(
    db.path,
    inProcessAgents(['a1'], { history: false }),
    [one],
    {},
    OBS ? {} : { tracer: null },
  );
let engine = newEngine();
const metrics = OBS ? createNodeMetrics() : null;
metrics?.attach(engine);
await engine.start();
let { ops, ended } = countOps(engine);

/** Runs `n` commands through, at most IN_FLIGHT at a time; resolves when all have ended. */
async function run(n: number): Promise<number> {
  ended.clear();
  let submitted = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      while (submitted < n && submitted - ended.size < IN_FLIGHT) {
        const k = Math.min(CHUNK, n - submitted);
        const items = Array.from({ length: k }, (_, j) => ({
          type: one,
          params: { i: submitted + j },
        }));
        submitted += k;
        engine.submitMany(items).then(() => pump(), reject);
      }
    };
    const off = engine.on('committed', () => {
      if (ended.size >= n) {
        off();
        resolve();
      } else pump();
    });
    pump();
  });
  return (performance.now() - t0) / 1000;
}

// A warm-up run (the JIT, the writer thread, the page cache) is not counted in the main figure;
// its own rate is the cold start's (issue 15: the first 10,000 commands after a start).
const COLD_N = Math.min(N, 10_000);
/** CPU time of the process (all threads) per command of a run, in µs: steadier than its rate. */
const cpuPerCommand = (since: NodeJS.CpuUsage, n: number): number => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / n;
};
let cpuStart = process.cpuUsage();
const cold = COLD_N / (await run(COLD_N));
// The JIT's cost (compiles on V8's background threads) shows here rather than in the rate when
// the other core is busy.
const coldCpu = cpuPerCommand(cpuStart, COLD_N);
// The same 10,000 again on the now-warm process: a run this short pays its pipeline's fill and
// drain (first batch in, last batch out) whatever the JIT's state, so the cold start is also
// compared with a warm run of the same size.
cpuStart = process.cpuUsage();
const warmShort = COLD_N / (await run(COLD_N));
const warmShortCpu = cpuPerCommand(cpuStart, COLD_N);
let filled = '';
if (PREFILL !== null) {
  await untilCommitted(engine, () => true);
  await engine.stop();
  const f = prefillEnded(db.path, PREFILL);
  filled = `  store grown by ${f.added} ended commands (copies of the warm-up's) in ${f.seconds.toFixed(1)} s before the measured run, on a restarted engine`;
  engine = newEngine();
  metrics?.attach(engine);
  await engine.start();
  ({ ops, ended } = countOps(engine));
  // The restarted engine's first commands (its JIT is warm; its connection's cache is not).
  await run(Math.min(N, 10_000));
}
const before = { ...ops };
const cpu0 = process.cpuUsage();
const t = await run(N);
const cpu = process.cpuUsage(cpu0);
/** CPU time of the process (all threads: the engine and the SQLite writer) per command. */
const cpuUsPerCommand = (cpu.user + cpu.system) / N;
for (const k of Object.keys(ops) as (keyof typeof ops)[]) ops[k] -= before[k];
const seconds = t;
const value = N / seconds;
await untilCommitted(engine, () => true);
const scraped = metrics ? (await metrics.text()).length : 0;
await engine.stop();
db.cleanup();
const raw = process.env.BENCH_NO_RAW ? NaN : await rawLimit(ops, N);
report(
  {
    bench: 'one-task',
    value: Math.round(value),
    unit: 'commands/s',
    rawLimit: Math.round(raw),
    ratio: +(value / raw).toFixed(3),
    n: N,
    inFlight: IN_FLIGHT,
    synchronous: 'FULL',
    obs: OBS ? OBS_MODE : false,
    cpuUsPerCommand: Math.round(cpuUsPerCommand),
    ...(PREFILL === null ? {} : { storedBefore: PREFILL }),
    cold: Math.round(cold),
    coldRatio: +(cold / value).toFixed(3),
    warmShort: Math.round(warmShort),
    coldToWarmShort: +(cold / warmShort).toFixed(3),
    coldCpuUsPerCommand: Math.round(coldCpu),
    warmShortCpuUsPerCommand: Math.round(warmShortCpu),
  },
  [
    `one-task: ${N} commands in ${seconds.toFixed(2)} s = ${Math.round(value)} commands/s, after a warm-up run (${machine()})`,
    `  CPU (all threads) ${cpuUsPerCommand.toFixed(0)} µs per command`,
    `  cold start: the first ${COLD_N} commands of the process at ${Math.round(cold)} commands/s = ${((cold / value) * 100).toFixed(0)}% of the warm rate; the next ${COLD_N} at ${Math.round(warmShort)} commands/s (cold = ${((cold / warmShort) * 100).toFixed(0)}% of a warm run of the same size); CPU ${coldCpu.toFixed(0)} and ${warmShortCpu.toFixed(0)} µs per command`,
    `  row writes per command: ${((ops.commandInserts + ops.commandUpdates + ops.commandsSettled + ops.taskInserts + ops.taskUpdates) / N).toFixed(2)} in ${ops.batches} batches`,
    `  raw-store limit for the same writes (100 commands per transaction): ${Math.round(raw)} commands/s; coco = ${((value / raw) * 100).toFixed(0)}% of it`,
    OBS
      ? `  metrics and tracing on (COCO_BENCH_OBS=${OBS_MODE}${SDK ? ': an SDK without exporter' : ': no SDK registered'}; one scrape of ${scraped} bytes after the run)`
      : '  metrics and tracing off (COCO_BENCH_OBS=1, sdk or sdk-sampled turns them on)',
    ...(filled ? [filled] : []),
  ],
);
