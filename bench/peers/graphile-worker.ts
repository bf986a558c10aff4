/**
 * graphile-worker on PostgreSQL, the same three patterns as coco's benchmarks:
 *
 * - one-task: N no-op jobs added with `addJobs` (chunks of 1,000) while the worker runs;
 * - fan-out: a parent job inserts its `bench_counters` row and adds its 10 children in one
 *   transaction; each child decrements the counter in a transaction, and the one that brings it
 *   to 0 adds the parent's end job in that same transaction;
 * - chain: the parent adds child 0; child i adds child i+1, the last one adds the end job.
 *
 * Settings: the "performance" configuration of graphile-worker's docs (local queue, batched
 * completion), with concurrency 16 instead of 24 for this 2-core machine. Fan-out's enqueues
 * inside a task's transaction use the library's own SQL API (`add_job`, `add_jobs`) on that
 * transaction's client (`helpers.addJob` would take another connection and commit separately);
 * chain's, which need no transaction, use `helpers.addJob`.
 *
 * `node --import tsx bench/peers/graphile-worker.ts [one-task|fanout|chain...] [--repeats=3]
 * [--jobs=20000] [--parents=1000] [--no-warmup]`
 */
import pg from 'pg';
import {
  Logger,
  makeWorkerUtils,
  run,
  type AddJobsJobSpec,
  type JobHelpers,
  type Runner,
  type RunnerOptions,
  type TaskList,
  type WorkerUtils,
} from 'graphile-worker';
import {
  Latch,
  checkCounters,
  drained,
  inTransaction,
  main,
  packageVersion,
  type Peer,
} from './common.js';

/** Jobs run at once in the worker (the docs' performance setup uses 24 on bigger machines). */
const CONCURRENCY = Number(process.env.BENCH_GW_CONCURRENCY ?? 16);
/** The worker's pool: concurrency + the LISTEN connection + spares (docs: at least concurrency + 2). */
const POOL_SIZE = CONCURRENCY + 4;
/** Jobs the pool locks and pulls per fetch, served to the workers locally (docs: 500). */
const LOCAL_QUEUE = Number(process.env.BENCH_GW_LOCAL_QUEUE ?? 500);
/** Completions batched per event-loop turn (0 ms: the docs' setting, no added latency). */
const COMPLETE_BATCH_DELAY_MS = 0;
/**
 * Polling only finds jobs scheduled for later (new jobs arrive by LISTEN/NOTIFY); the default,
 * 2 s, is kept: nothing in these patterns is scheduled.
 */
const POLL_INTERVAL_MS = 2_000;
/** Jobs per `addJobs` call when submitting. */
const CHUNK = 1_000;

/** Only warnings and errors: the info lines (worker started, stopped) would drown the report. */
const logger = new Logger(() => (level: string, message: string) => {
  if (level === 'error' || level === 'warning')
    console.error(`[graphile-worker ${level}] ${message}`);
});

const settings = {
  concurrency: CONCURRENCY,
  maxPoolSize: POOL_SIZE,
  localQueue: { size: LOCAL_QUEUE },
  completeJobBatchDelay: COMPLETE_BATCH_DELAY_MS,
  failJobBatchDelay: COMPLETE_BATCH_DELAY_MS,
  preparedStatements: true,
  useNodeTime: false,
  pollInterval: POLL_INTERVAL_MS,
  enqueue: `addJobs in chunks of ${CHUNK}; in-task enqueues via add_job/add_jobs in the task's transaction`,
};

/**
 * The worker and a producer (`makeWorkerUtils`) on one pool of {@link POOL_SIZE}, ours so that
 * `stop()` can wait for its connections to close (graphile-worker does not await the end of a
 * pool it made), plus a connection to watch the queue.
 */
async function start(
  url: string,
  taskList: TaskList,
): Promise<{ watch: pg.Pool; utils: WorkerUtils; stop(): Promise<void> }> {
  const pool = new pg.Pool({ connectionString: url, max: POOL_SIZE });
  // The handlers graphile-worker asks for (it warns without them): a connection error, idle or
  // checked out, is logged rather than thrown as an unhandled 'error' event.
  const onError = (error: Error): void => console.error(`[graphile-worker pool] ${error.message}`);
  pool.on('error', onError);
  pool.on('connect', (client) => client.on('error', onError));
  const options: RunnerOptions = {
    pgPool: pool,
    concurrency: CONCURRENCY,
    pollInterval: POLL_INTERVAL_MS,
    noHandleSignals: true,
    logger,
    taskList,
    crontab: '',
    preset: {
      worker: {
        localQueue: { size: LOCAL_QUEUE },
        completeJobBatchDelay: COMPLETE_BATCH_DELAY_MS,
        failJobBatchDelay: COMPLETE_BATCH_DELAY_MS,
      },
    },
  };
  const runner: Runner = await run(options); // runs the migrations too
  const utils = await makeWorkerUtils({ pgPool: pool, logger });
  const watch = new pg.Pool({ connectionString: url, max: 1 });
  watch.on('error', onError);
  return {
    watch,
    utils,
    async stop() {
      await runner.stop();
      await utils.release();
      await watch.end();
      await pool.end();
    },
  };
}

/** Jobs not yet completed (completed jobs are deleted). */
async function remaining(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM graphile_worker.jobs',
  );
  return rows[0]!.n;
}

/** Adds `specs` in chunks, one `addJobs` call (one statement) per chunk. */
async function addInChunks(utils: WorkerUtils, specs: readonly AddJobsJobSpec[]): Promise<void> {
  for (let i = 0; i < specs.length; i += CHUNK) await utils.addJobs(specs.slice(i, i + CHUNK));
}

/** What `helpers.addJobs` runs, on a given client (so that it joins that client's transaction). */
async function addJobsOn(client: pg.ClientBase, specs: readonly AddJobsJobSpec[]): Promise<void> {
  await client.query(
    `SELECT * FROM graphile_worker.add_jobs(
       array(SELECT json_populate_recordset(null::graphile_worker.job_spec, $1::json)), false)`,
    [JSON.stringify(specs.map((s) => ({ identifier: s.identifier, payload: s.payload })))],
  );
}

interface Child {
  p: number;
  i: number;
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
  name: 'graphile-worker',
  version: packageVersion('graphile-worker'),
  settings,

  async oneTask(url, jobs) {
    const latch = new Latch(jobs);
    const w = await start(url, { noop: () => latch.add() });
    try {
      return await timed(w.watch, latch, () =>
        addInChunks(
          w.utils,
          Array.from({ length: jobs }, (_, i) => ({ identifier: 'noop', payload: { i } })),
        ),
      );
    } finally {
      await w.stop();
    }
  },

  async fanout(url, parents, children) {
    const latch = new Latch(parents);
    const w = await start(url, {
      'fan-parent': async (payload, helpers: JobHelpers) => {
        const { p } = payload as { p: number };
        await helpers.withPgClient((client) =>
          inTransaction(client, async (tx) => {
            await tx.query('INSERT INTO bench_counters (parent_id, remaining) VALUES ($1, $2)', [
              p,
              children,
            ]);
            await addJobsOn(
              tx,
              Array.from({ length: children }, (_, i) => ({
                identifier: 'fan-child',
                payload: { p, i },
              })),
            );
          }),
        );
      },
      'fan-child': async (payload, helpers: JobHelpers) => {
        const { p } = payload as Child;
        await helpers.withPgClient((client) =>
          inTransaction(client, async (tx) => {
            const { rows } = await tx.query<{ remaining: number }>(
              'UPDATE bench_counters SET remaining = remaining - 1 WHERE parent_id = $1 RETURNING remaining',
              [p],
            );
            if (rows[0]?.remaining === 0) {
              await tx.query(
                `SELECT graphile_worker.add_job('fan-end', json_build_object('p', $1::int))`,
                [p],
              );
            }
          }),
        );
      },
      'fan-end': () => latch.add(),
    });
    try {
      const seconds = await timed(w.watch, latch, () =>
        addInChunks(
          w.utils,
          Array.from({ length: parents }, (_, p) => ({ identifier: 'fan-parent', payload: { p } })),
        ),
      );
      await checkCounters(w.watch, parents);
      return seconds;
    } finally {
      await w.stop();
    }
  },

  async chain(url, parents, children) {
    const latch = new Latch(parents);
    const w = await start(url, {
      'chain-parent': async (payload, helpers: JobHelpers) => {
        const { p } = payload as { p: number };
        await helpers.addJob('chain-child', { p, i: 0 });
      },
      'chain-child': async (payload, helpers: JobHelpers) => {
        const { p, i } = payload as Child;
        if (i + 1 < children) await helpers.addJob('chain-child', { p, i: i + 1 });
        else await helpers.addJob('chain-end', { p });
      },
      'chain-end': () => latch.add(),
    });
    try {
      return await timed(w.watch, latch, () =>
        addInChunks(
          w.utils,
          Array.from({ length: parents }, (_, p) => ({
            identifier: 'chain-parent',
            payload: { p },
          })),
        ),
      );
    } finally {
      await w.stop();
    }
  },
};

main(peer);
