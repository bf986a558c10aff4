/**
 * Shared plumbing for the peer benchmarks (graphile-worker, pg-boss on PostgreSQL): a fresh
 * database per measured run, options, the three patterns' shapes, timing, medians and the report
 * (human lines, a JSON line per pattern, and a summary JSON object as the process's last line).
 *
 * Self-contained on purpose: it does not import `../lib.js`, which pulls in the engine and the
 * SQLite store; the peers measure other libraries and should not break when coco's source moves.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import pg from 'pg';

/** Where the server is (the same variable the PostgreSQL tests read). */
export const PG_URL = process.env.COCO_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export type Pattern = 'one-task' | 'fanout' | 'chain';
export const PATTERNS: readonly Pattern[] = ['one-task', 'fanout', 'chain'];

/** Children per parent: the same shapes as coco's `fanout` and `chain` benchmarks. */
export const FANOUT_CHILDREN = 10;
export const CHAIN_CHILDREN = 5;

/**
 * The user-side table for fan-out: a parent's row counts its children still to finish; the child
 * that brings it to 0 enqueues the parent's end job (in the same transaction).
 */
export const COUNTERS_DDL =
  'CREATE TABLE bench_counters (parent_id integer PRIMARY KEY, remaining integer NOT NULL)';

/**
 * How often to look whether the queue has drained once the last handler ran: ~100× finer than a
 * run (seconds), so the figure is not rounded by the check, and light enough on the server.
 */
const DRAIN_POLL_MS = 10;

/**
 * A run that has not finished after this long is stuck (a lost job, a dead worker): fail it
 * rather than hang the benchmark. The defaults finish in a few seconds per run.
 */
const RUN_TIMEOUT_MS = 180_000;

/** What the command line (or the environment) asked for. */
export interface PeerOptions {
  patterns: readonly Pattern[];
  /** Measured runs per pattern; the figure is their median. */
  repeats: number;
  /** One-task: jobs per run. */
  jobs: number;
  /** Fan-out and chain: parents per run. */
  parents: number;
  /** A smaller unmeasured run first (the JIT, the server's caches, connections). */
  warmup: boolean;
}

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer: ${raw}`);
  return n;
}

/**
 * `[pattern...] [--repeats=N] [--jobs=N] [--parents=N] [--no-warmup]`; the environment's
 * `BENCH_REPEATS`, `BENCH_JOBS` and `BENCH_PARENTS` are the defaults of the flags.
 */
export function parseOptions(argv: readonly string[]): PeerOptions {
  const flags = new Map<string, string>();
  const patterns: Pattern[] = [];
  for (const arg of argv) {
    if (arg.startsWith('--')) {
      const [key, value] = arg.slice(2).split('=', 2);
      flags.set(key!, value ?? '');
    } else if ((PATTERNS as readonly string[]).includes(arg)) {
      patterns.push(arg as Pattern);
    } else {
      throw new Error(`unknown pattern "${arg}"; choose from: ${PATTERNS.join(', ')}`);
    }
  }
  for (const key of flags.keys()) {
    if (!['repeats', 'jobs', 'parents', 'no-warmup'].includes(key)) {
      throw new Error(`unknown option --${key}; known: --repeats, --jobs, --parents, --no-warmup`);
    }
  }
  return {
    patterns: patterns.length > 0 ? patterns : PATTERNS,
    repeats: positiveInt('--repeats', flags.get('repeats') ?? process.env.BENCH_REPEATS, 3),
    jobs: positiveInt('--jobs', flags.get('jobs') ?? process.env.BENCH_JOBS, 20_000),
    parents: positiveInt('--parents', flags.get('parents') ?? process.env.BENCH_PARENTS, 1_000),
    warmup: !flags.has('no-warmup'),
  };
}

/** Databases created and not yet dropped: dropped on the way out, whatever happens. */
const live = new Set<string>();

/** A short-lived admin connection to the server's maintenance database. */
async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** The URL of database `name` on the same server. */
function databaseUrl(name: string): string {
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** A database of its own for one run, with the `bench_counters` table; dropped by `drop()`. */
export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function freshDatabase(): Promise<BenchDatabase> {
  const name = `bench_${randomBytes(6).toString('hex')}`;
  await admin(`CREATE DATABASE ${name}`);
  live.add(name);
  const url = databaseUrl(name);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(COUNTERS_DDL);
  } finally {
    await client.end();
  }
  return { name, url, drop: () => dropDatabase(name) };
}

/**
 * How long to let a library's connections close by themselves before the forced drop ends them
 * (a forced end reaches a client as an error event, and a pool ending in the background may no
 * longer listen): closing takes milliseconds, so this only bounds a leak.
 */
const DISCONNECT_WAIT_MS = 5_000;

async function dropDatabase(name: string): Promise<void> {
  if (!live.delete(name)) return;
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    const until = performance.now() + DISCONNECT_WAIT_MS;
    for (;;) {
      const { rows } = await client.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1',
        [name],
      );
      if (rows[0]!.n === 0 || performance.now() > until) break;
      await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    }
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

async function dropAll(): Promise<void> {
  for (const name of [...live]) await dropDatabase(name).catch(() => undefined);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void dropAll().finally(() => process.exit(130));
  });
}

/** Runs `fn` in a transaction on `client` (BEGIN, COMMIT, or ROLLBACK and rethrow). */
export async function inTransaction<T>(
  client: pg.ClientBase,
  fn: (client: pg.ClientBase) => Promise<T>,
): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/**
 * After a fan-out run (not timed): every parent has its counter row, at 0. The latch counted end
 * jobs; this checks that each parent's children all ran, once.
 */
export async function checkCounters(pool: pg.Pool, parents: number): Promise<void> {
  const { rows } = await pool.query<{ n: number; open: number }>(
    'SELECT count(*)::int AS n, count(*) FILTER (WHERE remaining <> 0)::int AS open FROM bench_counters',
  );
  const { n, open } = rows[0]!;
  if (n !== parents || open !== 0) {
    throw new Error(`fan-out check: ${n} counters for ${parents} parents, ${open} not at 0`);
  }
}

/** Resolves once `count()` reaches `target` (call `count` from the handlers, then `check`). */
export class Latch {
  #count = 0;
  readonly target: number;
  readonly done: Promise<void>;
  #resolve!: () => void;
  constructor(target: number) {
    this.target = target;
    this.done = new Promise((resolve) => (this.#resolve = resolve));
    if (target <= 0) this.#resolve();
  }
  add(n = 1): void {
    this.#count += n;
    if (this.#count >= this.target) this.#resolve();
  }
  get count(): number {
    return this.#count;
  }
}

/** Polls `remaining()` (a count query) until it is 0. */
export async function drained(remaining: () => Promise<number>): Promise<void> {
  while ((await remaining()) > 0) await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
}

/** `promise`, or a rejection after {@link RUN_TIMEOUT_MS}. */
export async function withTimeout<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: not finished after ${RUN_TIMEOUT_MS / 1000} s`)),
      RUN_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Median of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The installed version of package `name` (neither peer restricts `package.json` by `exports`). */
export function packageVersion(name: string): string {
  const pkg = createRequire(import.meta.url)(`${name}/package.json`) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

/** The machine, for the record. */
export function machine(): string {
  const cpu = cpus();
  return `${cpu.length} x ${cpu[0]?.model.trim() ?? 'cpu'}, node ${process.version}`;
}

/**
 * One library's implementation of the patterns. Each call gets a fresh, empty database (with
 * `bench_counters`), sets the library up there (not timed), and returns the seconds from the
 * first enqueue to the last job (one-task) or the last parent's end job (fan-out, chain)
 * completing; it shuts the library down before returning.
 */
export interface Peer {
  name: string;
  version: string;
  /** The settings used, for the report. */
  settings: Record<string, unknown>;
  oneTask(url: string, jobs: number): Promise<number>;
  fanout(url: string, parents: number, children: number): Promise<number>;
  chain(url: string, parents: number, children: number): Promise<number>;
}

interface PatternResult {
  bench: string;
  peer: string;
  store: 'postgres';
  value: number;
  unit: string;
  runs: number[];
  seconds: number[];
  size: number;
}

/** Runs the asked patterns for `peer`, prints the lines, and ends with the summary JSON line. */
export async function runPeer(peer: Peer, argv: readonly string[]): Promise<void> {
  const options = parseOptions(argv);
  const results: PatternResult[] = [];
  console.log(`${peer.name} ${peer.version} on PostgreSQL (${machine()})`);
  console.log(`  settings: ${JSON.stringify(peer.settings)}`);
  try {
    for (const pattern of options.patterns) {
      const size = pattern === 'one-task' ? options.jobs : options.parents;
      const unit =
        pattern === 'one-task' ? 'jobs/s' : pattern === 'fanout' ? 'parents/s' : 'chains/s';
      const once = async (n: number): Promise<number> => {
        const db = await freshDatabase();
        try {
          const what = `${peer.name} ${pattern} (${n})`;
          if (pattern === 'one-task') return await withTimeout(what, peer.oneTask(db.url, n));
          if (pattern === 'fanout')
            return await withTimeout(what, peer.fanout(db.url, n, FANOUT_CHILDREN));
          return await withTimeout(what, peer.chain(db.url, n, CHAIN_CHILDREN));
        } finally {
          await db.drop();
        }
      };
      // A fifth-size warm-up: enough for the JIT and the server's caches, cheap in wall time.
      if (options.warmup) await once(Math.max(100, Math.round(size / 5)));
      const seconds: number[] = [];
      for (let r = 0; r < options.repeats; r++) {
        const s = await once(size);
        seconds.push(s);
        console.log(
          `  ${pattern} run ${r + 1}/${options.repeats}: ${size} in ${s.toFixed(2)} s = ${Math.round(size / s)} ${unit}`,
        );
      }
      const runs = seconds.map((s) => Math.round(size / s));
      const result: PatternResult = {
        bench: `peer-${pattern}`,
        peer: peer.name,
        store: 'postgres',
        value: Math.round(median(runs)),
        unit,
        runs,
        seconds: seconds.map((s) => +s.toFixed(3)),
        size,
      };
      results.push(result);
      console.log(
        `${peer.name} ${pattern}: median ${result.value} ${unit} [${runs.join(' · ')}]` +
          (pattern === 'one-task'
            ? ` (${size} no-op jobs)`
            : ` (${size} parents × ${pattern === 'fanout' ? FANOUT_CHILDREN : CHAIN_CHILDREN} children)`),
      );
      console.log(JSON.stringify({ ...result, settings: peer.settings }));
    }
  } finally {
    await dropAll();
  }
  console.log(
    JSON.stringify({
      bench: 'peers',
      peer: peer.name,
      version: peer.version,
      store: 'postgres',
      machine: machine(),
      repeats: options.repeats,
      settings: peer.settings,
      results: results.map(({ bench, value, unit, runs, size }) => ({
        bench,
        value,
        unit,
        runs,
        size,
      })),
    }),
  );
}

/** The entry point's wrapper: a failure is reported, the databases dropped, the exit code 1. */
export function main(peer: Peer): void {
  runPeer(peer, process.argv.slice(2)).then(
    () => process.exit(0),
    async (error: unknown) => {
      console.error(error instanceof Error ? (error.stack ?? error.message) : error);
      await dropAll();
      process.exit(1);
    },
  );
}
