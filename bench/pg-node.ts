/**
 * One coordinator node of the PostgreSQL benchmark (forked by bench/pg.ts, one JSON argument:
 * a {@link NodeConfig}): a coco engine on `postgresStore` with its own in-process agent
 * (`n<k>-a1`, `history: false`, verb `noop`). It runs a warm-up, says `ready`, then on each `go`
 * submits its share of the work and says `done` once all of it has ended durably (counted from
 * the engine's `committed` events, as the SQLite benchmarks do), then `idle` once the run has
 * settled (tasks cleared). On `raw` (between runs, its engine idle) it measures its share of the
 * raw-store limit (bench/raw-pg.ts) through a store of its own.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { inProcessAgents } from '../src/brokers/in-process/broker.js';
import { createEngine } from '../src/engine/engine.js';
import { postgresStore, type PostgresStore } from '../src/store/postgres/pg-store.js';
import { buildSharedSql } from '../src/store/postgres/shared.js';
import { buildSql } from '../src/store/postgres/statements.js';
import type { ChangeBatch } from '../src/store/port.js';
import { BENCH_TUNING, countOps, type OpCounts } from './lib.js';
import { CHILDREN, type NodeConfig, type NodeMessage, type ParentMessage } from './pg-common.js';
import { benchCommands } from './patterns.js';
import { applyRaw, rawBatches, rawIdsNeeded } from './raw-pg.js';
import { DEFAULT_APPLY_CONNECTIONS } from '../src/store/postgres/options.js';

const cfg = JSON.parse(process.argv[2] ?? '{}') as NodeConfig;
const nodeId = `n${cfg.node}`;
const agentId = `${nodeId}-a1`;

function send(message: NodeMessage): void {
  process.send?.(message);
}

/** The parent is gone (it failed, or was killed): nothing to report to, so leave. */
process.on('disconnect', () => process.exit(0));

const { one, leaf, fanout, chain } = benchCommands(agentId);

/**
 * With `BENCH_PG_CAPTURE` (a file): the batches of the last measured run, as JSON (an array of
 * {@link ChangeBatch}, then the run's units), for bench/pg-encode.ts to replay.
 */
const capture = process.env.BENCH_PG_CAPTURE;
let captured: ChangeBatch[] | null = null;

/** Time during which the store had at least one batch to apply (its queue is serial). */
function trackBusy(store: PostgresStore): { ms(): number } {
  const apply = store.apply.bind(store);
  let pending = 0;
  let since = 0;
  let total = 0;
  store.apply = (batch: ChangeBatch): Promise<void> => {
    captured?.push(batch);
    if (pending++ === 0) since = performance.now();
    const done = (): void => {
      if (--pending === 0) total += performance.now() - since;
    };
    const p = apply(batch);
    p.then(done, done);
    return p;
  };
  return { ms: () => total + (pending > 0 ? performance.now() - since : 0) };
}

/**
 * With `BENCH_PG_TRACE`: every statement's time from send to answer, by statement name (the
 * store's own names: `coco_<name>` for its prepared batch statements, the key of its SQL tables
 * for the others; else the first word). The apply connection sends one statement at a time, so
 * for it this is the statement's round trip.
 */
const statements = new Map<string, { n: number; ms: number }>();
if (process.env.BENCH_PG_TRACE) {
  const known = new Map<string, string>();
  for (const sqls of [buildSql(cfg.schema), buildSharedSql(cfg.schema)])
    for (const [key, text] of Object.entries(sqls))
      if (typeof text === 'string') known.set(text, key);
  type Query = (this: pg.Client, config: unknown, ...rest: unknown[]) => unknown;
  const proto = pg.Client.prototype as unknown as { query: Query };
  const query = proto.query;
  proto.query = function (config, ...rest) {
    const c = config as { name?: string; text?: string } | string;
    const text = typeof c === 'string' ? c : c.text;
    const name =
      (typeof c === 'string' ? undefined : c.name) ??
      (text === undefined ? '?' : (known.get(text) ?? text.split(' ')[0]!));
    const t0 = performance.now();
    const result = query.call(this, config, ...rest);
    const add = (): void => {
      const s = statements.get(name) ?? { n: 0, ms: 0 };
      s.n++;
      s.ms += performance.now() - t0;
      statements.set(name, s);
    };
    if (result instanceof Promise) result.then(add, add);
    return result;
  };
}

function statementsSince(
  before: Map<string, { n: number; ms: number }>,
): Record<string, { n: number; ms: number }> {
  const out: Record<string, { n: number; ms: number }> = {};
  for (const [name, s] of statements) {
    const b = before.get(name) ?? { n: 0, ms: 0 };
    if (s.n > b.n) out[name] = { n: s.n - b.n, ms: +(s.ms - b.ms).toFixed(1) };
  }
  return out;
}

/** Apply connections per node (`BENCH_PG_LANES`, the store's `applyConnections`; its default). */
const LANES = Number(process.env.BENCH_PG_LANES ?? DEFAULT_APPLY_CONNECTIONS);
const store = postgresStore({
  url: cfg.url,
  schema: cfg.schema,
  applyConnections: LANES,
  poolSize: Math.max(10, LANES + 4),
});
const busy = trackBusy(store);
const engine = createEngine({
  store,
  agents: inProcessAgents([agentId], { history: false }),
  commands: [one, leaf, fanout, chain],
  nodeId,
  tuning: { ...BENCH_TUNING, ...cfg.tuning },
});
const { ops, ended } = countOps(engine);
const roots = new Set<number>();
let rootsEnded = 0;
/** A run's submitMany has not answered yet. */
let submitting = false;
/**
 * Commands whose end was committed while their submit had not answered yet: a root's end may
 * be stored with (or before) the batch that makes the last root of its submitMany durable (a
 * parent joins its last child's batch), so it is counted once its id is known.
 */
const endedEarly = new Set<number>();
engine.on('committed', (b) => {
  for (const c of b.commandUpdates) {
    if (c.endedAt === null) continue;
    if (roots.delete(c.id)) rootsEnded++;
    else if (submitting) endedEarly.add(c.id);
  }
});

/** One-task: `n` commands, at most `cfg.inFlight` at a time; resolves when all have ended. */
function runOneTask(n: number): Promise<void> {
  ended.clear();
  let submitted = 0;
  return new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      while (submitted < n && submitted - ended.size < cfg.inFlight) {
        const k = Math.min(cfg.chunk, n - submitted);
        const items = Array.from({ length: k }, (_, j) => ({
          type: one,
          params: { i: submitted + j },
        }));
        submitted += k;
        engine.submitMany(items).then(() => pump(), reject);
      }
    };
    const off = engine.on('committed', () => {
      if (ended.size >= n) {
        off();
        resolve();
      } else pump();
    });
    pump();
  });
}

/** Fan-out or chain: `parents` parents submitted at once; resolves when every one has ended. */
async function runTrees(parents: number): Promise<void> {
  rootsEnded = 0;
  const type = cfg.pattern === 'chain' ? chain : fanout;
  const children = cfg.pattern === 'chain' ? CHILDREN.chain : CHILDREN.fanout;
  submitting = true;
  const ids = await engine.submitMany(
    Array.from({ length: parents }, () => ({ type, params: { children } })),
  );
  submitting = false;
  for (const { id } of ids) {
    if (endedEarly.has(id)) rootsEnded++;
    else roots.add(id);
  }
  endedEarly.clear();
  await new Promise<void>((resolve) => {
    if (rootsEnded >= parents) return resolve();
    const off = engine.on('committed', () => {
      if (rootsEnded >= parents) {
        off();
        resolve();
      }
    });
  });
}

const run = (n: number): Promise<void> =>
  n <= 0 ? Promise.resolve() : cfg.pattern === 'one-task' ? runOneTask(n) : runTrees(n);

/**
 * How often to look whether a run has settled (every command's tasks cleared, nothing live):
 * between runs only, not timed; fine enough not to stretch the pause between runs.
 */
const SETTLE_POLL_MS = 5;

async function settled(): Promise<void> {
  while (engine.stats().liveCommands > 0) await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
}

/**
 * Nanoseconds this process's main thread has been on a CPU and waited for one so far
 * (schedstat); null: no /proc.
 */
function mainSched(): { cpu: number; queued: number } | null {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ');
    return { cpu: Number(stat[0]), queued: Number(stat[1]) };
  } catch {
    return null;
  }
}

function diff(a: OpCounts, b: OpCounts): OpCounts {
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof OpCounts)[]) out[k] = a[k] - b[k];
  return out;
}

let rawStore: PostgresStore | null = null;
let rawPlan: ChangeBatch[] = [];
let rawUnits = 0;
let rawRun = 0;

async function onMessage(m: ParentMessage): Promise<void> {
  switch (m.t) {
    case 'go': {
      const opsBefore = { ...ops };
      const cpuBefore = process.cpuUsage();
      const schedBefore = mainSched();
      const busyBefore = busy.ms();
      const commitsBefore = engine.stats().commits;
      const statementsBefore = new Map([...statements].map(([k, v]) => [k, { ...v }]));
      if (capture) captured = [];
      const t0 = performance.now();
      await run(cfg.share);
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpuBefore);
      const schedAfter = mainSched();
      if (capture && captured) {
        writeFileSync(capture, JSON.stringify({ units: cfg.share, batches: captured }));
        captured = null;
      }
      const commits = engine.stats().commits;
      send({
        t: 'done',
        run: m.run,
        seconds,
        ops: diff(ops, opsBefore),
        cpuMs: (cpu.user + cpu.system) / 1000,
        storeBusyMs: busy.ms() - busyBefore,
        mainQueuedMs:
          schedBefore && schedAfter ? (schedAfter.queued - schedBefore.queued) / 1e6 : null,
        mainCpuMs: schedBefore && schedAfter ? (schedAfter.cpu - schedBefore.cpu) / 1e6 : null,
        rows: commits.commands + commits.tasks - commitsBefore.commands - commitsBefore.tasks,
        ...(process.env.BENCH_PG_TRACE ? { statements: statementsSince(statementsBefore) } : {}),
      });
      await settled();
      send({ t: 'idle' });
      return;
    }
    case 'raw': {
      // The engine's run has settled: it stays idle (nothing in flight) while the raw limit is
      // measured, and runs again after it (the runs and the raw limits are interleaved). Each raw
      // run applies as a node of its own, retired at its end (so the engine never adopts it).
      // The one-connection limit, whatever the nodes apply through.
      rawStore = postgresStore({ url: cfg.url, schema: cfg.schema, applyConnections: 1 });
      await rawStore.open(`${nodeId}-raw-${++rawRun}`);
      const first = await rawStore.reserveIds(rawIdsNeeded(m.perUnit, m.units, m.perBatch));
      rawPlan = rawBatches(m.perUnit, m.units, m.perBatch, first, agentId);
      rawUnits = Math.ceil(m.units / m.perBatch) * m.perBatch;
      send({ t: 'raw-ready' });
      return;
    }
    case 'raw-go': {
      const seconds = await applyRaw(rawStore!, rawPlan);
      send({ t: 'raw-done', seconds, batches: rawPlan.length, units: rawUnits });
      await rawStore!.close();
      rawStore = null;
      return;
    }
    case 'stop': {
      await engine.stop();
      await rawStore?.close();
      send({ t: 'stopped' });
      process.disconnect();
      return;
    }
  }
}

/** Messages are handled one at a time, in order. */
let queue: Promise<void> = Promise.resolve();
process.on('message', (m: ParentMessage) => {
  queue = queue
    .then(() => onMessage(m))
    .catch((error: unknown) => {
      send({
        t: 'error',
        message: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
    });
});

try {
  await engine.start();
  // The warm-up (the JIT, the server's caches and plans, the connections) is not timed.
  await run(cfg.warmup);
  await settled();
  send({ t: 'ready' });
} catch (error) {
  send({
    t: 'error',
    message: error instanceof Error ? (error.stack ?? error.message) : String(error),
  });
}
