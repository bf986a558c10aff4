/**
 * Retention under a steady workload: the store's size over time with retention on (a node's
 * schedule, a short max age) against the same workload without it.
 *
 * The workload: fan-out parents (2 children, one `noop` task each, on in-process agents) submitted
 * at a fixed rate, with the job view kept (its tables are in the store too). Each phase starts
 * on a fresh store and runs for `BENCH_RETENTION_SECONDS`; every 5 s the store's size is sampled:
 *
 * - SQLite: the database file after `PRAGMA wal_checkpoint(TRUNCATE)` (deleted rows leave free
 *   pages in the file, which later inserts reuse: the file stops growing, it does not shrink),
 *   and the pages in use (`page_count - freelist_count`).
 * - PostgreSQL (`COCO_PG_URL`; skipped when no server answers): `pg_total_relation_size` of every
 *   table of the schema (indexes and TOAST included). PostgreSQL reuses the space of deleted rows
 *   once VACUUM has marked it free; the bench runs a plain `VACUUM` of the schema's tables after
 *   each retention pass, standing in for autovacuum (which the shared test server has off, and
 *   whose default 1-minute nap is as long as a phase). Without retention there is nothing to
 *   vacuum and the same VACUUM runs anyway, for a fair comparison.
 *
 * The figure (`value`) is the growth ratio with retention: the last sample over the first of the
 * steady window (from twice the max age on, when the store holds a full max age of trees). The
 * same ratio without retention, and both growths in bytes per minute, come with it.
 *
 * `node --import tsx bench/retention.ts [sqlite|postgres]` (or `npm run bench -- retention`).
 * Environment: `BENCH_RETENTION_SECONDS` (per phase, default 60), `BENCH_RETENTION_RATE`
 * (parents per second, 50), `BENCH_RETENTION_MAX_AGE_MS` (10,000),
 * `BENCH_RETENTION_WITHOUT_SECONDS` (the phase without retention, default the same as with: a
 * 30-minute run with retention needs only a few minutes without to show the linear growth).
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg from 'pg';
import { inProcessAgents } from '../src/brokers/in-process/broker.js';
import type { Logger } from '../src/core/command-type.js';
import { createEngine } from '../src/engine/engine.js';
import { createJobMonitor } from '../src/jobs/monitor.js';
import { postgresJobStore } from '../src/jobs/postgres/job-store.js';
import { sqliteJobStore } from '../src/jobs/sqlite/job-store.js';
import { RetentionSchedule } from '../src/server/retention.js';
import { postgresStore } from '../src/store/postgres/pg-store.js';
import { sqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { BENCH_TUNING, machine, tempDb } from './lib.js';
import { benchCommands } from './patterns.js';

const kind = process.argv[2] === 'postgres' ? 'postgres' : 'sqlite';
const SECONDS = Number(process.env.BENCH_RETENTION_SECONDS ?? 60);
const WITHOUT_SECONDS = Number(process.env.BENCH_RETENTION_WITHOUT_SECONDS ?? SECONDS);
const RATE = Number(process.env.BENCH_RETENTION_RATE ?? 50);
const MAX_AGE_MS = Number(process.env.BENCH_RETENTION_MAX_AGE_MS ?? 10_000);
/** Retention passes: often, so that the store holds about one max age of trees. */
const INTERVAL_MS = 2_000;
/** Submits are spread over the second in ticks of this length. */
const TICK_MS = 100;
/** How often the size is sampled. */
const SAMPLE_MS = 5_000;
const PG_URL = process.env.COCO_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const { leaf, fanout } = benchCommands('a1');

interface Sample {
  /** Seconds since the phase started. */
  readonly t: number;
  readonly bytes: number;
  /** SQLite: bytes of the pages in use; PostgreSQL: same as bytes. */
  readonly used: number;
  readonly commands: number;
  readonly jobs: number;
}

/** The store of one phase: the engine's and the job view's, how to measure it, how to drop it. */
interface PhaseStore {
  readonly store: ReturnType<typeof sqliteStore> | ReturnType<typeof postgresStore>;
  readonly jobs: ReturnType<typeof sqliteJobStore> | ReturnType<typeof postgresJobStore>;
  measure(t: number): Promise<Sample>;
  /** After each retention pass (PostgreSQL: VACUUM, standing in for autovacuum). */
  afterPass(): Promise<void>;
  drop(): Promise<void>;
}

function sqlitePhase(): PhaseStore {
  const db = tempDb();
  return {
    store: sqliteStore({ path: db.path, synchronous: 'FULL' }),
    jobs: sqliteJobStore({ path: db.path }),
    async measure(t) {
      const raw = new Database(db.path);
      try {
        raw.pragma('busy_timeout = 10000');
        raw.pragma('wal_checkpoint(TRUNCATE)');
        const pages = raw.pragma('page_count', { simple: true }) as number;
        const free = raw.pragma('freelist_count', { simple: true }) as number;
        const size = raw.pragma('page_size', { simple: true }) as number;
        const count = (table: string): number =>
          raw.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
        return {
          t,
          bytes: statSync(db.path).size,
          used: (pages - free) * size,
          commands: count('commands'),
          jobs: count('job_jobs'),
        };
      } finally {
        raw.close();
      }
    },
    async afterPass() {},
    async drop() {
      db.cleanup();
    },
  };
}

function postgresPhase(admin: pg.Pool): PhaseStore {
  const schema = `coco_bench_ret_${randomBytes(4).toString('hex')}`;
  const tables = async (): Promise<string[]> =>
    (
      await admin.query<{ name: string }>(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name FROM pg_class c " +
          "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
        [schema],
      )
    ).rows.map((r) => r.name);
  return {
    store: postgresStore({ url: PG_URL, schema }),
    jobs: postgresJobStore({ url: PG_URL, schema }),
    async measure(t) {
      const r = await admin.query<{ bytes: string; commands: string; jobs: string }>(
        'SELECT (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ' +
          "ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r') AS bytes, " +
          `(SELECT count(*) FROM "${schema}".commands) AS commands, ` +
          `(SELECT count(*) FROM "${schema}".job_jobs) AS jobs`,
        [schema],
      );
      const row = r.rows[0]!;
      const bytes = Number(row.bytes);
      return { t, bytes, used: bytes, commands: Number(row.commands), jobs: Number(row.jobs) };
    },
    async afterPass() {
      for (const table of await tables()) await admin.query(`VACUUM ${table}`);
    },
    async drop() {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
  };
}

/** One phase: the workload for `seconds`, retention on or off; the size samples. */
async function phase(
  p: PhaseStore,
  retention: boolean,
  seconds: number,
): Promise<{ samples: Sample[]; parents: number }> {
  const engine = createEngine({
    store: p.store,
    agents: inProcessAgents(['a1'], { history: false }),
    commands: [leaf, fanout],
    tuning: BENCH_TUNING,
  });
  const monitor = createJobMonitor({ engine, store: p.jobs });
  await engine.start();
  await monitor.start();
  // The node's own schedule (src/server/retention.ts), with the bench's interval and max age.
  const schedule = retention
    ? new RetentionSchedule({
        maxAgeMs: MAX_AGE_MS,
        intervalMs: INTERVAL_MS,
        batch: 100,
        budgetMs: 30_000,
        logger: silent,
        target: () => ({
          nodeId: engine.nodeId,
          target: {
            prune: async (request, onBatch) => {
              const r = await engine.prune(request, onBatch);
              await p.afterPass();
              return r;
            },
            get: (id) => engine.get(id),
            jobs: monitor.jobStore,
          },
        }),
      })
    : null;
  schedule?.start();
  // Without retention, the same VACUUM cadence (PostgreSQL), so that only retention differs.
  const vacuum = retention ? null : setInterval(() => void p.afterPass(), INTERVAL_MS);
  const began = performance.now();
  let parents = 0;
  let submitting = Promise.resolve();
  const perTick = (RATE * TICK_MS) / 1000;
  let owed = 0;
  const ticker = setInterval(() => {
    owed += perTick;
    const n = Math.floor(owed);
    owed -= n;
    if (n === 0) return;
    parents += n;
    const items = Array.from({ length: n }, () => ({ type: fanout, params: { children: 2 } }));
    submitting = submitting.then(() => engine.submitMany(items).then(() => undefined));
  }, TICK_MS);
  const samples: Sample[] = [await p.measure(0)];
  const sampleAt = (k: number): Promise<void> =>
    new Promise((r) => setTimeout(r, Math.max(0, began + k * SAMPLE_MS - performance.now())));
  for (let k = 1; k * SAMPLE_MS <= seconds * 1000; k++) {
    await sampleAt(k);
    // Stamped with the nominal time: a timer may fire a hair early.
    const s = await p.measure((k * SAMPLE_MS) / 1000);
    samples.push(s);
    console.log(
      `  ${retention ? 'with' : 'without'} retention t=${s.t.toFixed(0)}s: ${(s.bytes / 1024).toFixed(0)} KiB` +
        ` (in use ${(s.used / 1024).toFixed(0)} KiB), ${s.commands} commands, ${s.jobs} jobs`,
    );
  }
  clearInterval(ticker);
  if (vacuum) clearInterval(vacuum);
  await submitting;
  await schedule?.stop();
  await monitor.stop();
  await engine.stop();
  return { samples, parents };
}

/** Growth over the steady window (from twice the max age on): ratio and bytes per minute. */
function growth(samples: readonly Sample[], field: 'bytes' | 'used') {
  const window = samples.filter((s) => s.t * 1000 >= 2 * MAX_AGE_MS);
  const first = window[0] ?? samples[0]!;
  const last = window.at(-1) ?? samples.at(-1)!;
  const minutes = Math.max((last.t - first.t) / 60, 1e-9);
  const peak = Math.max(...window.map((s) => s[field]));
  return {
    ratio: +(last[field] / first[field]).toFixed(3),
    /** The largest sample of the window over its first: a store that grew and shrank shows here. */
    peakRatio: +(peak / first[field]).toFixed(3),
    bytesPerMinute: Math.round((last[field] - first[field]) / minutes),
    from: first.t,
  };
}

let admin: pg.Pool | null = null;
if (kind === 'postgres') {
  admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
  try {
    await admin.query('SELECT 1');
  } catch (error) {
    console.log(`retention (postgres): skipped, no PostgreSQL at ${PG_URL} (${String(error)})`);
    console.log(JSON.stringify({ bench: 'retention', store: 'postgres', skipped: true }));
    await admin.end();
    process.exit(0);
  }
}
const make = (): PhaseStore => (admin ? postgresPhase(admin) : sqlitePhase());

console.log(
  `retention (${kind}): ${RATE} fan-out parents/s (2 children, a noop task each; job view on), ` +
    `${SECONDS} s with retention, ${WITHOUT_SECONDS} s without, max age ${MAX_AGE_MS / 1000} s, a pass every ${INTERVAL_MS / 1000} s (${machine()})`,
);
const results: Record<string, { samples: Sample[]; parents: number }> = {};
for (const retention of [false, true]) {
  const p = make();
  try {
    results[retention ? 'with' : 'without'] = await phase(
      p,
      retention,
      retention ? SECONDS : WITHOUT_SECONDS,
    );
  } finally {
    await p.drop();
  }
}
await admin?.end();

const withR = results.with!;
const without = results.without!;
const g = growth(withR.samples, 'bytes');
const gUsed = growth(withR.samples, 'used');
const n = growth(without.samples, 'bytes');
const series = (s: readonly Sample[]): number[] => s.map((x) => Math.round(x.bytes / 1024));
console.log(
  `  with retention: ${series(withR.samples).join(' ')} KiB (every ${SAMPLE_MS / 1000} s); ` +
    `steady window from ${g.from.toFixed(0)} s: x${g.ratio} (${g.bytesPerMinute} B/min; pages in use x${gUsed.ratio})`,
);
console.log(
  `  without:        ${series(without.samples).join(' ')} KiB; same window: x${n.ratio} (${n.bytesPerMinute} B/min)`,
);
console.log(
  JSON.stringify({
    bench: 'retention',
    store: kind,
    value: g.ratio,
    unit: 'growth ratio over the steady window (1 = flat)',
    bytesPerMinute: g.bytesPerMinute,
    withoutRatio: n.ratio,
    withoutBytesPerMinute: n.bytesPerMinute,
    usedRatio: gUsed.ratio,
    peakRatio: g.peakRatio,
    rate: RATE,
    seconds: SECONDS,
    withoutSeconds: WITHOUT_SECONDS,
    maxAgeMs: MAX_AGE_MS,
    parents: { with: withR.parents, without: without.parents },
    seriesKiB: { with: series(withR.samples), without: series(without.samples) },
  }),
);
