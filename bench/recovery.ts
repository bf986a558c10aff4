/**
 * Recovery: 100,000 in-flight one-task commands are stored; a new engine starts on the same
 * file. Measures the time from `start()` until the first poll covering every resumed task
 * (polling resumed), and the time until `start()` returned.
 *
 * `BENCH_RECOVERY_DB=<file>`: the stored commands are kept in that file (filled on first use)
 * and each run starts on a copy of it, so that runs compared with one another (before/after a
 * change, `BENCH_N=1000000`) start on the same rows without filling a million each time.
 */
import { copyFileSync, existsSync } from 'node:fs';
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

const held = heldCommand;

const db = tempDb();
const kept = process.env.BENCH_RECOVERY_DB;
if (kept !== undefined && existsSync(kept)) copyFileSync(kept, db.path);
else {
  const broker = new HoldingBroker();
  const engine = benchEngine(db.path, broker, [held]);
  await engine.start();
  for (let i = 0; i < N; i += 1000) {
    await engine.submitMany(
      Array.from({ length: Math.min(1000, N - i) }, (_, k) => ({
        type: held,
        params: { i: i + k },
      })),
    );
  }
  await untilCommitted(engine, () => engine.stats().watchedTasks >= N);
  await engine.stop();
  // Closed, the file holds every row (the WAL is checkpointed into it on close).
  if (kept !== undefined) copyFileSync(db.path, kept);
}
const broker = new HoldingBroker();
const engine = benchEngine(db.path, broker, [held]);
let polled = 0;
const t0 = performance.now();
const resumed = new Promise<number>((resolve) => {
  broker.onStatus = (ids) => {
    polled += ids;
    if (polled >= N) resolve(performance.now() - t0);
  };
});
const startReport = await engine.start();
const startMs = performance.now() - t0;
const pollMs = await resumed;
await engine.stop();
db.cleanup();
report(
  {
    bench: 'recovery',
    value: +(pollMs / 1000).toFixed(3),
    unit: 's',
    inFlight: N,
    resumed: startReport.resumed,
    startSeconds: +(startMs / 1000).toFixed(3),
    loadSeconds: +(startReport.loadMs / 1000).toFixed(3),
    rebuildSeconds: +(startReport.rebuildMs / 1000).toFixed(3),
  },
  [
    `recovery: ${startReport.resumed} in-flight commands resumed; polling resumed ${(pollMs / 1000).toFixed(2)} s after start() (start() returned after ${(startMs / 1000).toFixed(2)} s) (${machine()})`,
    `  of which: load from the store ${(startReport.loadMs / 1000).toFixed(2)} s, rebuild live commands ${(startReport.rebuildMs / 1000).toFixed(2)} s`,
  ],
);
