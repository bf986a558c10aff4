/**
 * What each batch statement costs the server's apply backend, with no engine and no pipelining:
 * one connection with the apply connection's settings (applier.ts) writes one-task-shaped
 * batches — `BENCH_PG_N` commands and their tasks inserted, the previous batch's commands and
 * tasks ended (as a busy one-task node's batches are) — one statement at a time, and reads the
 * backend's CPU (/proc/PID/schedstat) around each, and the WAL inserted (`pg_current_wal_insert_lsn`,
 * cluster-wide: use a server nobody else writes to). The first `WARMUP` batches are not counted.
 *
 * `COCO_PG_URL=postgres://postgres@127.0.0.1:5432/mine node dist/bench/pg-statements.js`; env
 * `BENCH_PG_N` (commands per batch, 650: a one-task batch of the engine's ~2,600 rows),
 * `BENCH_PG_BATCHES` (60), `BENCH_PG_PERF` (a file: `perf record -g` of the backend over the
 * counted batches; `perf report -i FILE --children --sort sym -g none`), `BENCH_PG_ALTER` (SQL run
 * once the schema is migrated, `:S` standing for the quoted schema: what a schema change would
 * save, e.g. `DROP INDEX :S.commands_type`, measured before writing its migration). Steadier than the
 * wall-clock benches on a shared machine: CPU time of one process, the same rows every run;
 * interleave runs of two builds to compare them. Prints one JSON line last.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import pg from 'pg';
import { stepQuery } from '../src/store/postgres/applier.js';
import { batchSteps } from '../src/store/postgres/batch-steps.js';
import { postgresStore } from '../src/store/postgres/pg-store.js';
import { buildSql } from '../src/store/postgres/statements.js';
import type { ChangeBatch } from '../src/store/port.js';
import { PG_URL, durableUrl, unreachable } from './pg-common.js';
import { rawBatches } from './raw-pg.js';

const WARMUP = 5;
const N = Number(process.env.BENCH_PG_N ?? 650);
const BATCHES = Number(process.env.BENCH_PG_BATCHES ?? 60);

/** The one-task batches: batch k inserts group k and ends group k - 1. */
function batches(): ChangeBatch[] {
  const perUnit = {
    commandInserts: 1,
    taskInserts: 1,
    commandUpdates: 1,
    taskUpdates: 1,
    commandsSettled: 0,
  };
  const groups = rawBatches(perUnit, N * (WARMUP + BATCHES), N, 1, 'a1');
  const out: ChangeBatch[] = [];
  for (let k = 0; k < WARMUP + BATCHES; k++) {
    const ended = k > 0 ? groups[3 * (k - 1) + 1]! : null;
    out.push({
      ...groups[3 * k]!,
      commandUpdates: ended?.commandUpdates ?? [],
      taskUpdates: ended?.taskUpdates ?? [],
    });
  }
  return out;
}

async function main(): Promise<void> {
  const url = durableUrl(PG_URL);
  const reason = await unreachable(url);
  if (reason !== null) {
    console.log(`pg-statements: skipped — no PostgreSQL server at ${PG_URL} (${reason})`);
    return;
  }
  const schema = `bench_stmt_${randomBytes(6).toString('hex')}`;
  const store = postgresStore({ url, schema });
  await store.migrate();
  await store.close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const alter = process.env.BENCH_PG_ALTER;
  if (alter) await client.query(alter.replaceAll(':S', `"${schema}"`));
  let perf: ChildProcess | null = null;
  try {
    await client.query(
      'SET enable_hashjoin = off; SET enable_mergejoin = off; ' +
        'SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off',
    );
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!
      .pid;
    const cpuNs = (): number =>
      Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
    const sql = buildSql(schema);
    const all = batches();
    const spent: Record<string, number> = {};
    let lsn = '';
    let cpu0 = 0;
    for (let k = 0; k < all.length; k++) {
      if (k === WARMUP) {
        if (process.env.BENCH_PG_PERF) {
          const args = ['record', '-q', '-e', 'cpu-clock', '-F', '2999', '-g'];
          perf = spawn('perf', [...args, '-o', process.env.BENCH_PG_PERF, '-p', String(pid)], {
            stdio: 'ignore',
          });
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
        lsn = (await client.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l'))
          .rows[0]!.l;
        cpu0 = cpuNs();
      }
      const count = (name: string, ns: number): void => {
        if (k >= WARMUP) spent[name] = (spent[name] ?? 0) + ns;
      };
      let t = cpuNs();
      await client.query('BEGIN');
      for (const step of batchSteps(sql, all[k]!, 'n1')) {
        t = cpuNs();
        await client.query(stepQuery(sql, step));
        count(step.name, cpuNs() - t);
      }
      t = cpuNs();
      await client.query('COMMIT');
      count('commit', cpuNs() - t);
    }
    const cpu = cpuNs() - cpu0;
    if (perf) {
      const exited = once(perf, 'exit');
      perf.kill('SIGINT');
      await exited;
    }
    const wal = await client.query<{ b: string }>(
      'SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::bigint AS b',
      [lsn],
    );
    const commands = BATCHES * N;
    const us = (ns: number): number => Math.round((ns / 1e3 / commands) * 10) / 10;
    const perStatement = Object.fromEntries(Object.entries(spent).map(([k, v]) => [k, us(v)]));
    const walPerCommand = Math.round(Number(wal.rows[0]!.b) / commands);
    console.log(
      `pg-statements: ${BATCHES} batches of ${N} commands inserted and ${N} ended: apply backend ` +
        `${us(cpu)} µs of CPU per command (${Object.entries(perStatement)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}), WAL ${walPerCommand} B per command`,
    );
    console.log(
      JSON.stringify({
        bench: 'pg-statements',
        store: 'postgres',
        value: us(cpu),
        unit: 'µs backend CPU/command',
        perStatement,
        walPerCommand,
      }),
    );
  } finally {
    perf?.kill('SIGINT');
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await client.end();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
