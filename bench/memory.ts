/**
 * Memory per in-flight command: 100,000 one-task commands whose tasks stay running (on a broker
 * that stores nothing per task, so the heap holds only the engine's state). Heap after a full
 * GC, minus the heap of the started, empty engine, divided by the number of commands.
 */
import {
  HoldingBroker,
  benchEngine,
  heldCommand,
  machine,
  report,
  tempDb,
  untilCommitted,
} from './lib.js';

const N = Number(process.env.BENCH_N ?? 100_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const held = heldCommand;

const heap = (): number => {
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage().heapUsed;
};

const db = tempDb();
const broker = new HoldingBroker();
const engine = benchEngine(db.path, broker, [held]);
await engine.start();
const before = heap();
for (let i = 0; i < N; i += 1000) {
  await engine.submitMany(
    Array.from({ length: Math.min(1000, N - i) }, (_, k) => ({ type: held, params: { i: i + k } })),
  );
}
// Every task accepted and polled at least once: the steady in-flight state.
await untilCommitted(engine, () => engine.stats().watchedTasks >= N);
await new Promise<void>((resolve) => {
  broker.onStatus = (ids) => ids >= N && resolve();
});
const after = heap();
const perCommand = (after - before) / N;
const stats = engine.stats();
await engine.stop();
db.cleanup();
report(
  {
    bench: 'memory',
    value: Math.round(perCommand),
    unit: 'bytes/command',
    inFlight: N,
    liveCommands: stats.liveCommands,
  },
  [
    `memory: ${N} in-flight one-task commands, ${(perCommand / 1024).toFixed(2)} KiB of heap each (${machine()})`,
    `  heap ${(before / 2 ** 20).toFixed(1)} MiB -> ${(after / 2 ** 20).toFixed(1)} MiB; live commands ${stats.liveCommands}, polled tasks ${stats.watchedTasks}`,
  ],
);
