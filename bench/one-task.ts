/**
 * One-task commands end to end: submit (in chunks, a bounded number in flight), the task runs
 * on an in-process agent (`noop`), the command ends. Measures commands/s from the first submit
 * to the last durable end, and the raw-store limit for the same row writes.
 */
import { z } from 'zod';
import { inProcessAgents } from '../src/agents/in-process/broker.js';
import { defineCommand } from '../src/core/command-type.js';
import { rawLimit } from './raw.js';
import { benchEngine, countOps, machine, report, tempDb, untilCommitted } from './lib.js';

const N = Number(process.env.BENCH_N ?? 100_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 10_000);
const CHUNK = Number(process.env.BENCH_CHUNK ?? 1_000);

const one = defineCommand({
  name: 'bench.one',
  schema: z.object({ i: z.number() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

const db = tempDb();
const engine = benchEngine(db.path, inProcessAgents(['a1'], { history: false }), [one]);
await engine.start();
const { ops, ended } = countOps(engine);
let submitted = 0;
const t0 = performance.now();
await new Promise<void>((resolve, reject) => {
  const pump = (): void => {
    while (submitted < N && submitted - ended.size < IN_FLIGHT) {
      const n = Math.min(CHUNK, N - submitted);
      const items = Array.from({ length: n }, (_, k) => ({
        type: one,
        params: { i: submitted + k },
      }));
      submitted += n;
      engine.submitMany(items).then(() => {
        pump();
      }, reject);
    }
  };
  engine.on('committed', () => {
    if (ended.size >= N) resolve();
    else pump();
  });
  pump();
});
const seconds = (performance.now() - t0) / 1000;
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
    `one-task: ${N} commands in ${seconds.toFixed(2)} s = ${Math.round(value)} commands/s (${machine()})`,
    `  row writes per command: ${((ops.commandInserts + ops.commandUpdates + ops.commandsSettled + ops.taskInserts + ops.taskUpdates) / N).toFixed(2)} in ${ops.batches} batches`,
    `  raw-store limit for the same writes (100 commands per transaction): ${Math.round(raw)} commands/s; coco = ${((value / raw) * 100).toFixed(0)}% of it`,
  ],
);
