/**
 * coco on PostgreSQL with 1, 2 and 3 coordinator nodes: one-task commands, fan-out (1,000 parents
 * × 10 concurrent children) and chain (1,000 parents × 5 serial children), each against the
 * raw-store limit measured in the same run (bench/raw-pg.ts).
 *
 * For each (pattern, nodes) this process creates a fresh schema (random name; dropped at the
 * end, also on error) on the server at `COCO_PG_URL`, forks that many node processes
 * (bench/pg-node.ts: each an engine on `postgresStore` with its own in-process agent), waits
 * until every node has warmed up, then sends `go` to all at once and times the wall clock until
 * the last node reports its share ended durably. The total work is fixed and split evenly. Each
 * (pattern, nodes) is measured `BENCH_REPEATS` times; the figure is the median. Then the nodes
 * stop their engines and measure the raw-store limit the same way: all nodes applying their share
 * of the same row writes at once, straight through `PostgresStore.apply`.
 *
 * Durable: every connection runs with `synchronous_commit=on` (the server's default, forced), so
 * a batch is acknowledged only once its WAL is flushed. Each (pattern, nodes) also prints where
 * the time went: batches and rows per batch, the nodes' CPU, how long each node's store had a
 * batch to apply (its batches go one at a time through one connection), how much of that time its
 * server backend was on CPU, and the CPU of the server and of everything else on the machine.
 *
 * `node --import tsx bench/pg.ts [one-task|fanout|chain...]` (or `npm run bench -- pg`). With no
 * server answering at `COCO_PG_URL` it says so and exits 0 (skipped).
 *
 * Environment: `BENCH_PG_NODES` (default `1,2,3`), `BENCH_REPEATS` (3), `BENCH_PG_N` (one-task
 * commands per run, 30,000), `BENCH_PG_PARENTS` (1,000), `BENCH_IN_FLIGHT` (one-task window over
 * all nodes, 10,000), `BENCH_CHUNK` (1,000), `BENCH_PG_TUNING` (JSON engine tuning merged over
 * {@link PG_TUNING}), `BENCH_PG_RAW_N` (20,000) / `BENCH_PG_RAW_PARENTS` (2,000) (raw-limit
 * sample sizes), `BENCH_NO_RAW`, `BENCH_PG_PROF` (a folder: node 1 runs with `--cpu-prof` there),
 * `BENCH_PG_TRACE` (times every statement the nodes send, by name, and prints the totals),
 * `BENCH_PG_PEERS` (a file holding the output of `npm run bench -- peers`: prints coco's ratio
 * to the peers' figures).
 */
import { fork, execSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { EngineTuning } from '../src/engine/options.js';
import { postgresStore } from '../src/store/postgres/pg-store.js';
import { BENCH_TUNING, machine, median, zeroOps, type OpCounts } from './lib.js';
import {
  CHILDREN,
  PATTERNS,
  PG_URL,
  UNITS,
  durableUrl,
  type NodeConfig,
  type NodeMessage,
  type NodeRun,
  type ParentMessage,
  type Pattern,
  type PerUnit,
} from './pg-common.js';

const here = dirname(fileURLToPath(import.meta.url));
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer: ${raw}`);
  return n;
}

/**
 * Engine tuning on PostgreSQL: the engine's defaults (4 batches in flight on a shared store,
 * `maxBatchRows` 5,000) over the benchmarks' {@link BENCH_TUNING} (1 s poll safety net, id blocks
 * of 50,000). Since a batch is pipelined (applier.ts) its fixed cost is small, so big batches no
 * longer pay: measured on one node, 3–5 runs each, interleaved: 5,000 × 4 in flight beat
 * 20,000 × 2 (the former setting) and 5,000 × 2 on fan-out and chains, tied on one-task.
 */
const PG_TUNING: EngineTuning = { ...BENCH_TUNING };

const options = {
  nodes: (process.env.BENCH_PG_NODES ?? '1,2,3').split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_PG_NODES: bad node count "${s}"`);
    return n;
  }),
  repeats: positiveInt('BENCH_REPEATS', 3),
  commands: positiveInt('BENCH_PG_N', 30_000),
  parents: positiveInt('BENCH_PG_PARENTS', 1_000),
  inFlight: positiveInt('BENCH_IN_FLIGHT', 10_000),
  chunk: positiveInt('BENCH_CHUNK', 1_000),
  rawCommands: positiveInt('BENCH_PG_RAW_N', 20_000),
  rawParents: positiveInt('BENCH_PG_RAW_PARENTS', 2_000),
  noRaw: Boolean(process.env.BENCH_NO_RAW),
  tuning: {
    ...PG_TUNING,
    ...(JSON.parse(process.env.BENCH_PG_TUNING ?? '{}') as EngineTuning),
  },
  prof: process.env.BENCH_PG_PROF,
  peers: process.env.BENCH_PG_PEERS,
};
/** Commands (or parents) per raw-store transaction group, as in the SQLite limit. */
const RAW_PER_BATCH = 100;

const patterns: Pattern[] = [];
for (const arg of process.argv.slice(2)) {
  if (!(PATTERNS as readonly string[]).includes(arg)) {
    console.error(`unknown pattern "${arg}"; choose from: ${PATTERNS.join(', ')}`);
    process.exit(2);
  }
  patterns.push(arg as Pattern);
}
if (patterns.length === 0) patterns.push(...PATTERNS);

/**
 * Node start plus warm-up must end within this: a start is ~1 s and a warm-up a fifth of a run
 * (seconds), so two minutes means a node is stuck (no server, a lock), not slow.
 */
const READY_TIMEOUT_MS = 120_000;
/** A measured run (or a raw-limit run) still going after this long is stuck: fail, do not hang. */
const RUN_TIMEOUT_MS = 180_000;
/**
 * How long a DROP SCHEMA waits for a lock before it gives up: the schema's connections are
 * closed by then (nodes stopped or killed), so a wait means someone else is in it; the schema is
 * then left, named in the error, rather than the benchmark hanging.
 */
const DROP_LOCK_TIMEOUT_MS = 10_000;

const url = durableUrl(PG_URL);
const schemas = new Set<string>();
const children = new Set<ChildProcess>();

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function dropSchema(schema: string): Promise<void> {
  if (!schemas.delete(schema)) return;
  await admin(async (c) => {
    await c.query(`SET lock_timeout = ${DROP_LOCK_TIMEOUT_MS}`);
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  });
}

async function cleanup(): Promise<void> {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  for (const schema of [...schemas]) {
    await dropSchema(schema).catch((error: unknown) =>
      console.error(`could not drop schema ${schema}: ${String(error)}`),
    );
  }
}

/** Set on SIGINT / SIGTERM: the cleanup is under way, the failures it causes are not news. */
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`pg: ${signal}, stopping the nodes and dropping the schema`);
    void cleanup().finally(() => process.exit(130));
  });
}

/** Why the server cannot be reached, or null if it answers. */
async function unreachable(): Promise<string | null> {
  try {
    await admin((c) => c.query('SELECT 1'));
    return null;
  } catch (error) {
    // A host name with several addresses fails with an AggregateError of one error each.
    const errors = error instanceof AggregateError ? (error.errors as unknown[]) : [error];
    const network = ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET'];
    const down = errors.every((e) => {
      const code = (e as { code?: unknown }).code;
      const message = e instanceof Error ? e.message : String(e);
      return (typeof code === 'string' && network.includes(code)) || /timeout/i.test(message);
    });
    if (!down) throw error;
    return errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ');
  }
}

// -- CPU accounting (Linux /proc; absent elsewhere) --

const CLK_TCK = (() => {
  try {
    return Number(execSync('getconf CLK_TCK', { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface CpuSample {
  /** Jiffies of the whole machine, all CPUs: busy (not idle, not iowait), total. */
  busy: number;
  total: number;
  /** Jiffies (user + system) of the processes named `postgres`. */
  postgres: number;
  /** Jiffies of the processes in `ours` (this benchmark's backends). */
  ours: number;
  /** Jiffies of the processes in `apply` (the backends of the nodes' apply connections). */
  apply: number;
}

function cpuSample(
  ours: ReadonlySet<number> = new Set(),
  apply: ReadonlySet<number> = new Set(),
): CpuSample | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const busy = total - f[3]! - f[4]!;
    let postgres = 0;
    let oursJiffies = 0;
    let applyJiffies = 0;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const close = stat.lastIndexOf(')');
        if (stat.slice(stat.indexOf('(') + 1, close) !== 'postgres') continue;
        const rest = stat.slice(close + 2).split(' ');
        // Fields 14 and 15 of stat (utime, stime); `rest` starts at field 3.
        const jiffies = Number(rest[11]) + Number(rest[12]);
        postgres += jiffies;
        if (ours.has(Number(pid))) oursJiffies += jiffies;
        if (apply.has(Number(pid))) applyJiffies += jiffies;
      } catch {
        // The process ended meanwhile.
      }
    }
    return { busy, total, postgres, ours: oursJiffies, apply: applyJiffies };
  } catch {
    return null;
  }
}

// -- node processes --

/** A forked node and the messages it sent that nobody has waited for yet. */
class Node {
  readonly proc: ChildProcess;
  readonly index: number;
  readonly #inbox: { m: NodeMessage; at: number }[] = [];
  #waiter: (() => void) | null = null;
  #failure: Error | null = null;
  #stopping = false;

  constructor(config: NodeConfig, execArgv: string[]) {
    this.index = config.node;
    this.proc = fork(join(here, `pg-node${ext}`), [JSON.stringify(config)], {
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.add(this.proc);
    this.proc.on('message', (m: NodeMessage) => {
      if (m.t === 'error') this.#fail(new Error(`node ${this.index}: ${m.message}`));
      else this.#inbox.push({ m, at: performance.now() });
      this.#waiter?.();
    });
    this.proc.on('exit', (code, signal) => {
      children.delete(this.proc);
      if (!this.#stopping) this.#fail(new Error(`node ${this.index} exited (${code ?? signal})`));
      this.#waiter?.();
    });
  }

  #fail(error: Error): void {
    this.#failure ??= error;
  }

  send(m: ParentMessage): void {
    this.proc.send(m);
  }

  /** The next message of type `t` and when it arrived (performance.now()). */
  async next<T extends NodeMessage['t']>(
    t: T,
    timeoutMs: number,
  ): Promise<{ m: Extract<NodeMessage, { t: T }>; at: number }> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      if (this.#failure) throw this.#failure;
      const i = this.#inbox.findIndex((x) => x.m.t === t);
      if (i >= 0) {
        const [x] = this.#inbox.splice(i, 1);
        return x as { m: Extract<NodeMessage, { t: T }>; at: number };
      }
      const left = until - performance.now();
      if (left <= 0) throw new Error(`node ${this.index}: no "${t}" after ${timeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = null;
    }
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    const exited = new Promise<void>((resolve) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) resolve();
      else this.proc.once('exit', () => resolve());
    });
    this.send({ t: 'stop' });
    await this.next('stopped', RUN_TIMEOUT_MS);
    await exited;
  }
}

// -- one (pattern, nodes) --

interface Result {
  bench: string;
  store: 'postgres';
  nodes: number;
  value: number;
  unit: string;
  rawLimit: number | null;
  ratio: number | null;
  runs: number[];
  rawRuns: number[];
  size: number;
  profile: Profile;
}

/** Where the time went, over the measured runs of one (pattern, nodes). */
interface Profile {
  /** Batches committed per run (all nodes), and rows per batch. */
  batches: number;
  rowsPerBatch: number;
  rowWritesPerUnit: number;
  /** CPU of the node processes per command (or parent), µs; and in cores over the runs. */
  nodeCpuUsPerUnit: number;
  nodeCpuCores: number;
  /** Median share of a run during which a node's store had a batch to apply. */
  storeBusyShare: number;
  /**
   * CPU of the server's processes, in cores: all of them (other sessions' too), and this
   * benchmark's backends alone (null: no /proc).
   */
  postgresCpuCores: number | null;
  ourBackendsCpuCores: number | null;
  /**
   * CPU of the server backends of the apply connections over the time their stores were busy:
   * near 1, the server's execution is the limit; well below, the time goes to the client
   * (serializing parameters, an event loop busy with engine work), the network or WAL flushes.
   */
  applyCpuOfBusy: number | null;
  /** Share of the machine's CPU time busy during the runs (null: no /proc). */
  machineBusyShare: number | null;
  /**
   * CPU of everything else (other processes on a shared machine, the kernel's own threads),
   * in cores: the noise the figures carry (null: no /proc).
   */
  otherCpuCores: number | null;
}

function split(total: number, parts: number): number[] {
  return Array.from(
    { length: parts },
    (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0),
  );
}

function sum(a: OpCounts, b: OpCounts): OpCounts {
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof OpCounts)[]) out[k] += b[k];
  return out;
}

async function measure(pattern: Pattern, n: number): Promise<Result> {
  const size = pattern === 'one-task' ? options.commands : options.parents;
  const unit = UNITS[pattern];
  const schema = `bench_pg_${randomBytes(6).toString('hex')}`;
  schemas.add(schema);
  const migrator = postgresStore({ url, schema });
  await migrator.migrate();
  await migrator.close();

  const shares = split(size, n);
  // A fifth-size warm-up per node: the JIT, the server's plans and caches, the connections.
  const warmups = split(Math.max(n, Math.round(size / 5)), n);
  const windows = split(options.inFlight, n);
  const nodes: Node[] = [];
  try {
    for (let k = 1; k <= n; k++) {
      const execArgv = [...process.execArgv];
      if (options.prof && k === 1) execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.prof}`);
      nodes.push(
        new Node(
          {
            pattern,
            url,
            schema,
            node: k,
            share: shares[k - 1]!,
            warmup: warmups[k - 1]!,
            inFlight: Math.max(1, windows[k - 1]!),
            chunk: options.chunk,
            tuning: options.tuning,
          },
          execArgv,
        ),
      );
    }
    await Promise.all(nodes.map((node) => node.next('ready', READY_TIMEOUT_MS)));

    const seconds: number[] = [];
    const perRun: NodeRun[][] = [];
    type Cpu = Omit<CpuSample, 'total' | 'busy'> & { busy: number; total: number; wall: number };
    const cpu: Cpu[] = [];
    // The server processes of the nodes' connections (the store names them after the schema):
    // all of them, and those of the apply connections.
    const backends = await admin(async (c) => {
      const r = await c.query<{ pid: number; application_name: string }>(
        'SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE $1',
        [`coco/%${schema}`],
      );
      return r.rows;
    });
    const ourPids = new Set(backends.map((b) => b.pid));
    const applyPids = new Set(
      backends.filter((b) => b.application_name === `coco/apply/${schema}`).map((b) => b.pid),
    );
    for (let r = 0; r < options.repeats; r++) {
      const before = cpuSample(ourPids, applyPids);
      const t0 = performance.now();
      for (const node of nodes) node.send({ t: 'go', run: r });
      const done = await Promise.all(nodes.map((node) => node.next('done', RUN_TIMEOUT_MS)));
      const wall = (Math.max(...done.map((d) => d.at)) - t0) / 1000;
      const after = cpuSample(ourPids, applyPids);
      seconds.push(wall);
      perRun.push(done.map((d) => d.m));
      if (before && after) {
        cpu.push({
          busy: after.busy - before.busy,
          total: after.total - before.total,
          postgres: after.postgres - before.postgres,
          ours: after.ours - before.ours,
          apply: after.apply - before.apply,
          wall,
        });
      }
      console.log(
        `  ${pattern} × ${n} node${n > 1 ? 's' : ''}, run ${r + 1}/${options.repeats}: ${size} in ${wall.toFixed(2)} s = ${Math.round(size / wall)} ${unit}`,
      );
      await Promise.all(nodes.map((node) => node.next('idle', RUN_TIMEOUT_MS)));
    }

    // Row writes per unit, over every node and run: what the raw-store limit replays.
    const ops = perRun.flat().reduce((acc, x) => sum(acc, x.ops), zeroOps());
    const units = size * options.repeats;
    const perUnit: PerUnit = {
      commandInserts: ops.commandInserts / units,
      commandUpdates: ops.commandUpdates / units,
      commandsSettled: ops.commandsSettled / units,
      taskInserts: ops.taskInserts / units,
      taskUpdates: ops.taskUpdates / units,
    };
    const rawRuns: number[] = [];
    const rawSize = pattern === 'one-task' ? options.rawCommands : options.rawParents;
    if (!options.noRaw) {
      const rawShares = split(rawSize, n);
      for (let r = 0; r < options.repeats; r++) {
        nodes.forEach((node, i) =>
          node.send({ t: 'raw', perUnit, units: rawShares[i]!, perBatch: RAW_PER_BATCH }),
        );
        await Promise.all(nodes.map((node) => node.next('raw-ready', RUN_TIMEOUT_MS)));
        const t0 = performance.now();
        for (const node of nodes) node.send({ t: 'raw-go' });
        const done = await Promise.all(nodes.map((node) => node.next('raw-done', RUN_TIMEOUT_MS)));
        const applied = done.reduce((a, d) => a + d.m.units, 0);
        rawRuns.push(applied / ((Math.max(...done.map((d) => d.at)) - t0) / 1000));
      }
    }
    for (const node of nodes) await node.stop();

    const runs = seconds.map((s) => size / s);
    const value = median(runs);
    const rawLimit = rawRuns.length > 0 ? median(rawRuns) : null;
    const all = perRun.flat();
    const rows =
      ops.commandInserts +
      ops.commandUpdates +
      ops.commandsSettled +
      ops.taskInserts +
      ops.taskUpdates;
    const wallTotal = seconds.reduce((a, b) => a + b, 0);
    const cpuTotals = cpu.reduce(
      (a, c) => ({
        busy: a.busy + c.busy,
        total: a.total + c.total,
        postgres: a.postgres + c.postgres,
        ours: a.ours + c.ours,
        apply: a.apply + c.apply,
        wall: a.wall + c.wall,
      }),
      { busy: 0, total: 0, postgres: 0, ours: 0, apply: 0, wall: 0 },
    );
    const round = (x: number, digits = 0): number => +x.toFixed(digits);
    const storeBusyMs = all.reduce((a, x) => a + x.storeBusyMs, 0);
    const profile: Profile = {
      batches: round(ops.batches / options.repeats),
      rowsPerBatch: round(rows / Math.max(1, ops.batches)),
      rowWritesPerUnit: round(rows / units, 2),
      nodeCpuUsPerUnit: round((all.reduce((a, x) => a + x.cpuMs, 0) * 1000) / units),
      nodeCpuCores: round(all.reduce((a, x) => a + x.cpuMs, 0) / 1000 / wallTotal, 2),
      storeBusyShare: round(
        median(perRun.flatMap((run, r) => run.map((x) => x.storeBusyMs / 1000 / seconds[r]!))),
        2,
      ),
      postgresCpuCores:
        cpu.length > 0 ? round(cpuTotals.postgres / CLK_TCK / cpuTotals.wall, 2) : null,
      ourBackendsCpuCores:
        cpu.length > 0 ? round(cpuTotals.ours / CLK_TCK / cpuTotals.wall, 2) : null,
      applyCpuOfBusy:
        cpu.length > 0 && storeBusyMs > 0
          ? round(cpuTotals.apply / CLK_TCK / (storeBusyMs / 1000), 2)
          : null,
      machineBusyShare: cpu.length > 0 ? round(cpuTotals.busy / cpuTotals.total, 2) : null,
      otherCpuCores: null,
    };
    if (cpu.length > 0) {
      const cores = (cpuTotals.busy / cpuTotals.total) * cpus().length;
      profile.otherCpuCores = round(
        Math.max(0, cores - profile.nodeCpuCores - (profile.postgresCpuCores ?? 0)),
        2,
      );
    }
    const result: Result = {
      bench: `pg-${pattern}`,
      store: 'postgres',
      nodes: n,
      value: Math.round(value),
      unit,
      rawLimit: rawLimit === null ? null : Math.round(rawLimit),
      ratio: rawLimit === null ? null : round(value / rawLimit, 3),
      runs: runs.map((x) => Math.round(x)),
      rawRuns: rawRuns.map((x) => Math.round(x)),
      size,
      profile,
    };
    const shape =
      pattern === 'one-task'
        ? `${size} one-task commands`
        : `${size} parents × ${CHILDREN[pattern]} ${pattern === 'chain' ? 'serial' : 'concurrent'} children`;
    console.log(
      `pg ${pattern} with ${n} node${n > 1 ? 's' : ''}: median ${result.value} ${unit} [${result.runs.join(' · ')}] (${shape}, split evenly)`,
    );
    if (rawLimit !== null)
      console.log(
        `  raw-store limit (${n} connection${n > 1 ? 's' : ''} applying the same row writes, ${RAW_PER_BATCH} per transaction group): ${result.rawLimit} ${unit} [${result.rawRuns.join(' · ')}]; coco = ${Math.round((value / rawLimit) * 100)}% of it`,
      );
    console.log(
      `  profile: ${profile.batches} batches/run, ${profile.rowsPerBatch} rows/batch, ${profile.rowWritesPerUnit} row writes/${pattern === 'one-task' ? 'command' : 'parent'}; ` +
        `node CPU ${profile.nodeCpuUsPerUnit} µs/${pattern === 'one-task' ? 'command' : 'parent'} (${profile.nodeCpuCores} cores), ` +
        `store busy ${Math.round(profile.storeBusyShare * 100)}% of a run per node, ` +
        `apply backends ${profile.applyCpuOfBusy === null ? '?' : Math.round(profile.applyCpuOfBusy * 100)}% on CPU while busy, postgres ${profile.postgresCpuCores ?? '?'} cores (this run's backends ${profile.ourBackendsCpuCores ?? '?'}), machine busy ${profile.machineBusyShare === null ? '?' : Math.round(profile.machineBusyShare * 100)}% (other processes ${profile.otherCpuCores ?? '?'} cores)`,
    );
    const traced = all.filter((x) => x.statements);
    if (traced.length > 0) {
      const byName = new Map<string, { n: number; ms: number }>();
      for (const x of traced)
        for (const [name, st] of Object.entries(x.statements!)) {
          const s = byName.get(name) ?? { n: 0, ms: 0 };
          s.n += st.n;
          s.ms += st.ms;
          byName.set(name, s);
        }
      const list = [...byName].sort((a, b) => b[1].ms - a[1].ms);
      console.log(
        `  statements (all nodes and runs; send → answer): ${list
          .map(
            ([name, s]) => `${name} ${s.n}× ${(s.ms / s.n).toFixed(2)} ms = ${Math.round(s.ms)} ms`,
          )
          .join(', ')}`,
      );
    }
    console.log(JSON.stringify(result));
    return result;
  } finally {
    for (const node of nodes) node.proc.kill('SIGKILL');
    await dropSchema(schema);
  }
}

// -- peers (optional) --

/** The peers' medians by pattern (`peer-one-task` ...), from a saved `bench -- peers` output. */
function peerFigures(file: string): Map<Pattern, { peer: string; value: number; unit: string }[]> {
  const out = new Map<Pattern, { peer: string; value: number; unit: string }[]>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line) as {
        bench?: unknown;
        peer?: unknown;
        value?: unknown;
        unit?: unknown;
      };
      if (
        typeof j.bench !== 'string' ||
        !j.bench.startsWith('peer-') ||
        typeof j.value !== 'number'
      )
        continue;
      const pattern = j.bench.slice('peer-'.length) as Pattern;
      if (!PATTERNS.includes(pattern)) continue;
      const list = out.get(pattern) ?? [];
      list.push({ peer: String(j.peer), value: j.value, unit: String(j.unit) });
      out.set(pattern, list);
    } catch {
      // Not a result line.
    }
  }
  return out;
}

// -- main --

async function main(): Promise<void> {
  const reason = await unreachable();
  if (reason !== null) {
    console.log(
      `pg: skipped — no PostgreSQL server answers at ${PG_URL} (${reason}); set COCO_PG_URL to run it`,
    );
    console.log(JSON.stringify({ bench: 'pg', store: 'postgres', skipped: true, reason }));
    return;
  }
  const server = await admin(async (c) => {
    const show = async (name: string): Promise<string> =>
      String(((await c.query(`SHOW ${name}`)).rows[0] as Record<string, unknown>)[name]);
    return {
      version: (await show('server_version')).split(' ')[0],
      synchronous_commit: await show('synchronous_commit'),
      fsync: await show('fsync'),
      wal_sync_method: await show('wal_sync_method'),
      commit_delay: await show('commit_delay'),
      shared_buffers: await show('shared_buffers'),
    };
  });
  const cpu = cpus();
  console.log(
    `coco on PostgreSQL ${server.version} (${machine()}, ${cpu.length} cores): ${patterns.join(', ')} with ${options.nodes.join(', ')} node(s), median of ${options.repeats}`,
  );
  console.log(
    `  server: ${JSON.stringify(server)} (durable: every batch's COMMIT waits for its WAL flush)`,
  );
  console.log(`  engine tuning: ${JSON.stringify(options.tuning)}`);
  const results: Result[] = [];
  for (const pattern of patterns)
    for (const n of options.nodes) results.push(await measure(pattern, n));

  const peers = options.peers ? peerFigures(options.peers) : null;
  const peerRatios: { bench: string; peer: string; ratio: number }[] = [];
  if (peers) {
    for (const r of results.filter((x) => x.nodes === 1)) {
      for (const p of peers.get(r.bench.slice('pg-'.length) as Pattern) ?? []) {
        const ratio = +(r.value / p.value).toFixed(2);
        peerRatios.push({ bench: r.bench, peer: p.peer, ratio });
        console.log(
          `  ${r.bench}, 1 node: ${r.value} ${r.unit} = ${ratio} × ${p.peer} (${p.value} ${p.unit})`,
        );
      }
    }
  }
  console.log(
    JSON.stringify({
      bench: 'pg',
      store: 'postgres',
      machine: machine(),
      server,
      repeats: options.repeats,
      tuning: options.tuning,
      results: results.map(({ bench, nodes, value, unit, rawLimit, ratio, runs }) => ({
        bench,
        nodes,
        value,
        unit,
        rawLimit,
        ratio,
        runs,
      })),
      ...(peers ? { peerRatios } : {}),
    }),
  );
}

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    if (interrupted) return;
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    await cleanup();
    process.exit(1);
  },
);
