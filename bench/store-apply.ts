/**
 * Throughput of the SQLite store's `apply` (the engine's group commit) and time of `loadActive`.
 *
 * Run: `node --import tsx bench/store-apply.ts [--commands 20000] [--active 100000] [--repeat 3]`
 *
 * Each simulated command has one task and goes through the engine's four writes: insert command
 * + task; task running; task ended + command succeeded; command tasksCleared. Batches are
 * pipelined as the engine's group commit mixes them: batch k inserts wave k, starts wave k-1,
 * ends wave k-2 and clears wave k-3, each wave being `batch size` commands. Every configuration
 * runs on a fresh file, with synchronous=FULL unless said otherwise, with and without the
 * transition triggers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import type { CommandRecord, TaskRecord } from '../src/core/records.js';
import { emptyBatch, type ChangeBatch } from '../src/store/port.js';
import { sqliteStore, type SqliteStoreOptions } from '../src/store/sqlite/sqlite-store.js';
import {
  T0,
  command,
  commandUpdate,
  task,
  taskUpdate,
} from '../test/store-conformance/fixtures.js';

const { values: args } = parseArgs({
  options: {
    commands: { type: 'string', default: '20000' },
    active: { type: 'string', default: '100000' },
    repeat: { type: 'string', default: '3' },
  },
});
const COMMANDS = Number(args.commands);
const ACTIVE = Number(args.active);
const REPEAT = Number(args.repeat);

const TRIGGERS = [
  'commands_status_transition',
  'commands_compensation_transition',
  'tasks_status_transition',
  'undo_steps_status_transition',
];

async function withStore<T>(
  options: Omit<SqliteStoreOptions, 'path'>,
  triggers: boolean,
  fn: (store: ReturnType<typeof sqliteStore>) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'coco-bench-'));
  const path = join(dir, 'bench.db');
  const store = sqliteStore({ path, ...options });
  try {
    await store.migrate();
    if (!triggers) {
      const db = new Database(path);
      for (const t of TRIGGERS) db.exec(`DROP TRIGGER ${t}`);
      db.close();
    }
    await store.open('bench');
    return await fn(store);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The four writes of wave `w` (commands `w*size+1 ..`), by step. */
function wave(
  w: number,
  size: number,
  step: 0 | 1 | 2 | 3,
  into: { -readonly [K in keyof ChangeBatch]: ChangeBatch[K][number][] },
): void {
  for (let i = 1; i <= size; i++) {
    const id = w * size + i;
    const c: CommandRecord = command(id, { params: { volume: `vol-${id}`, size: 1024 } });
    const t: TaskRecord = task(id, 0, { args: { volume: `vol-${id}` } });
    if (step === 0) {
      into.commandInserts.push({
        ...c,
        status: 'waiting',
        taskCount: 1,
        expectedTasks: 1,
        stageDone: true,
      });
      into.taskInserts.push(t);
    } else if (step === 1) {
      into.taskUpdates.push(taskUpdate({ ...t, status: 'running' }));
    } else if (step === 2) {
      into.taskUpdates.push(
        taskUpdate({ ...t, status: 'succeeded', result: { bytes: 1024 }, endedAt: T0 + 2 }),
      );
      into.commandUpdates.push(
        commandUpdate({
          ...c,
          status: 'succeeded',
          taskCount: 1,
          result: { ok: true },
          endedAt: T0 + 2,
          updatedAt: T0 + 2,
        }),
      );
    } else {
      into.commandUpdates.push(
        commandUpdate({
          ...c,
          status: 'succeeded',
          taskCount: 1,
          result: { ok: true },
          endedAt: T0 + 2,
          updatedAt: T0 + 3,
          tasksCleared: true,
        }),
      );
    }
  }
}

/** Commands per second through the four writes, pipelined in batches of `size` commands. */
async function applyRate(
  size: number,
  triggers: boolean,
  synchronous: 'FULL' | 'NORMAL',
): Promise<number> {
  const waves = Math.max(4, Math.floor(COMMANDS / size));
  // Build the batches first: only `apply` is timed.
  const batches: ChangeBatch[] = [];
  for (let k = 0; k < waves + 3; k++) {
    const b = { ...emptyBatch() } as {
      -readonly [K in keyof ChangeBatch]: ChangeBatch[K][number][];
    };
    for (const key of Object.keys(b) as (keyof ChangeBatch)[]) b[key] = [];
    for (const step of [0, 1, 2, 3] as const) {
      const w = k - step;
      if (w >= 0 && w < waves) wave(w, size, step, b);
    }
    batches.push(b);
  }
  return withStore({ synchronous }, triggers, async (store) => {
    const start = performance.now();
    for (const b of batches) await store.apply(b);
    const ms = performance.now() - start;
    return (waves * size) / (ms / 1000);
  });
}

/** Milliseconds of `loadActive` over `count` active commands with one task each (5 runs). */
async function loadTime(count: number): Promise<{ ms: number[]; commands: number; tasks: number }> {
  return withStore({ synchronous: 'NORMAL' }, true, async (store) => {
    for (let from = 1; from <= count; from += 1000) {
      const ids = Array.from({ length: Math.min(1000, count - from + 1) }, (_, i) => from + i);
      await store.apply({
        ...emptyBatch(),
        commandInserts: ids.map((id) =>
          command(id, {
            status: 'waiting',
            taskCount: 1,
            data: { step: 1 },
            params: { volume: `vol-${id}` },
          }),
        ),
        taskInserts: ids.map((id) => task(id, 0, { status: 'running' })),
      });
      // Ended commands too, which the load must skip through its partial index.
      await store.apply({
        ...emptyBatch(),
        commandInserts: ids.map((id) =>
          command(count + id, { status: 'succeeded', tasksCleared: true }),
        ),
      });
    }
    const ms: number[] = [];
    let snapshot = await store.loadActive();
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      snapshot = await store.loadActive();
      ms.push(performance.now() - start);
    }
    return { ms, commands: snapshot.commands.length, tasks: snapshot.tasks.length };
  });
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const median = (xs: readonly number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(
  `apply: ${fmt(COMMANDS)} one-task commands, 4 writes each, pipelined batches; ` +
    `${REPEAT} runs per line, triggers on/off interleaved (best / median)`,
);
console.log('batch  synchronous  triggers  commands/s best  median');
for (const synchronous of ['FULL', 'NORMAL'] as const) {
  for (const size of [100, 1000]) {
    const runs: Record<'on' | 'off', number[]> = { on: [], off: [] };
    // Interleaved, so that a burst of load elsewhere on the machine hits both alike.
    for (let r = 0; r < REPEAT; r++) {
      runs.on.push(await applyRate(size, true, synchronous));
      runs.off.push(await applyRate(size, false, synchronous));
    }
    for (const triggers of ['on', 'off'] as const) {
      const best = Math.max(...runs[triggers]);
      console.log(
        `${String(size).padStart(5)}  ${synchronous.padEnd(11)}  ${triggers.padEnd(8)}  ` +
          `${fmt(best).padStart(15)}  ${fmt(median(runs[triggers])).padStart(6)}`,
      );
    }
    const cost = (1 - Math.max(...runs.on) / Math.max(...runs.off)) * 100;
    console.log(`       trigger cost (best vs best): ${cost.toFixed(1)}%`);
  }
}

const load = await loadTime(ACTIVE);
console.log(
  `loadActive: ${fmt(load.commands)} active commands + ${fmt(load.tasks)} tasks ` +
    `(${fmt(ACTIVE)} ended commands beside them): ${load.ms.map((m) => `${fmt(m)} ms`).join(', ')} ` +
    `(best ${fmt(Math.min(...load.ms))} ms)`,
);
