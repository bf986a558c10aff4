/**
 * What a command costs the PostgreSQL server (issue 15, item 7): one coco node (bench/pg-node.ts,
 * as in bench/pg.ts) runs a pattern in a fresh schema, and around each measured run — from `go`
 * until the run has settled (every task cleared) — this process reads the server's own counters:
 * - WAL: bytes between `pg_current_wal_lsn()` before and after, `pg_stat_wal` (records, full-page
 *   images, writes, fsyncs) — both cluster-wide — and, when the extension `pg_walinspect` is
 *   installed in the bench's database, the WAL records that touch this database's relations
 *   (the share that is ours on a shared server; commit records name no relation: they are left
 *   out, about 40 B per transaction, a transaction per batch);
 * - rows: `pg_stat_user_tables` of the schema (inserted, updated, of which HOT, deleted) and
 *   `pg_stat_database` (transactions committed and rolled back);
 * - CPU: the node's server backends (from /proc/<pid>/stat, as bench/pg.ts does), and every
 *   postgres process (the WAL writer, the checkpointer, autovacuum).
 *
 * A node costs the server something with no work too (lease renewals, the claim timer): an idle
 * window of `BENCH_PG_IDLE_S` seconds after the warm-up measures that rate, and the per-command
 * figures have it subtracted (both are printed).
 *
 * Statistics are flushed by a backend at most once a second while busy and within 10 s of going
 * idle (PostgreSQL 15), so each sample waits {@link STATS_FLUSH_MS} first.
 *
 * `COCO_PG_URL=postgres://postgres@127.0.0.1:5432/h_mine node dist/bench/pg-cost.js
 * [one-task|fanout|chain...]` (or `npm run bench -- pg-cost`). Env as bench/pg.ts: BENCH_REPEATS
 * (3), BENCH_PG_N (30,000), BENCH_PG_PARENTS (1,000), BENCH_IN_FLIGHT (10,000), BENCH_CHUNK (1,000).
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { postgresStore } from '../src/store/postgres/pg-store.js';
import { BENCH_TUNING, machine, median, zeroOps, type OpCounts } from './lib.js';
import {
  CHILDREN,
  PATTERNS,
  PG_URL,
  UNITS,
  durableUrl,
  unreachable,
  withClient,
  type Pattern,
} from './pg-common.js';
import { Node, READY_TIMEOUT_MS, RUN_TIMEOUT_MS, children } from './pg-fork.js';
import { cpuSample, postgresSince, type CpuSample } from './pg-report.js';

/**
 * PostgreSQL 15 flushes a backend's pending statistics at most once a second while it works
 * and within 10 s (PGSTAT_IDLE_INTERVAL) of going idle: a sample taken sooner would miss rows.
 */
const STATS_FLUSH_MS = 11_000;
/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const HZ = 100;

const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const REPEATS = env('BENCH_REPEATS', 3);
const COMMANDS = env('BENCH_PG_N', 30_000);
const PARENTS = env('BENCH_PG_PARENTS', 1_000);
const IN_FLIGHT = env('BENCH_IN_FLIGHT', 10_000);
const CHUNK = env('BENCH_CHUNK', 1_000);
const IDLE_S = env('BENCH_PG_IDLE_S', 20);

const url = durableUrl(PG_URL);
const patterns = process.argv.slice(2).filter((a) => (PATTERNS as readonly string[]).includes(a));
if (patterns.length === 0) patterns.push(...PATTERNS);

/** The server's counters at one moment. */
interface Sample {
  at: number;
  lsn: string;
  wal: { records: number; fpi: number; bytes: number; writes: number; syncs: number };
  db: { commits: number; rollbacks: number };
  checkpoints: number;
  rows: { ins: number; upd: number; hot: number; del: number };
  byTable: Map<string, { ins: number; upd: number; hot: number; del: number }>;
  cpu: CpuSample | null;
}

/**
 * One statement, so one transaction: a sample adds exactly one commit to the database's count
 * (taken off in {@link delta}), and its statistics are one snapshot.
 */
const SAMPLE_SQL = `
  SELECT pg_current_wal_lsn()::text AS lsn,
         w.wal_records, w.wal_fpi, w.wal_bytes, w.wal_write, w.wal_sync,
         d.xact_commit, d.xact_rollback,
         b.checkpoints_timed + b.checkpoints_req AS checkpoints,
         (SELECT coalesce(json_agg(json_build_array(t.relname, t.n_tup_ins, t.n_tup_upd,
                                                    t.n_tup_hot_upd, t.n_tup_del)), '[]')
            FROM pg_stat_user_tables t WHERE t.schemaname = $1) AS tables
    FROM pg_stat_wal w, pg_stat_bgwriter b, pg_stat_database d
   WHERE d.datname = current_database()`;

async function sample(c: pg.Client, schema: string, pids: Set<number>): Promise<Sample> {
  const w = (await c.query<Record<string, unknown>>(SAMPLE_SQL, [schema])).rows[0]!;
  const byTable = new Map<string, { ins: number; upd: number; hot: number; del: number }>();
  const rows = { ins: 0, upd: 0, hot: 0, del: 0 };
  for (const [name, ins, upd, hot, del] of w.tables as [string, number, number, number, number][]) {
    const r = { ins: Number(ins), upd: Number(upd), hot: Number(hot), del: Number(del) };
    byTable.set(name, r);
    for (const k of ['ins', 'upd', 'hot', 'del'] as const) rows[k] += r[k];
  }
  return {
    at: performance.now(),
    lsn: String(w.lsn),
    wal: {
      records: Number(w.wal_records),
      fpi: Number(w.wal_fpi),
      bytes: Number(w.wal_bytes),
      writes: Number(w.wal_write),
      syncs: Number(w.wal_sync),
    },
    db: { commits: Number(w.xact_commit), rollbacks: Number(w.xact_rollback) },
    checkpoints: Number(w.checkpoints),
    rows,
    byTable,
    cpu: cpuSample(pids),
  };
}

/** What happened between two samples. */
interface Delta {
  seconds: number;
  walBytes: number;
  /** WAL of records touching this database's relations (pg_walinspect), else NaN. */
  ourWalBytes: number;
  ourWalFpiBytes: number;
  /** Our WAL records and bytes by relation (table or index), with pg_walinspect. */
  walByRelation: Record<string, { records: number; bytes: number }>;
  walRecords: number;
  fpi: number;
  walWrites: number;
  walSyncs: number;
  /** Transactions committed in this database, the sampler's own one taken off. */
  commits: number;
  rollbacks: number;
  checkpoints: number;
  rows: { ins: number; upd: number; hot: number; del: number };
  byTable: Record<string, { ins: number; upd: number; hot: number; del: number }>;
  /** CPU seconds: the node's backends, every postgres process. */
  backendCpuS: number;
  postgresCpuS: number;
}

async function delta(c: pg.Client, a: Sample, b: Sample, walinspect: boolean): Promise<Delta> {
  const walBytes = Number(
    (await c.query<{ d: string }>('SELECT pg_wal_lsn_diff($2, $1)::text AS d', [a.lsn, b.lsn]))
      .rows[0]!.d,
  );
  let ours = { bytes: NaN, fpi: NaN };
  const walByRelation: Delta['walByRelation'] = {};
  if (walinspect) {
    const oid = (
      await c.query<{ oid: string }>(
        'SELECT oid::text FROM pg_database WHERE datname = current_database()',
      )
    ).rows[0]!.oid;
    const r = (
      await c.query<Record<string, string | null>>(
        `SELECT sum(record_length) FILTER (WHERE block_ref LIKE $3) AS bytes,
                sum(fpi_length) FILTER (WHERE block_ref LIKE $3) AS fpi
           FROM pg_get_wal_records_info($1, $2)`,
        [a.lsn, b.lsn, `%/${oid}/%`],
      )
    ).rows[0]!;
    ours = { bytes: Number(r.bytes ?? 0), fpi: Number(r.fpi ?? 0) };
    // By relation (the record's first block): which tables and indexes the WAL is for.
    const rels = await c.query<{ rel: string | null; records: string; bytes: string }>(
      `SELECT coalesce(c.relname, w.node) AS rel, count(*) AS records, sum(w.record_length) AS bytes
         FROM (SELECT substring(block_ref from 'rel \\d+/\\d+/(\\d+)') AS node, record_length
                 FROM pg_get_wal_records_info($1, $2) WHERE block_ref LIKE $3) w
         LEFT JOIN pg_class c ON c.relfilenode::text = w.node
        GROUP BY 1 ORDER BY 3 DESC`,
      [a.lsn, b.lsn, `%/${oid}/%`],
    );
    for (const row of rels.rows)
      walByRelation[row.rel ?? '?'] = { records: Number(row.records), bytes: Number(row.bytes) };
  }
  const byTable: Delta['byTable'] = {};
  for (const [name, t] of b.byTable) {
    const t0 = a.byTable.get(name) ?? { ins: 0, upd: 0, hot: 0, del: 0 };
    const d = {
      ins: t.ins - t0.ins,
      upd: t.upd - t0.upd,
      hot: t.hot - t0.hot,
      del: t.del - t0.del,
    };
    if (d.ins || d.upd || d.del) byTable[name] = d;
  }
  return {
    seconds: (b.at - a.at) / 1000,
    walBytes,
    ourWalBytes: ours.bytes,
    ourWalFpiBytes: ours.fpi,
    walByRelation,
    walRecords: b.wal.records - a.wal.records,
    fpi: b.wal.fpi - a.wal.fpi,
    walWrites: b.wal.writes - a.wal.writes,
    walSyncs: b.wal.syncs - a.wal.syncs,
    // The first sample's own transaction commits after it read the count.
    commits: b.db.commits - a.db.commits - 1,
    checkpoints: b.checkpoints - a.checkpoints,
    rollbacks: b.db.rollbacks - a.db.rollbacks,
    rows: {
      ins: b.rows.ins - a.rows.ins,
      upd: b.rows.upd - a.rows.upd,
      hot: b.rows.hot - a.rows.hot,
      del: b.rows.del - a.rows.del,
    },
    byTable,
    backendCpuS: a.cpu && b.cpu ? (b.cpu.ours - a.cpu.ours) / HZ : NaN,
    postgresCpuS: a.cpu && b.cpu ? postgresSince(a.cpu, b.cpu) / HZ : NaN,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fixed = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

async function measure(pattern: Pattern, c: pg.Client, walinspect: boolean): Promise<unknown> {
  const size = pattern === 'one-task' ? COMMANDS : PARENTS;
  /** Commands per unit: a parent and its children. */
  const perUnit = pattern === 'one-task' ? 1 : 1 + CHILDREN[pattern];
  const schema = `bench_cost_${randomBytes(6).toString('hex')}`;
  const migrator = postgresStore({ url, schema });
  await migrator.migrate();
  await migrator.close();
  const node = new Node(
    {
      pattern,
      url,
      schema,
      node: 1,
      share: size,
      warmup: Math.round(size / 5),
      inFlight: IN_FLIGHT,
      chunk: CHUNK,
      tuning: { ...BENCH_TUNING },
    },
    [...process.execArgv],
  );
  try {
    await node.next('ready', READY_TIMEOUT_MS);
    const pids = new Set(
      (
        await c.query<{ pid: number }>(
          'SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1',
          [`coco/%${schema}`],
        )
      ).rows.map((r) => r.pid),
    );
    await sleep(STATS_FLUSH_MS);
    // The node's cost with nothing to do (its lease, its timers), per second.
    const i0 = await sample(c, schema, pids);
    await sleep(IDLE_S * 1000);
    const idle = await delta(c, i0, await sample(c, schema, pids), walinspect);
    const runs: { seconds: number; d: Delta; ops: OpCounts }[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const s0 = await sample(c, schema, pids);
      const t0 = performance.now();
      node.send({ t: 'go', run: r });
      const done = await node.next('done', RUN_TIMEOUT_MS);
      const seconds = (done.at - t0) / 1000;
      await node.next('idle', RUN_TIMEOUT_MS);
      await sleep(STATS_FLUSH_MS);
      const d = await delta(c, s0, await sample(c, schema, pids), walinspect);
      runs.push({ seconds, d, ops: done.m.ops });
    }
    await node.stop();
    return report(pattern, size, perUnit, idle, runs);
  } finally {
    node.proc.kill('SIGKILL');
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
}

function report(
  pattern: Pattern,
  size: number,
  perUnit: number,
  idle: Delta,
  runs: { seconds: number; d: Delta; ops: OpCounts }[],
): unknown {
  const commands = size * perUnit;
  /** A run's figure per command, with the idle node's rate over the same span taken off. */
  const per = (f: (d: Delta) => number, net = true): number =>
    median(
      runs.map(({ d }) => (f(d) - (net ? (f(idle) / idle.seconds) * d.seconds : 0)) / commands),
    );
  const ops = runs.reduce((acc, r) => {
    for (const k of Object.keys(acc) as (keyof OpCounts)[]) acc[k] += r.ops[k];
    return acc;
  }, zeroOps());
  const batches = ops.batches / runs.length;
  const rate = median(runs.map((r) => size / r.seconds));
  const out = {
    bench: 'pg-cost',
    store: 'postgres',
    pattern,
    value: +per((d) => d.walBytes).toFixed(0),
    unit: 'WAL bytes per command (cluster-wide LSN, idle node rate subtracted)',
    rate: Math.round(rate),
    rateUnit: UNITS[pattern],
    commandsPerRun: commands,
    ourWalBytesPerCommand: +per((d) => d.ourWalBytes).toFixed(0),
    ourFpiBytesPerCommand: +per((d) => d.ourWalFpiBytes).toFixed(0),
    walRecordsPerCommand: +per((d) => d.walRecords).toFixed(2),
    fpiPerCommand: +per((d) => d.fpi).toFixed(3),
    walSyncsPerRun: median(runs.map((r) => r.d.walSyncs)),
    commandsPerWalSync: +median(runs.map((r) => commands / Math.max(1, r.d.walSyncs))).toFixed(1),
    rowsPerCommand: {
      inserted: +per((d) => d.rows.ins).toFixed(3),
      updated: +per((d) => d.rows.upd).toFixed(3),
      hotUpdated: +per((d) => d.rows.hot).toFixed(3),
      deleted: +per((d) => d.rows.del).toFixed(3),
    },
    byTablePerCommand: Object.fromEntries(
      Object.entries(runs.at(-1)!.d.byTable).map(([name, t]) => [
        name,
        Object.fromEntries(Object.entries(t).map(([k, v]) => [k, +(v / commands).toFixed(3)])),
      ]),
    ),
    walByRelationPerCommand: Object.fromEntries(
      Object.entries(runs.at(-1)!.d.walByRelation).map(([name, w]) => [
        name,
        { records: +(w.records / commands).toFixed(2), bytes: Math.round(w.bytes / commands) },
      ]),
    ),
    transactionsPerCommand: +per((d) => d.commits).toFixed(4),
    rollbacksPerRun: median(runs.map((r) => r.d.rollbacks)),
    batchesPerRun: Math.round(batches),
    transactionsPerBatch: +median(
      runs.map((r) => (r.d.commits - (idle.commits / idle.seconds) * r.d.seconds) / r.ops.batches),
    ).toFixed(2),
    backendCpuUsPerCommand: +(per((d) => d.backendCpuS) * 1e6).toFixed(1),
    postgresCpuUsPerCommand: +(per((d) => d.postgresCpuS) * 1e6).toFixed(1),
    idlePerSecond: {
      walBytes: Math.round(idle.walBytes / idle.seconds),
      ourWalBytes: Math.round(idle.ourWalBytes / idle.seconds),
      transactions: +(idle.commits / idle.seconds).toFixed(2),
      rowsUpdated: +(idle.rows.upd / idle.seconds).toFixed(2),
      backendCpuMs: +((idle.backendCpuS / idle.seconds) * 1000).toFixed(2),
    },
    gross: {
      walBytesPerCommand: +per((d) => d.walBytes, false).toFixed(0),
      backendCpuUsPerCommand: +(per((d) => d.backendCpuS, false) * 1e6).toFixed(1),
    },
    runs: runs.map((r) => ({
      seconds: +r.seconds.toFixed(2),
      sampledSeconds: +r.d.seconds.toFixed(1),
      walBytes: r.d.walBytes,
      ourWalBytes: r.d.ourWalBytes,
      walSyncs: r.d.walSyncs,
      checkpoints: r.d.checkpoints,
      commits: r.d.commits,
      batches: r.ops.batches,
      backendCpuS: r.d.backendCpuS,
    })),
  };
  console.log(
    `pg-cost ${pattern}: ${commands} commands per run (${size} ${UNITS[pattern].split('/')[0]}), ${runs.length} runs, median ${Math.round(rate)} ${UNITS[pattern]}`,
  );
  console.log(
    `  WAL per command ${out.value} B (ours by pg_walinspect ${fixed(out.ourWalBytesPerCommand, 0)} B, of it full-page images ${fixed(out.ourFpiBytesPerCommand, 0)} B; ${out.walRecordsPerCommand} records); ${out.commandsPerWalSync} commands per WAL fsync`,
  );
  console.log(
    `  rows per command: ${JSON.stringify(out.rowsPerCommand)}; transactions per command ${out.transactionsPerCommand}, per batch ${out.transactionsPerBatch} (${out.batchesPerRun} batches per run)`,
  );
  console.log(`  by table per command: ${JSON.stringify(out.byTablePerCommand)}`);
  console.log(`  our WAL by relation per command: ${JSON.stringify(out.walByRelationPerCommand)}`);
  console.log(
    `  server CPU per command: the node's backends ${out.backendCpuUsPerCommand} µs, all postgres processes ${out.postgresCpuUsPerCommand} µs`,
  );
  console.log(`  idle node, per second: ${JSON.stringify(out.idlePerSecond)}`);
  console.log(JSON.stringify(out));
  return out;
}

async function main(): Promise<void> {
  const reason = await unreachable(url);
  if (reason !== null) {
    console.log(`pg-cost: skipped — no PostgreSQL server answers at ${PG_URL} (${reason})`);
    return;
  }
  await withClient(url, async (c) => {
    const walinspect =
      (await c.query("SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect'")).rowCount === 1;
    console.log(
      `pg-cost (${machine()}): ${patterns.join(', ')}; pg_walinspect ${walinspect ? 'installed: WAL by database' : 'not installed: WAL cluster-wide only'}`,
    );
    for (const pattern of patterns) await measure(pattern as Pattern, c, walinspect);
  });
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  },
);
