/**
 * What the PostgreSQL benchmark's parent (bench/pg.ts) and its node processes (bench/pg-node.ts)
 * share: the patterns, the server URL, the node's configuration and the IPC messages.
 */
import pg from 'pg';
import type { EngineTuning } from '../src/engine/options.js';
import type { OpCounts } from './lib.js';

export type Pattern = 'one-task' | 'fanout' | 'chain';
export const PATTERNS: readonly Pattern[] = ['one-task', 'fanout', 'chain'];

/** Children per parent: the same shapes as the SQLite `fanout` and `chain` benchmarks. */
export const CHILDREN: Record<Exclude<Pattern, 'one-task'>, number> = { fanout: 10, chain: 5 };

export const UNITS: Record<Pattern, string> = {
  'one-task': 'commands/s',
  fanout: 'parents/s',
  chain: 'chains/s',
};

/** Where the server is (the same variable the PostgreSQL tests and the peer benchmarks read). */
export const PG_URL = process.env.COCO_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * `url` with `synchronous_commit=on` forced on every connection (the server's default, set
 * explicitly so that a server configured otherwise cannot make the figures non-durable): a
 * batch is acknowledged only once its WAL is flushed to disk.
 */
export function durableUrl(url: string): string {
  const u = new URL(url);
  if (!u.searchParams.has('options')) u.searchParams.set('options', '-c synchronous_commit=on');
  return u.toString();
}

/** Runs `fn` with a client of its own on `url`, closed after. */
export async function withClient<T>(
  url: string,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Why no server answers at `url` (a network error or a timeout), or null if it answers; any
 * other error (a server that refuses us) is thrown: that is not a reason to skip.
 */
export async function unreachable(url: string): Promise<string | null> {
  try {
    await withClient(url, (c) => c.query('SELECT 1'));
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

/** What a node process is told on its command line (one JSON argument). */
export interface NodeConfig {
  pattern: Pattern;
  url: string;
  schema: string;
  /** 1-based; the node id is `n<node>`, its agent `n<node>-a1`. */
  node: number;
  /** Its share of each measured run: commands (one-task) or parents. */
  share: number;
  /** Its share of the warm-up run. */
  warmup: number;
  /** One-task: commands in flight at most (this node's share of the total window). */
  inFlight: number;
  /** One-task: commands per `submitMany`. */
  chunk: number;
  tuning: EngineTuning;
}

/** Row writes per unit (command or parent), as counted from coco's committed batches. */
export type PerUnit = Omit<OpCounts, 'batches'>;

/** Parent → node. */
export type ParentMessage =
  | { t: 'go'; run: number }
  | { t: 'raw'; perUnit: PerUnit; units: number; perBatch: number }
  | { t: 'raw-go' }
  | { t: 'stop' };

/** What a node measured of one run (its own view; the parent times the whole). */
export interface NodeRun {
  seconds: number;
  ops: OpCounts;
  /** CPU of the node process (user + system), ms. */
  cpuMs: number;
  /** Time the store had at least one batch to apply (its apply queue is serial), ms. */
  storeBusyMs: number;
  /**
   * Time the node's main thread was runnable but waited for a CPU (run queue, /proc schedstat),
   * ms; null where unreadable.
   */
  mainQueuedMs: number | null;
  /** CPU of the node's main thread alone (schedstat), ms; null where unreadable. */
  mainCpuMs: number | null;
  /** Rows (commands + tasks) of the committed batches, per the engine's counters. */
  rows: number;
  /** With `BENCH_PG_TRACE`: statements sent, by name (first word if unnamed): count and ms. */
  statements?: Record<string, { n: number; ms: number }>;
}

/** Node → parent. */
export type NodeMessage =
  | { t: 'ready' }
  | ({ t: 'done'; run: number } & NodeRun)
  | { t: 'idle' }
  | { t: 'raw-ready' }
  | { t: 'raw-done'; seconds: number; batches: number; units: number }
  | { t: 'stopped' }
  | { t: 'error'; message: string };
