/**
 * A trace of the fan-out and chain benchmarks, batch by batch (`BENCH_TRACE=1`, bench/trees.ts):
 * deterministic counts of what a parent's tree costs the store, and where the store waits.
 *
 * - rows per parent, and the writer thread's statement runs per parent (an insert or update runs
 *   up to 20 rows per statement: writer.ts `MULTI_ROWS`);
 * - the batches of a round, their rows, and how many batches a tree spans end to end: the batch
 *   holding the parent's insert to the one holding its durable end ("hops"), and the batch of
 *   each step (children inserted, tasks ended, children ended, parent ended);
 * - the time the writer thread worked against the round's wall time (store busy), and the main
 *   thread's busy time (event-loop utilisation): which of the two bounds the round.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import type { Engine } from '../src/engine/engine.js';
import { batchRows, type ChangeBatch } from '../src/store/port.js';
import type { ThreadUsage } from '../src/store/sqlite/writer.js';

/** This thread's CPU time and run-queue wait (Linux schedstat), or null. */
export function threadUsage(): ThreadUsage | null {
  try {
    const [cpu, wait] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
    return { cpuMs: cpu! / 1e6, runQueueMs: wait! / 1e6 };
  } catch {
    return null;
  }
}

const NO_USAGE: ThreadUsage = { cpuMs: NaN, runQueueMs: NaN };

/** Where one root's tree was written: batch numbers within the round. */
interface TreeTrace {
  parentInserted: number;
  childrenInserted: number[];
  tasksInserted: number[];
  tasksEnded: number[];
  childrenEnded: number[];
  parentUpdates: number[];
  parentEnded: number;
}

/** Per-round counts of a tree benchmark. */
export class TreeTracer {
  #batch = 0;
  #rootOf = new Map<number, number>();
  #trees = new Map<number, TreeTrace>();
  #batchRows: number[] = [];
  #batchAt: number[] = [];
  /** The engine's calls to agents in the round, by broker method. */
  #calls = new Map<string, number>();
  #t0 = 0;
  #elu0 = performance.eventLoopUtilization();
  #writer0: { statementsMs: number; commitMs: number; totalRuns?: number } = {
    statementsMs: 0,
    commitMs: 0,
  };
  #writerUse0 = NO_USAGE;
  #mainUse0 = NO_USAGE;
  /** The process's CPU (all threads: main, writer, V8's helpers, libuv) at the round's start. */
  #processUse0 = process.cpuUsage();
  /** CPU per parent of each round traced (µs): the writer thread, the main thread, all threads. */
  readonly cpuPerParent: { writer: number[]; main: number[]; all: number[] } = {
    writer: [],
    main: [],
    all: [],
  };
  readonly writerStats: () => { statementsMs: number; commitMs: number; totalRuns?: number } | null;
  readonly writerUsage: () => Promise<ThreadUsage | null>;

  constructor(
    engine: Engine,
    writerStats: () => { statementsMs: number; commitMs: number; totalRuns?: number } | null,
    writerUsage: () => Promise<ThreadUsage | null>,
  ) {
    this.writerStats = writerStats;
    this.writerUsage = writerUsage;
    engine.on('committed', (b) => this.#committed(b));
    engine.on('agent-call', (c) => {
      this.#calls.set(c.call, (this.#calls.get(c.call) ?? 0) + 1);
    });
  }

  /** Starts a round. */
  async begin(): Promise<void> {
    this.#writerUse0 = (await this.writerUsage()) ?? NO_USAGE;
    this.#mainUse0 = threadUsage() ?? NO_USAGE;
    this.#processUse0 = process.cpuUsage();
    this.#batch = 0;
    this.#rootOf.clear();
    this.#trees.clear();
    this.#batchRows = [];
    this.#batchAt = [];
    this.#calls.clear();
    this.#t0 = performance.now();
    this.#elu0 = performance.eventLoopUtilization();
    this.#writer0 = this.writerStats() ?? { statementsMs: 0, commitMs: 0 };
  }

  #tree(id: number): TreeTrace | undefined {
    const root = this.#rootOf.get(id);
    return root === undefined ? undefined : this.#trees.get(root);
  }

  #committed(b: ChangeBatch): void {
    const k = ++this.#batch;
    this.#batchAt.push(performance.now() - this.#t0);
    this.#batchRows.push(batchRows(b));
    for (const c of b.commandInserts) {
      this.#rootOf.set(c.id, c.rootId);
      if (c.parentId === null) {
        this.#trees.set(c.id, {
          parentInserted: k,
          childrenInserted: [],
          tasksInserted: [],
          tasksEnded: [],
          childrenEnded: [],
          parentUpdates: [],
          parentEnded: 0,
        });
      } else this.#tree(c.id)?.childrenInserted.push(k);
    }
    for (const t of b.taskInserts) this.#tree(t.commandId)?.tasksInserted.push(k);
    for (const t of b.taskUpdates)
      if (t.endedAt !== null) this.#tree(t.commandId)?.tasksEnded.push(k);
    for (const c of b.commandUpdates) {
      const tree = this.#tree(c.id);
      if (!tree) continue;
      if (this.#trees.get(c.id) === tree) {
        tree.parentUpdates.push(k);
        if (c.endedAt !== null) tree.parentEnded = k;
      } else if (c.endedAt !== null) tree.childrenEnded.push(k);
    }
  }

  /** The round's figures, as human lines. */
  async lines(parents: number): Promise<string[]> {
    const wall = performance.now() - this.#t0;
    const elu = performance.eventLoopUtilization(this.#elu0);
    const mainUse = threadUsage() ?? NO_USAGE;
    const writerUse = (await this.writerUsage()) ?? NO_USAGE;
    const writerCpu = writerUse.cpuMs - this.#writerUse0.cpuMs;
    const writerQueue = writerUse.runQueueMs - this.#writerUse0.runQueueMs;
    const mainCpu = mainUse.cpuMs - this.#mainUse0.cpuMs;
    const mainQueue = mainUse.runQueueMs - this.#mainUse0.runQueueMs;
    const processUse = process.cpuUsage(this.#processUse0);
    const processCpu = (processUse.user + processUse.system) / 1000;
    const w = this.writerStats() ?? { statementsMs: NaN, commitMs: NaN };
    const stmtMs = w.statementsMs - this.#writer0.statementsMs;
    const commitMs = w.commitMs - this.#writer0.commitMs;
    const runs = (w.totalRuns ?? NaN) - (this.#writer0.totalRuns ?? NaN);
    const rows = this.#batchRows.reduce((a, b) => a + b, 0);
    const trees = [...this.#trees.values()];
    const dist = (f: (t: TreeTrace) => number): string => {
      const counts = new Map<number, number>();
      for (const t of trees) counts.set(f(t), (counts.get(f(t)) ?? 0) + 1);
      return [...counts.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([v, n]) => `${v}:${n}`)
        .join(' ');
    };
    this.cpuPerParent.writer.push((1000 * writerCpu) / parents);
    this.cpuPerParent.main.push((1000 * mainCpu) / parents);
    this.cpuPerParent.all.push((1000 * processCpu) / parents);
    const max = (xs: number[]): number => xs.reduce((a, b) => Math.max(a, b), 0);
    const min = (xs: number[]): number => xs.reduce((a, b) => Math.min(a, b), Infinity);
    return [
      `  trace: ${this.#batch} batches in ${wall.toFixed(0)} ms; rows per batch ${this.#batchRows.join(' ')}`,
      `  trace: per parent: ${(rows / parents).toFixed(1)} rows in ${(runs / parents).toFixed(1)} statement runs of the writer thread`,
      `  trace: batch commit times (ms) ${this.#batchAt.map((t) => t.toFixed(0)).join(' ')}`,
      `  trace: writer busy ${(stmtMs + commitMs).toFixed(0)} ms (statements ${stmtMs.toFixed(0)}, commits ${commitMs.toFixed(0)}) = ${((100 * (stmtMs + commitMs)) / wall).toFixed(0)}% of the round; main thread busy ${elu.active.toFixed(0)} ms = ${(100 * elu.utilization).toFixed(0)}%`,
      `  trace: per parent: writer busy ${((1000 * (stmtMs + commitMs)) / parents).toFixed(1)} us, main thread busy ${((1000 * elu.active) / parents).toFixed(1)} us`,
      `  trace: CPU per parent (schedstat): writer thread ${((1000 * writerCpu) / parents).toFixed(1)} us (+ ${((1000 * writerQueue) / parents).toFixed(1)} us waiting for a core), main thread ${((1000 * mainCpu) / parents).toFixed(1)} us (+ ${((1000 * mainQueue) / parents).toFixed(1)} us waiting)`,
      `  trace: CPU per parent, all threads: ${((1000 * processCpu) / parents).toFixed(1)} us, of which threads other than the main and writer (V8's helpers, libuv) ${((1000 * (processCpu - mainCpu - writerCpu)) / parents).toFixed(1)} us`,
      `  trace: calls to agents: ${[...this.#calls.entries()].map(([k, n]) => `${k} ${n}`).join(', ')}`,
      `  trace: batches a tree spans, parent insert -> parent end (span:trees) ${dist((t) => t.parentEnded - t.parentInserted + 1)}`,
      `  trace: children inserted after the parent's batch by (batches:trees) ${dist((t) => max(t.childrenInserted) - t.parentInserted)}`,
      `  trace: first task end after the last task insert by ${dist((t) => min(t.tasksEnded) - max(t.tasksInserted))}; last child end after the last task end by ${dist((t) => max(t.childrenEnded) - max(t.tasksEnded))}`,
      `  trace: parent end after the last child end by ${dist((t) => t.parentEnded - max(t.childrenEnded))}; parent updates per tree ${dist((t) => t.parentUpdates.length)}`,
    ];
  }
}
