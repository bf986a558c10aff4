/**
 * One-task commands end to end: submit (in chunks, a bounded number in flight), the task runs
 * on an in-process agent (`noop`), the command ends. Measures commands/s from the first submit
 * to the last durable end, and the raw-store limit for the same row writes.
 */
import { inProcessAgents } from '../src/brokers/in-process/broker.js';
import { benchCommands } from './patterns.js';
import { rawLimit } from './raw.js';
import { benchEngine, countOps, machine, report, tempDb, untilCommitted } from './lib.js';

const N = Number(process.env.BENCH_N ?? 100_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 10_000);
const CHUNK = Number(process.env.BENCH_CHUNK ?? 1_000);

const { one } = benchCommands('a1');

const db = tempDb();
const engine = benchEngine(db.path, inProcessAgents(['a1'], { history: false }), [one]);
await engine.start();
const { ops, ended } = countOps(engine);

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

// A warm-up run (the JIT, the writer thread, the page cache) is not counted.
await run(Math.min(N, 10_000));
const before = { ...ops };
const t = await run(N);
for (const k of Object.keys(ops) as (keyof typeof ops)[]) ops[k] -= before[k];
const seconds = t;
const value = N / seconds;
await untilCommitted(engine, () => true);
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
  },
  [
    `one-task: ${N} commands in ${seconds.toFixed(2)} s = ${Math.round(value)} commands/s, after a warm-up run (${machine()})`,
    `  row writes per command: ${((ops.commandInserts + ops.commandUpdates + ops.commandsSettled + ops.taskInserts + ops.taskUpdates) / N).toFixed(2)} in ${ops.batches} batches`,
    `  raw-store limit for the same writes (100 commands per transaction): ${Math.round(raw)} commands/s; coco = ${((value / raw) * 100).toFixed(0)}% of it`,
  ],
);
