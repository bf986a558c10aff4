/**
 * pg-boss on PostgreSQL, the same three patterns as coco's benchmarks:
 *
 * - one-task: N no-op jobs added with `insert` (chunks of 1,000) while the workers run;
 * - fan-out: a parent job inserts its `bench_counters` row and `insert`s its 10 children in one
 *   transaction (pg-boss's `{ db }` option runs its statement on our transaction's client); each
 *   child decrements the counter in a transaction, and the one that brings it to 0 `send`s the
 *   parent's end job in that same transaction;
 * - chain: the parent sends child 0; child i sends child i+1, the last one sends the end job.
 *
 * pg-boss 10 has no per-worker concurrency option (v9's `teamSize`/`teamConcurrency` are gone):
 * a worker fetches up to `batchSize` jobs, hands them to the handler as an array, completes them
 * together, and polls again. So each queue gets {@link WORKERS} workers with a
 * {@link BATCH_SIZE} batch, and a handler runs its batch's jobs concurrently (each job its own
 * transaction on a pool of ours, as with graphile-worker's per-job tasks).
 *
 * `node --import tsx bench/peers/pg-boss.ts [one-task|fanout|chain...] [--repeats=3]
 * [--jobs=20000] [--parents=1000] [--no-warmup]`
 */
import pg from 'pg';
import PgBoss from 'pg-boss';
import {
  Latch,
  checkCounters,
  drained,
  inTransaction,
  main,
  packageVersion,
  type Peer,
} from './common.js';

/** Workers (fetch loops) per queue; pg-boss 10's way to process a queue in parallel. */
const WORKERS = Number(process.env.BENCH_PGBOSS_WORKERS ?? 2);
/** Jobs per fetch, handed to the handler together (pg-boss 10's batching). */
const BATCH_SIZE = Number(process.env.BENCH_PGBOSS_BATCH ?? 1_000);
/**
 * A worker that fetched sleeps until this much time has passed since its fetch started, jobs or
 * not, unless notified; 0.5 s is the smallest pg-boss accepts (default 2 s).
 */
const POLLING_INTERVAL_SECONDS = 0.5;
/** pg-boss's own pool (fetch, complete, send outside a transaction): its default. */
const BOSS_POOL = 10;
/** Our pool for the handlers' transactions: as many at once as graphile-worker's concurrency. */
const TX_POOL = 16;
/** Jobs per `insert` call when submitting. */
const CHUNK = 1_000;

const settings = {
  workersPerQueue: WORKERS,
  batchSize: BATCH_SIZE,
  pollingIntervalSeconds: POLLING_INTERVAL_SECONDS,
  max: BOSS_POOL,
  transactionPool: TX_POOL,
  queuePolicy: 'standard',
  otherOptions: 'defaults (supervise, schedule, migrate on; retryLimit 2; no archive during a run)',
  enqueue: `insert in chunks of ${CHUNK}; in-handler enqueues via send/insert, with { db } in the handler's transaction`,
};

interface Child {
  p: number;
  i: number;
}

/** pg-boss's `Db` on one client: its statement then joins that client's transaction. */
function onClient(client: pg.ClientBase): PgBoss.Db {
  return { executeSql: (text, values) => client.query(text, values) };
}

/** What a job's handler gets besides its data. */
interface Context {
  boss: PgBoss;
  /** For the handlers' own transactions. */
  txPool: pg.Pool;
}

/** One job's handler (a batch's jobs are handled concurrently). */
type Handler = (data: unknown, ctx: Context) => Promise<void>;

/** pg-boss started in database `url` with `queues` created and worked; and a transaction pool. */
async function start(
  url: string,
  queues: Record<string, Handler>,
): Promise<Context & { stop(): Promise<void> }> {
  const boss = new PgBoss({ connectionString: url, max: BOSS_POOL });
  boss.on('error', (error) => console.error(`[pg-boss error] ${error.message}`));
  await boss.start(); // creates the schema
  const txPool = new pg.Pool({ connectionString: url, max: TX_POOL });
  txPool.on('error', (error) => console.error(`[transaction pool] ${error.message}`));
  const ctx: Context = { boss, txPool };
  for (const [name, handler] of Object.entries(queues)) {
    await boss.createQueue(name, { name, policy: 'standard' });
    for (let w = 0; w < WORKERS; w++) {
      await boss.work<unknown>(
        name,
        { batchSize: BATCH_SIZE, pollingIntervalSeconds: POLLING_INTERVAL_SECONDS },
        async (jobs) => {
          // pg-boss fails the batch silently (it retries it); say why, or a run only times out.
          await Promise.all(jobs.map((job) => handler(job.data, ctx))).catch((error: unknown) => {
            console.error(`[pg-boss ${name}]`, error);
            throw error;
          });
        },
      );
    }
  }
  return {
    ...ctx,
    async stop() {
      await boss.stop({ graceful: true, wait: true, timeout: 1_000 });
      await txPool.end();
    },
  };
}

/** Jobs not yet completed (created, retry or active). */
async function remaining(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pgboss.job WHERE state < 'completed'",
  );
  return rows[0]!.n;
}

/** Inserts `jobs` in chunks, one `insert` call (one statement) per chunk. */
async function insertInChunks(boss: PgBoss, jobs: readonly PgBoss.JobInsert[]): Promise<void> {
  for (let i = 0; i < jobs.length; i += CHUNK) await boss.insert(jobs.slice(i, i + CHUNK));
}

/** The timed part: submit, wait for the latch (handlers), then for the queue to drain. */
async function timed(pool: pg.Pool, latch: Latch, submit: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await submit();
  await latch.done;
  await drained(() => remaining(pool));
  return (performance.now() - t0) / 1000;
}

const peer: Peer = {
  name: 'pg-boss',
  version: packageVersion('pg-boss'),
  settings,

  async oneTask(url, jobs) {
    const latch = new Latch(jobs);
    const b = await start(url, {
      noop: async () => latch.add(),
    });
    try {
      return await timed(b.txPool, latch, () =>
        insertInChunks(
          b.boss,
          Array.from({ length: jobs }, (_, i) => ({ name: 'noop', data: { i } })),
        ),
      );
    } finally {
      await b.stop();
    }
  },

  async fanout(url, parents, children) {
    const latch = new Latch(parents);
    const b = await start(url, {
      'fan-parent': async (data, { boss, txPool }) => {
        const { p } = data as { p: number };
        const client = await txPool.connect();
        try {
          await inTransaction(client, async (tx) => {
            await tx.query('INSERT INTO bench_counters (parent_id, remaining) VALUES ($1, $2)', [
              p,
              children,
            ]);
            await boss.insert(
              Array.from({ length: children }, (_, i) => ({ name: 'fan-child', data: { p, i } })),
              { db: onClient(tx) },
            );
          });
        } finally {
          client.release();
        }
      },
      'fan-child': async (data, { boss, txPool }) => {
        const { p } = data as Child;
        const client = await txPool.connect();
        try {
          await inTransaction(client, async (tx) => {
            const { rows } = await tx.query<{ remaining: number }>(
              'UPDATE bench_counters SET remaining = remaining - 1 WHERE parent_id = $1 RETURNING remaining',
              [p],
            );
            if (rows[0]?.remaining === 0) await boss.send('fan-end', { p }, { db: onClient(tx) });
          });
        } finally {
          client.release();
        }
      },
      'fan-end': async () => latch.add(),
    });
    try {
      const seconds = await timed(b.txPool, latch, () =>
        insertInChunks(
          b.boss,
          Array.from({ length: parents }, (_, p) => ({ name: 'fan-parent', data: { p } })),
        ),
      );
      await checkCounters(b.txPool, parents);
      return seconds;
    } finally {
      await b.stop();
    }
  },

  async chain(url, parents, children) {
    const latch = new Latch(parents);
    const b = await start(url, {
      'chain-parent': async (data, { boss }) => {
        const { p } = data as { p: number };
        await boss.send('chain-child', { p, i: 0 });
      },
      'chain-child': async (data, { boss }) => {
        const { p, i } = data as Child;
        if (i + 1 < children) await boss.send('chain-child', { p, i: i + 1 });
        else await boss.send('chain-end', { p });
      },
      'chain-end': async () => latch.add(),
    });
    try {
      return await timed(b.txPool, latch, () =>
        insertInChunks(
          b.boss,
          Array.from({ length: parents }, (_, p) => ({ name: 'chain-parent', data: { p } })),
        ),
      );
    } finally {
      await b.stop();
    }
  },
};

main(peer);
