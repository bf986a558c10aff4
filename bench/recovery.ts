/**
 * Recovery: 100,000 in-flight one-task commands are stored; a new engine starts on the same
 * file. Measures the time from `start()` until the first poll covering every resumed task
 * (polling resumed: the figure), the time until `start()` returned, and until the first poll's
 * answer was applied to the live tasks (`firstAnswerAppliedSeconds`: on the same thread right
 * after the figure; the CPU figures stop at the figure).
 *
 * `BENCH_RECOVERY_DB=<file>`: the stored commands are kept in that file (filled on first use)
 * and each run starts on a copy of it, so that runs compared with one another (before/after a
 * change, `BENCH_N=1000000`) start on the same rows without filling a million each time.
 */
import { copyFileSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
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
/**
 * CPU seconds of this process's main thread (Linux schedstat; null elsewhere): on a loaded
 * machine the wall-clock figure mostly says how long the thread waited for a core.
 */
function mainThreadCpu(): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8');
    return Number(stat.split(' ')[0]) / 1e9;
  } catch {
    return null;
  }
}

/**
 * CPU seconds of each live thread of this process, by thread id (Linux schedstat; empty
 * elsewhere). Threads are all named "node": the reader thread is told apart as the one that
 * exits during the restart (see the report).
 */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        const stat = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8');
        out.set(tid, Number(stat.split(' ')[0]) / 1e9);
      } catch {
        // The thread exited between the listing and the read.
      }
    }
  } catch {
    // Not Linux.
  }
  return out;
}

/**
 * The main thread's garbage collection pauses, young (scavenges) and old (mark-compact and
 * incremental marking steps), from `start()` until the figure: with every resumed command and task surviving, copied by the
 * scavenges and marked, the collector is a large share of a big restart.
 */
const gc = { scavenges: 0, scavengeMs: 0, oldPauses: 0, oldMs: 0, counting: false };
function countGc(entries: PerformanceEntry[]): void {
  if (!gc.counting) return;
  for (const entry of entries) {
    const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      gc.scavenges++;
      gc.scavengeMs += entry.duration;
    } else {
      gc.oldPauses++;
      gc.oldMs += entry.duration;
    }
  }
}
const gcObserver = new PerformanceObserver((list) => countGc(list.getEntries()));
gcObserver.observe({ entryTypes: ['gc'] });

const broker = new HoldingBroker();
const engine = benchEngine(db.path, broker, [held]);
let polled = 0;
gc.counting = true;
const threads0 = threadCpu();
const cpu0 = mainThreadCpu();
const process0 = process.cpuUsage();
const t0 = performance.now();
let answered: (ms: number) => void = () => {};
/**
 * When the first poll's answer has been applied: the broker answers at once, the dispatcher
 * applies the reports in the promise's continuations, and an immediate runs after them.
 */
const applied = new Promise<number>((resolve) => (answered = resolve));
const resumed = new Promise<number>((resolve) => {
  broker.onStatus = (ids) => {
    polled += ids;
    if (polled < N) return;
    resolve(performance.now() - t0);
    broker.onStatus = null;
    setImmediate(() => answered(performance.now() - t0));
  };
});
const startReport = await engine.start();
const startMs = performance.now() - t0;
const pollMs = await resumed;
// Entries are delivered later: take those of the pauses until now, then stop counting.
countGc(gcObserver.takeRecords());
gc.counting = false;
gcObserver.disconnect();
const cpu1 = mainThreadCpu();
const threads1 = threadCpu();
const mainCpu = cpu0 === null || cpu1 === null ? null : cpu1 - cpu0;
const processUsage = process.cpuUsage(process0);
const processCpu = (processUsage.user + processUsage.system) / 1e6;
// The other threads alive now (the writer thread, V8's garbage collection helpers, libuv's
// pool); what the process spent beyond them and the main thread went to threads that have
// exited since `start()` was called: the reader thread (reader.ts), done once the rows are read.
let aliveCpu = 0;
for (const [tid, s] of threads1)
  if (tid !== String(process.pid)) aliveCpu += s - (threads0.get(tid) ?? 0);
const exitedCpu = mainCpu === null || threads1.size === 0 ? null : processCpu - mainCpu - aliveCpu;
const appliedMs = await applied;
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
    firstAnswerAppliedSeconds: +(appliedMs / 1000).toFixed(3),
    loadSeconds: +(startReport.loadMs / 1000).toFixed(3),
    rebuildSeconds: +(startReport.rebuildMs / 1000).toFixed(3),
    mainThreadCpuSeconds: mainCpu === null ? null : +mainCpu.toFixed(3),
    processCpuSeconds: +processCpu.toFixed(3),
    otherThreadsCpuSeconds: exitedCpu === null ? null : +aliveCpu.toFixed(3),
    exitedThreadsCpuSeconds: exitedCpu === null ? null : +exitedCpu.toFixed(3),
    scavenges: gc.scavenges,
    scavengeSeconds: +(gc.scavengeMs / 1000).toFixed(3),
    oldGenerationPauses: gc.oldPauses,
    oldGenerationPauseSeconds: +(gc.oldMs / 1000).toFixed(3),
  },
  [
    `recovery: ${startReport.resumed} in-flight commands resumed; polling resumed ${(pollMs / 1000).toFixed(2)} s after start() (start() returned after ${(startMs / 1000).toFixed(2)} s) (${machine()})`,
    `  of which: reading the store, live commands built as the rows come ${(startReport.loadMs / 1000).toFixed(2)} s; the rest (children linked, commands resumed) ${(startReport.rebuildMs / 1000).toFixed(2)} s`,
    `  CPU until then: main thread ${mainCpu === null ? '?' : mainCpu.toFixed(2)} s, process ${processCpu.toFixed(2)} s` +
      (exitedCpu === null
        ? ''
        : ` (threads exited since: the reader ${exitedCpu.toFixed(2)} s; the others alive ${aliveCpu.toFixed(2)} s)`),
    `  main thread's GC pauses until then: ${gc.scavenges} scavenges ${(gc.scavengeMs / 1000).toFixed(2)} s, ${gc.oldPauses} old-generation pauses ${(gc.oldMs / 1000).toFixed(2)} s`,
    `  the first poll's answer applied ${(appliedMs / 1000).toFixed(2)} s after start()` +
      ' (after the CPU figures above)',
  ],
);
