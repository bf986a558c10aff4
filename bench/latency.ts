/**
 * Latency at light load: one command at a time (submit, wait for its durable end, then the
 * next), each a one-task command whose `noop` task an in-process agent ends at once. Measured per
 * command: from the engine learning that its task ended (the poll's answer:
 * `EndedCommand.lastTaskEndAt`) to its `ended` event (emitted once the outcome is committed) —
 * the span of the `coco_command_end_latency` metric. Also printed: submit → durable end.
 *
 * SQLite first (a temporary file, WAL + synchronous=FULL), then PostgreSQL at `COCO_PG_URL` (a
 * fresh schema, dropped at the end; `synchronous_commit=on` forced), skipped with a message and
 * `skipped: true` when no server answers. The last line is the PostgreSQL figure:
 * `{"bench":"latency","store":"postgres","value":<p50 ms>,"unit":"ms","p99":…,"sqlite":{…}}`.
 * Each store's figures come with its floor (`floor`): a one-row transaction alone, one at a
 * time, on the same disk or server — what the store's own commit takes, coco's work aside.
 *
 * Environment: `BENCH_LATENCY_N` (measured commands per store, 2,000), `BENCH_LATENCY_WARMUP`
 * (200).
 */
import Database from 'better-sqlite3';
import type pg from 'pg';
import { randomBytes } from 'node:crypto';
import { inProcessAgents } from '../src/brokers/in-process/broker.js';
import { createEngine, type Engine } from '../src/engine/engine.js';
import type { EndedCommand } from '../src/engine/events.js';
import type { Store } from '../src/store/port.js';
import { postgresStore } from '../src/store/postgres/pg-store.js';
import { sqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { BENCH_TUNING, machine, tempDb } from './lib.js';
import { benchCommands } from './patterns.js';
import { PG_URL, durableUrl, unreachable, withClient } from './pg-common.js';

const N = Number(process.env.BENCH_LATENCY_N ?? 2_000);
const WARMUP = Number(process.env.BENCH_LATENCY_WARMUP ?? 200);

const { one } = benchCommands('a1');

/** Percentiles of one store's run, in milliseconds. */
interface Figures {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Submit → durable end, p50 and p99. */
  submitP50: number;
  submitP99: number;
  n: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

const ms = (x: number): number => +x.toFixed(3);

/** Runs `n` commands one at a time on `engine`; returns task end → durable end and submit → end. */
async function oneAtATime(engine: Engine, n: number): Promise<{ end: number[]; total: number[] }> {
  const end: number[] = [];
  const total: number[] = [];
  /** Ended commands not yet taken: `ended` may come before the submit's answer is read. */
  const ended = new Map<number, { lastTaskEndAt: number; at: number }>();
  let wake: (() => void) | null = null;
  const off = engine.on('ended', (c: EndedCommand) => {
    ended.set(c.id, { lastTaskEndAt: c.lastTaskEndAt, at: performance.now() });
    wake?.();
  });
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const { id } = await engine.submit(one, { i });
      while (!ended.has(id)) await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
      const e = ended.get(id)!;
      ended.delete(id);
      end.push(e.at - e.lastTaskEndAt);
      total.push(e.at - t0);
    }
  } finally {
    off();
  }
  return { end, total };
}

/** Warms up, measures, stops the engine. */
async function measure(store: Store, nodeId: string): Promise<Figures> {
  const engine = createEngine({
    store,
    agents: inProcessAgents(['a1'], { history: false }),
    commands: [one],
    nodeId,
    tuning: BENCH_TUNING,
    tracer: null,
  });
  await engine.start();
  try {
    await oneAtATime(engine, WARMUP);
    const { end, total } = await oneAtATime(engine, N);
    end.sort((a, b) => a - b);
    total.sort((a, b) => a - b);
    return {
      p50: ms(percentile(end, 0.5)),
      p90: ms(percentile(end, 0.9)),
      p99: ms(percentile(end, 0.99)),
      max: ms(end.at(-1) ?? NaN),
      submitP50: ms(percentile(total, 0.5)),
      submitP99: ms(percentile(total, 0.99)),
      n: end.length,
    };
  } finally {
    await engine.stop();
  }
}

/**
 * The floor under the PostgreSQL figure, measured on the same server in the same window: one
 * transaction at a time, BEGIN + a one-row UPDATE by primary key + COMMIT written at once (as
 * coco pipelines a batch), each waiting for its WAL flush. Whatever coco adds to a command's end
 * is above this.
 */
async function pgFloor(
  client: pg.Client,
  schema: string,
  n: number,
): Promise<{ p50: number; p99: number }> {
  await client.query(`CREATE TABLE "${schema}".floor (id int PRIMARY KEY, v bigint NOT NULL)`);
  await client.query(`INSERT INTO "${schema}".floor VALUES (1, 0)`);
  (client as pg.Client & { pipeline: boolean }).pipeline = true;
  const times: number[] = [];
  for (let i = 0; i < WARMUP + n; i++) {
    const t0 = performance.now();
    await Promise.all([
      client.query('BEGIN'),
      client.query({
        name: 'floor',
        text: `UPDATE "${schema}".floor SET v = $1 WHERE id = 1`,
        values: [i],
      }),
      client.query('COMMIT'),
    ]);
    if (i >= WARMUP) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: ms(percentile(times, 0.5)), p99: ms(percentile(times, 0.99)) };
}

/**
 * The floor under the SQLite figure, on a file beside the store's in the same window: one
 * transaction at a time on one connection (WAL, synchronous=FULL, as the store), BEGIN IMMEDIATE +
 * a one-row UPDATE by primary key + COMMIT, each waiting for its fsync. Whatever coco adds (the
 * engine's work, the hand-off to the writer thread and back) is above this; what the disk's own
 * sync takes at the tail is in it.
 */
function sqliteFloor(path: string, n: number): { p50: number; p99: number } {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE floor (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)');
    db.exec('INSERT INTO floor VALUES (1, 0)');
    const begin = db.prepare('BEGIN IMMEDIATE');
    const update = db.prepare('UPDATE floor SET v = ? WHERE id = 1');
    const commit = db.prepare('COMMIT');
    const times: number[] = [];
    for (let i = 0; i < WARMUP + n; i++) {
      const t0 = performance.now();
      begin.run();
      update.run(i);
      commit.run();
      if (i >= WARMUP) times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return { p50: ms(percentile(times, 0.5)), p99: ms(percentile(times, 0.99)) };
  } finally {
    db.close();
  }
}

function line(store: string, f: Figures): string {
  return `  ${store}: task end -> command ended durably p50 ${f.p50} ms, p90 ${f.p90} ms, p99 ${f.p99} ms, max ${f.max} ms; submit -> durable end p50 ${f.submitP50} ms, p99 ${f.submitP99} ms (${f.n} commands)`;
}

const db = tempDb();
let sqliteRun: Figures;
let sqliteFloorFigures: { p50: number; p99: number };
try {
  sqliteRun = await measure(sqliteStore({ path: db.path, synchronous: 'FULL' }), 'latency');
  sqliteFloorFigures = sqliteFloor(`${db.path}.floor`, N);
} finally {
  db.cleanup();
}
const sqlite = { ...sqliteRun, floor: sqliteFloorFigures };
const sqliteFloorLine = `  sqlite floor (BEGIN IMMEDIATE + a one-row UPDATE + COMMIT, one at a time, one connection, same disk): p50 ${sqliteFloorFigures.p50} ms, p99 ${sqliteFloorFigures.p99} ms`;
const head = `latency: one command at a time, one noop task each, ${N} measured after ${WARMUP} (${machine()})`;

const url = durableUrl(PG_URL);
const reason = await unreachable(url);
if (reason !== null) {
  console.log(head);
  console.log(line('sqlite (WAL, synchronous=FULL)', sqlite));
  console.log(sqliteFloorLine);
  console.log(
    `  postgres: skipped — no PostgreSQL server answers at ${PG_URL} (${reason}); set COCO_PG_URL to run it`,
  );
  console.log(
    JSON.stringify({ bench: 'latency', store: 'postgres', skipped: true, reason, sqlite }),
  );
} else {
  const schema = `bench_latency_${randomBytes(6).toString('hex')}`;
  let pgFigures: Figures;
  let floor: { p50: number; p99: number };
  try {
    pgFigures = await measure(postgresStore({ url, schema }), 'latency');
    floor = await withClient(url, (c) => pgFloor(c, schema, N));
  } finally {
    await withClient(url, (c) => c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
  }
  console.log(head);
  console.log(line('sqlite (WAL, synchronous=FULL)', sqlite));
  console.log(sqliteFloorLine);
  console.log(line('postgres (1 node, synchronous_commit=on)', pgFigures));
  console.log(
    `  postgres floor (BEGIN + a one-row UPDATE + COMMIT, pipelined, one at a time, same server): p50 ${floor.p50} ms, p99 ${floor.p99} ms — coco's p50 is ${(pgFigures.p50 / floor.p50).toFixed(2)}× it`,
  );
  console.log(
    JSON.stringify({
      bench: 'latency',
      store: 'postgres',
      value: pgFigures.p50,
      unit: 'ms',
      p90: pgFigures.p90,
      p99: pgFigures.p99,
      max: pgFigures.max,
      submitP50: pgFigures.submitP50,
      submitP99: pgFigures.submitP99,
      n: pgFigures.n,
      floor,
      sqlite,
    }),
  );
}
