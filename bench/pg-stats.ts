/**
 * What a PostgreSQL benchmark run leaves on disk (issue 15): with `BENCH_PG_STATS`, bench/pg.ts
 * takes a {@link diskMark} once the schema is migrated and prints {@link diskReport} once the
 * nodes have stopped (their backends gone, so their table statistics are flushed), before the
 * schema is dropped. Per table: rows updated, of those HOT (no new index entries), dead row
 * versions left, and table + index + TOAST bytes; for the whole schema, bytes and WAL per ended
 * command. WAL is the server's (pg_current_wal_lsn), so the figure is this run's only on a
 * server nobody else writes to meanwhile.
 */
import { readFileSync } from 'node:fs';
import type pg from 'pg';

/** Where the WAL stood when the schema was ready. */
export interface DiskMark {
  lsn: string;
}

/** One table's figures. */
export interface TableDisk {
  table: string;
  inserted: number;
  updated: number;
  hot: number;
  dead: number;
  bytes: number;
}

/** One index's figures: bytes, and how many scans used it. */
export interface IndexDisk {
  index: string;
  bytes: number;
  scans: number;
}

/** What a run left. */
export interface DiskReport {
  commands: number;
  tables: TableDisk[];
  indexes: IndexDisk[];
  bytesPerCommand: number;
  deadPerCommand: number;
  walPerCommand: number;
  hotRatio: number;
}

/**
 * How long to wait for statistics not yet flushed: a backend that goes idle flushes its pending
 * counts within PostgreSQL's idle interval (10 s in 15); the nodes' backends have exited by the
 * time this runs (which flushes them), so this is a safety margin for the server's own lag.
 */
const FLUSH_WAIT_MS = 1_000;

/** The server's WAL position now. */
export async function diskMark(client: pg.Client): Promise<DiskMark> {
  const r = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return { lsn: r.rows[0]!.lsn };
}

/** The figures of `schema` since `mark`, per ended command. */
export async function diskReport(
  client: pg.Client,
  schema: string,
  mark: DiskMark,
): Promise<DiskReport> {
  await new Promise((resolve) => setTimeout(resolve, FLUSH_WAIT_MS));
  await client.query('SELECT pg_stat_force_next_flush()');
  await client.query('SELECT pg_stat_clear_snapshot()');
  const wal = await client.query<{ bytes: string }>(
    'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint AS bytes',
    [mark.lsn],
  );
  const rows = await client.query<{
    relname: string;
    ins: string;
    upd: string;
    hot: string;
    dead: string;
    bytes: string;
  }>(
    'SELECT relname, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_hot_upd AS hot, n_dead_tup AS dead, ' +
      'pg_total_relation_size(relid) AS bytes FROM pg_stat_user_tables WHERE schemaname = $1 ORDER BY relname',
    [schema],
  );
  const indexRows = await client.query<{ indexrelname: string; bytes: string; scans: string }>(
    'SELECT indexrelname, pg_relation_size(indexrelid) AS bytes, idx_scan AS scans ' +
      'FROM pg_stat_user_indexes WHERE schemaname = $1 AND relname IN ($2, $3) ORDER BY indexrelname',
    [schema, 'commands', 'tasks'],
  );
  const indexes = indexRows.rows.map((r) => ({
    index: r.indexrelname,
    bytes: Number(r.bytes),
    scans: Number(r.scans),
  }));
  const heap = await client.query<{ commands: string; tasks: string }>(
    `SELECT pg_relation_size('"${schema}".commands') AS commands, pg_relation_size('"${schema}".tasks') AS tasks`,
  );
  const ended = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM "${schema}".commands WHERE NOT active`,
  );
  const commands = Number(ended.rows[0]!.n);
  const tables = rows.rows.map((r) => ({
    table: r.relname,
    inserted: Number(r.ins),
    updated: Number(r.upd),
    hot: Number(r.hot),
    dead: Number(r.dead),
    bytes: Number(r.bytes),
  }));
  const total = (k: 'bytes' | 'dead' | 'updated' | 'hot'): number =>
    tables.reduce((a, t) => a + t[k], 0);
  const per = (x: number): number => Math.round((x / Math.max(1, commands)) * 100) / 100;
  indexes.push(
    { index: '(heap) commands', bytes: Number(heap.rows[0]!.commands), scans: 0 },
    { index: '(heap) tasks', bytes: Number(heap.rows[0]!.tasks), scans: 0 },
  );
  return {
    commands,
    tables,
    indexes,
    bytesPerCommand: per(total('bytes')),
    deadPerCommand: per(total('dead')),
    walPerCommand: per(Number(wal.rows[0]!.bytes)),
    hotRatio: Math.round((total('hot') / Math.max(1, total('updated'))) * 1000) / 1000,
  };
}

/** Prints `report`: a line per table that was written, then the totals and one JSON line. */
export function printDisk(report: DiskReport): void {
  const c = Math.max(1, report.commands);
  console.log(`  disk after ${report.commands} ended commands (per command):`);
  for (const t of report.tables) {
    if (t.inserted + t.updated === 0) continue;
    console.log(
      `    ${t.table.padEnd(24)} ins ${(t.inserted / c).toFixed(2)}  upd ${(t.updated / c).toFixed(2)}  ` +
        `hot ${(t.hot / c).toFixed(2)}  dead ${(t.dead / c).toFixed(2)}  ${Math.round(t.bytes / c)} B`,
    );
  }
  console.log(
    `    commands and tasks, B per command (scans): ${report.indexes
      .map((i) => `${i.index} ${Math.round(i.bytes / c)}${i.scans > 0 ? ` (${i.scans})` : ''}`)
      .join(', ')}`,
  );
  console.log(
    `    total: ${report.bytesPerCommand} B, ${report.deadPerCommand} dead rows, ` +
      `WAL ${report.walPerCommand} B per command; HOT ${(report.hotRatio * 100).toFixed(1)} % of updates`,
  );
  console.log(JSON.stringify({ bench: 'pg-disk', ...report }));
}

/**
 * Zeroes pg_stat_statements, when the server has it (`shared_preload_libraries`), so that
 * {@link printStatements} covers the measured runs only; false without it.
 */
export async function resetStatements(client: pg.Client): Promise<boolean> {
  try {
    await client.query('SELECT pg_stat_statements_reset()');
    return true;
  } catch {
    return false;
  }
}

/** Prints the server's time per statement of `schema` since {@link resetStatements}, top first. */
export async function printStatements(client: pg.Client, schema: string): Promise<void> {
  const r = await client.query<{
    q: string;
    calls: string;
    total: number;
    mean: number;
    rows: string;
  }>(
    "SELECT left(regexp_replace(query, $2, '', 'g'), 60) AS q, calls, total_exec_time AS total, " +
      'mean_exec_time AS mean, rows FROM pg_stat_statements WHERE query LIKE $1 ' +
      'ORDER BY total_exec_time DESC LIMIT 12',
    [`%${schema}%`, `"${schema}"\\.`],
  );
  console.log('  server time by statement (pg_stat_statements, measured runs):');
  for (const s of r.rows)
    console.log(
      `    ${Math.round(s.total)} ms  ${s.calls}×  ${s.mean.toFixed(2)} ms  ${s.rows} rows  ${s.q}`,
    );
}

/**
 * The shared buffer pool around one measured run (`BENCH_PG_POOL`): the server's buffer
 * counters (pg_stat_bgwriter, cluster-wide: a server nobody else uses gives this run's), the
 * pool's free and dirty buffers when pg_buffercache is installed, and what the apply backends
 * wrote through write(2) (/proc/PID/io: their WAL and any dirty page they had to evict).
 */
export interface PoolSample {
  /** Buffers allocated (a free one taken or a victim evicted). */
  alloc: number;
  /** Dirty buffers written by backends themselves (no bgwriter or checkpointer ahead of them). */
  backend: number;
  /** Written by the background writer. */
  clean: number;
  /** Written by checkpoints. */
  checkpoint: number;
  /** Buffers holding no page, and dirty ones; null without pg_buffercache. */
  free: number | null;
  dirty: number | null;
  /** Bytes and write calls of the apply backends (/proc/PID/io); null where unreadable. */
  applyWrote: { bytes: number; calls: number } | null;
  /** Nanoseconds the apply backends have been on CPU (/proc/PID/schedstat); null if unreadable. */
  applyCpuNs: number | null;
  /** Nanoseconds they were runnable but waited for a CPU (schedstat's run-queue time). */
  applyQueuedNs: number | null;
}

function procWrites(pids: ReadonlySet<number>): { bytes: number; calls: number } | null {
  let bytes = 0;
  let calls = 0;
  for (const pid of pids) {
    try {
      const io = readFileSync(`/proc/${pid}/io`, 'utf8');
      bytes += Number(/^wchar: (\d+)/m.exec(io)?.[1] ?? 0);
      calls += Number(/^syscw: (\d+)/m.exec(io)?.[1] ?? 0);
    } catch {
      return null;
    }
  }
  return { bytes, calls };
}

/** Field `field` of the processes' /proc/PID/schedstat (0: ns on CPU, 1: ns waiting for one), summed. */
function procSchedNs(pids: ReadonlySet<number>, field: 0 | 1): number | null {
  let ns = 0;
  for (const pid of pids) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[field]);
    } catch {
      return null;
    }
  }
  return ns;
}

/** Reads the pool's counters now (see {@link PoolSample}). */
export async function poolSample(
  client: pg.Client,
  applyPids: ReadonlySet<number>,
): Promise<PoolSample> {
  const w = (
    await client.query<Record<'alloc' | 'backend' | 'clean' | 'checkpoint', string>>(
      'SELECT buffers_alloc AS alloc, buffers_backend AS backend, buffers_clean AS clean, ' +
        'buffers_checkpoint AS checkpoint FROM pg_stat_bgwriter',
    )
  ).rows[0]!;
  let free: number | null = null;
  let dirty: number | null = null;
  try {
    const b = (
      await client.query<{ free: string; dirty: string }>(
        'SELECT count(*) FILTER (WHERE relfilenode IS NULL) AS free, ' +
          'count(*) FILTER (WHERE isdirty) AS dirty FROM pg_buffercache',
      )
    ).rows[0]!;
    free = Number(b.free);
    dirty = Number(b.dirty);
  } catch {
    // No pg_buffercache in this database: the counters alone.
  }
  return {
    alloc: Number(w.alloc),
    backend: Number(w.backend),
    clean: Number(w.clean),
    checkpoint: Number(w.checkpoint),
    free,
    dirty,
    applyWrote: procWrites(applyPids),
    applyCpuNs: procSchedNs(applyPids, 0),
    applyQueuedNs: procSchedNs(applyPids, 1),
  };
}

/**
 * One line: the pool at the run's start, and the counters' growth over it; the apply backends'
 * CPU per unit of the run's `units` (commands or parents) and, given the run's `seconds`, where
 * each apply backend's wall time went: on CPU, waiting for a CPU (run queue), and the rest
 * asleep — waiting for its WAL flush (a COMMIT), for the node's next statements, or for a lock.
 */
export function printPool(
  run: number,
  before: PoolSample,
  after: PoolSample,
  units: number,
  seconds?: number,
  backends = 1,
): void {
  const d = (k: 'alloc' | 'backend' | 'clean' | 'checkpoint'): number => after[k] - before[k];
  const wrote =
    before.applyWrote && after.applyWrote
      ? `; apply backend wrote ${((after.applyWrote.bytes - before.applyWrote.bytes) / 1e6).toFixed(1)} MB in ${after.applyWrote.calls - before.applyWrote.calls} calls`
      : '';
  const cpuNs =
    before.applyCpuNs !== null && after.applyCpuNs !== null
      ? after.applyCpuNs - before.applyCpuNs
      : null;
  const queuedNs =
    before.applyQueuedNs !== null && after.applyQueuedNs !== null
      ? after.applyQueuedNs - before.applyQueuedNs
      : null;
  const cpu =
    cpuNs !== null ? `; apply backend CPU ${(cpuNs / 1e3 / units).toFixed(1)} µs/unit` : '';
  let split = '';
  if (cpuNs !== null && queuedNs !== null && seconds !== undefined && seconds > 0) {
    const wallNs = seconds * 1e9 * backends;
    const pct = (ns: number): string => `${Math.round((100 * ns) / wallNs)} %`;
    split = ` (of its wall time: on CPU ${pct(cpuNs)}, waiting for a CPU ${pct(queuedNs)}, asleep ${pct(Math.max(0, wallNs - cpuNs - queuedNs))})`;
  }
  console.log(
    `    pool, run ${run}: at start ${before.free ?? '?'} free, ${before.dirty ?? '?'} dirty; ` +
      `buffers alloc ${d('alloc')}, backend ${d('backend')}, clean ${d('clean')}, checkpoint ${d('checkpoint')}${wrote}${cpu}${split}`,
  );
}
