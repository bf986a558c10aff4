/**
 * The dispatcher's poll cycle alone: N agents × M running tasks, on a manual clock, with a broker
 * that answers status polls from a pushed view (as the HTTP broker does while an agent's
 * long-poll is live: no request) and, with `BENCH_PUSH=1`, says so through `pushesStatuses` —
 * answering `false` once per agent every 5–10 s (its periodic check, like `statusRefreshMs`).
 * Reports the engine CPU per cycle (process.cpuUsage) and the task ids asked about per cycle.
 *
 * `BENCH_AGENTS=1000 BENCH_TASKS=100 BENCH_CYCLES=30 BENCH_PUSH=1 node dist/bench/dispatcher-cycle.js`
 *
 * @module
 */
import { z } from 'zod';
import type { AgentBroker, TaskStatusReport } from '../src/brokers/port.js';
import type { Clock, TimerHandle } from '../src/core/clock.js';
import { defineCommand } from '../src/core/command-type.js';
import { Dispatcher, type DispatcherEvents } from '../src/engine/dispatcher.js';
import { LiveTask } from '../src/engine/live.js';
import { liveRoot } from './lib.js';

const agents = Number(process.env.BENCH_AGENTS ?? 1_000);
const perAgent = Number(process.env.BENCH_TASKS ?? 100);
const cycles = Number(process.env.BENCH_CYCLES ?? 30);
const push = process.env.BENCH_PUSH !== '0';
/** The broker's periodic check of a live feed (default: the HTTP broker's `statusRefreshMs`). */
const REFRESH_MS = Number(process.env.BENCH_REFRESH_MS ?? 10_000);

/**
 * A manual clock whose `advance` costs O(n log n) in the timers due (the library's ManualClock
 * scans every timer per fired timer: at 1,000s of agents that scan would be what is measured).
 */
class BenchClock implements Clock {
  #now = 1_700_000_000_000;
  #timers: { at: number; fn: () => void; cancelled: boolean }[] = [];
  now(): number {
    return this.#now;
  }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const timer = { at: this.#now + Math.max(0, ms), fn, cancelled: false };
    this.#timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }
  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      const due = this.#timers.filter((t) => !t.cancelled && t.at <= until);
      if (due.length === 0) break;
      this.#timers = this.#timers.filter((t) => !t.cancelled && t.at > until);
      due.sort((a, b) => a.at - b.at);
      for (const t of due) {
        if (t.cancelled) continue;
        this.#now = Math.max(this.#now, t.at);
        t.fn();
      }
    }
    this.#now = until;
  }
}

const clock = new BenchClock();
const view = new Map<string, TaskStatusReport>();
const nextCheckAt = new Map<string, number>();
let asked = 0;
const broker: AgentBroker = {
  agentIds: () => Promise.resolve(Array.from({ length: agents }, (_, i) => `agent-${i}`)),
  startTasks: () => Promise.resolve([]),
  getStatuses: (agentId, ids) => {
    asked += ids.length;
    const now = clock.now();
    // Jitter in [refresh/2, refresh], as the HTTP broker's.
    if (now >= (nextCheckAt.get(agentId) ?? 0))
      nextCheckAt.set(agentId, now + REFRESH_MS / 2 + Math.random() * (REFRESH_MS / 2));
    return Promise.resolve(
      ids.map((id) => view.get(id) ?? { taskId: id, state: 'unknown' as const }),
    );
  },
  stopTasks: () => Promise.resolve(),
  clearTasks: () => Promise.resolve(),
  listTasks: () => Promise.resolve([]),
  onActivity: () => () => undefined,
  ...(push
    ? { pushesStatuses: (agentId: string) => clock.now() < (nextCheckAt.get(agentId) ?? 0) }
    : {}),
};
const events: DispatcherEvents = {
  started: () => {},
  rejected: () => {},
  failed: () => {},
  agentUnknown: () => {},
  // What the task tracker does with a running report: compare the progress, mark it started.
  report: (t, r) => {
    if (r.state === 'running' && r.progress !== undefined && r.progress !== t.progress)
      t.progress = r.progress;
  },
  vanished: () => {},
  cleared: () => {},
  agentState: () => {},
  isKnown: () => true,
};
const dispatcher = new Dispatcher({
  broker,
  clock,
  options: {
    pollIntervalMs: 1_000,
    callTimeoutMs: 60_000,
    backoffBaseMs: 500,
    backoffMaxMs: 30_000,
    vanishGraceMs: 30_000,
    reconcileIntervalMs: 3_600_000,
  },
  events,
  prefix: 'x-',
});

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

const type = defineCommand({ name: 'bench.cycle', schema: z.object({}), execute() {} });
let id = 0;
for (let a = 0; a < agents; a++) {
  const c = liveRoot(type, ++id);
  for (let i = 0; i < perAgent; i++) {
    const taskId = `x-${c.id}-${i}`;
    const t = new LiveTask(
      c,
      i,
      0,
      `agent-${a}`,
      'v',
      null,
      taskId,
      'running',
      null,
      null,
      null,
      false,
      0,
      null,
      true,
    );
    c.addTask(t);
    view.set(taskId, { taskId, state: 'running', progress: 50 });
    dispatcher.watch(t);
  }
}
await settle();
// Two cycles to settle (reconciliations, first polls), then the measured ones.
for (let i = 0; i < 2; i++) {
  clock.advance(1_000);
  await settle();
}
asked = 0;
const began = process.cpuUsage();
const wall = performance.now();
for (let i = 0; i < cycles; i++) {
  clock.advance(1_000);
  await settle();
}
const cpu = process.cpuUsage(began);
const ms = (cpu.user + cpu.system) / 1_000;
const tasks = agents * perAgent;
console.log(
  JSON.stringify({
    agents,
    tasksPerAgent: perAgent,
    inFlight: tasks,
    push,
    cycles,
    cpuMsPerCycle: +(ms / cycles).toFixed(2),
    cpuNsPerTaskPerCycle: +((ms * 1e6) / cycles / tasks).toFixed(1),
    wallMsPerCycle: +((performance.now() - wall) / cycles).toFixed(2),
    askedPerCycle: Math.round(asked / cycles),
    heapMB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
  }),
);
dispatcher.stopAll();
