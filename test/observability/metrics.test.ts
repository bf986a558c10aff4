/**
 * `GET /metrics` after a real workload: a node on a SQLite file, in-process agents and one
 * reference agent over real HTTP; the scrape is parsed strictly and its counts are checked
 * against what the store holds.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { httpAgents } from '../../src/brokers/http/broker.js';
import { DEFAULT_MAX_CONCURRENT_CALLS } from '../../src/brokers/http/options.js';
import { parseConfig } from '../../src/config/config.js';
import type { CommandRecord } from '../../src/core/records.js';
import type { Engine } from '../../src/engine/engine.js';
import { createNodeMetrics } from '../../src/observability/metrics.js';
import { FastCounter, FastHistogram } from '../../src/observability/fast-metrics.js';
import { Registry } from 'prom-client';
import { startAgent } from '../../src/reference-agent/index.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import { Journal, testCommands } from '../support/commands.js';
import { tempDir } from '../support/harness.js';
import { PG_URL, describePg, freshSchema } from '../support/pg.js';
import { parsePrometheusText, sampleValue, samples, type Family } from '../support/prom-text.js';
import { RoutingBroker } from '../support/routing-broker.js';

const TOKEN = 'metrics-test-token-0123456789';
const SECRET = 'metrics-test-agent-secret-0123456789';
const silent = { debug() {}, info() {}, warn() {}, error() {} };

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function scrape(node: CocoNode, token = TOKEN): Promise<Response> {
  return fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
}

/** Every stored command (a fresh store: a few pages at most). */
async function allCommands(node: CocoNode): Promise<CommandRecord[]> {
  const all: CommandRecord[] = [];
  let beforeId: number | undefined;
  for (;;) {
    const page = await node.engine.list({ limit: 1000, ...(beforeId ? { beforeId } : {}) });
    all.push(...page.commands);
    if (page.nextBeforeId === null) return all;
    beforeId = page.nextBeforeId;
  }
}

function countBy<T>(items: readonly T[], key: (t: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

/** An engine as the metrics see it, idle, with its poll counts (for `NodeMetrics.attach`). */
function fakeEngine(polls = 0, tasks = 0): Engine {
  return {
    on: () => () => {},
    pollCounts: () => ({ polls, tasks }),
    figures: () => ({ inFlight: {}, held: 0, watchedTasks: 0, agents: [] }),
    admissionStats: () => [],
    rootAdmissionStats: () => [],
    pausedTypes: () => new Map(),
    state: 'running',
  } as unknown as Engine;
}

/** A reference agent `h1` over real HTTP, its data under `dir`; closed after the test. */
async function startRemote(dir: string): Promise<Awaited<ReturnType<typeof startAgent>>> {
  const remote = await startAgent({
    id: 'h1',
    secret: SECRET,
    dataDir: join(dir, 'agent'),
    logger: silent,
  });
  cleanups.push(() => remote.close());
  return remote;
}

describe('GET /metrics', () => {
  it('after a workload, counts what the store shows', async () => {
    const dir = tempDir('coco-metrics-');
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const remote = await startRemote(dir);
    const broker = new RoutingBroker([
      inProcessAgents(['a1']),
      httpAgents({
        caller: 'metrics-node',
        agents: [{ id: 'h1', url: remote.url, secret: SECRET }],
      }),
    ]);
    const t = testCommands(new Journal());
    const node = await startNode({
      config: parseConfig(
        { store: `sqlite:${join(dir, 'coco.db')}`, api: { port: 0, token: TOKEN } },
        dir,
      ),
      commands: t.all,
      broker,
      logger: silent,
    });
    cleanups.push(() => node.close());
    const { engine } = node;

    const ids: number[] = [];
    const submit = async (type: (typeof t.all)[number], params: unknown) =>
      ids.push((await engine.submit(type, params)).id);
    for (let i = 0; i < 5; i++) await submit(t.leaf, { name: `a${i}`, tasks: 2 });
    for (let i = 0; i < 3; i++) await submit(t.leaf, { name: `h${i}`, agent: 'h1' });
    await submit(t.leaf, { name: 'broken', failExecute: true });
    await submit(t.leaf, { name: 'remote-fail', agent: 'h1', verb: 'fail' });
    await submit(t.group, {
      name: 'g',
      children: [{ name: 'g1' }, { name: 'g2', agent: 'h1' }, { name: 'g3', tasks: 3 }],
    });
    const long = (
      await engine.submit(t.leaf, { name: 'long', verb: 'sleep', args: { ms: 60_000 } })
    ).id;
    for (const id of ids) await engine.waitFor(id);
    await engine.cancel(long);
    expect((await engine.waitFor(long)).status).toBe('cancelled');
    await node.monitor!.flush();

    // No token, a wrong token: refused like every API call.
    expect((await fetch(`${node.url}/metrics`)).status).toBe(401);
    expect((await scrape(node, 'x'.repeat(TOKEN.length))).status).toBe(401);

    const pollsBefore = engine.pollCounts();
    const response = await scrape(node);
    const pollsAfter = engine.pollCounts();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusText(await response.text());
    const v = (name: string, labels: Record<string, string> = {}) =>
      sampleValue(families, name, labels);
    const typeOf = (name: string): Family['type'] | undefined => families.get(name)?.type;

    const stored = await allCommands(node);
    expect(stored.length).toBe(15);
    // Submitted, by type and kind: as many as the store holds.
    const byKind = countBy(stored, (c) => `${c.type}|${c.parentId === null ? 'root' : 'child'}`);
    expect(samples(families, 'coco_commands_submitted').length).toBe(0);
    expect(typeOf('coco_commands_submitted_total')).toBe('counter');
    for (const [key, n] of byKind) {
      const [type = '', kind = ''] = key.split('|');
      expect(v('coco_commands_submitted_total', { type, kind }), key).toBe(n);
    }
    expect(v('coco_commands_submitted_total')).toBe(stored.length);
    // Ended, by type and outcome: the stored statuses.
    const byOutcome = countBy(stored, (c) => `${c.type}|${c.status}`);
    for (const [key, n] of byOutcome) {
      const [type = '', outcome = ''] = key.split('|');
      expect(v('coco_commands_ended_total', { type, outcome }), key).toBe(n);
    }
    expect(v('coco_commands_ended_total')).toBe(stored.length);
    expect(v('coco_commands_ended_total', { outcome: 'failed' })).toBeGreaterThanOrEqual(2);
    expect(v('coco_commands_ended_total', { outcome: 'cancelled' })).toBe(1);
    // Durations: one observation per ended command, per type.
    for (const [type, n] of countBy(stored, (c) => c.type))
      expect(v('coco_command_duration_seconds_count', { type }), type).toBe(n);
    // End latency: observed for each command a task of which ended here.
    const withTasks = stored.filter((c) => c.taskCount > 0).length;
    expect(v('coco_command_end_latency_seconds_count')).toBe(withTasks);
    expect(v('coco_command_end_latency_seconds_bucket', { le: '+Inf' })).toBe(withTasks);
    // Nothing in flight any more.
    for (const status of ['pending', 'waiting', 'aborting', 'compensating'])
      expect(
        samples(families, 'coco_commands_in_flight').find((s) => s.labels.status === status)?.value,
      ).toBe(0);
    expect(v('coco_engine_running')).toBe(1);
    // Agent calls, over HTTP and in-process; latency observed once per call.
    expect(
      v('coco_agent_calls_total', { agent: 'h1', call: 'startTasks', outcome: 'ok' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      v('coco_agent_calls_total', { agent: 'a1', call: 'startTasks', outcome: 'ok' }),
    ).toBeGreaterThanOrEqual(1);
    expect(v('coco_agent_calls_total', { outcome: 'error' })).toBe(0);
    for (const call of ['startTasks', 'clearTasks', 'listTasks'])
      expect(v('coco_agent_call_duration_seconds_count', { call }), call).toBe(
        v('coco_agent_calls_total', { call }),
      );
    expect(v('coco_agent_up', { agent: 'a1' })).toBe(1);
    expect(v('coco_agent_up', { agent: 'h1' })).toBe(1);
    expect(v('coco_agents', { state: 'up' })).toBe(2);
    expect(v('coco_agents', { state: 'down' })).toBe(0);
    // Batches: as many as the committer counted; every stored row was in one.
    const commits = engine.stats().commits;
    expect(v('coco_batch_rows_count')).toBe(commits.batches);
    expect(v('coco_batch_apply_seconds_count')).toBe(commits.batches);
    expect(v('coco_batch_rows_sum')).toBeGreaterThanOrEqual(commits.commands + commits.tasks);
    expect(v('coco_store_errors_total', { store: 'engine' })).toBe(0);
    expect(v('coco_store_errors_total', { store: 'jobs' })).toBe(0);
    // Polls: the dispatcher's counts at the scrape (they move between two reads).
    expect(typeOf('coco_agent_polls_total')).toBe('counter');
    expect(pollsBefore.polls).toBeGreaterThan(0);
    for (const [name, which] of [
      ['coco_agent_polls_total', 'polls'],
      ['coco_agent_polled_tasks_total', 'tasks'],
    ] as const) {
      expect(v(name), name).toBeGreaterThanOrEqual(pollsBefore[which]);
      expect(v(name), name).toBeLessThanOrEqual(pollsAfter[which]);
    }
    // The job view caught up.
    expect(v('coco_job_monitor_lag_seconds')).toBe(0);
    expect(typeOf('coco_job_monitor_lag_seconds')).toBe('gauge');
  });

  it("walks the engine's live commands once a scrape, not once per gauge", async () => {
    const dir = tempDir('coco-metrics-once-');
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const node = await startNode({
      config: parseConfig(
        {
          store: `sqlite:${join(dir, 'coco.db')}`,
          api: { port: 0, tokens: [{ name: 't', role: 'viewer', token: TOKEN }] },
        },
        dir,
      ),
      commands: [],
      broker: inProcessAgents(['a1']),
      logger: silent,
    });
    cleanups.push(() => node.close());
    const engine = node.engine;
    const figures = engine.figures.bind(engine);
    let walks = 0;
    engine.figures = () => {
      walks++;
      return figures();
    };
    const text = await (await scrape(node)).text();
    expect(text).toContain('coco_commands_in_flight');
    expect(walks).toBe(1);
  });

  it('keeps counting polls across engine generations (never back)', async () => {
    const metrics = createNodeMetrics();
    const engine = fakeEngine;
    const polls = async () => {
      const f = parsePrometheusText(await metrics.text());
      return [
        sampleValue(f, 'coco_agent_polls_total', {}),
        sampleValue(f, 'coco_agent_polled_tasks_total', {}),
      ];
    };
    const detachFirst = metrics.attach(engine(5, 40));
    expect(await polls()).toEqual([5, 40]);
    detachFirst();
    expect(await polls()).toEqual([5, 40]);
    metrics.attach(engine(2, 3));
    expect(await polls()).toEqual([7, 43]);
  });

  it("shows a store's connection pool, by store and state", async () => {
    const metrics = createNodeMetrics();
    const engine = fakeEngine();
    const pool = (open: number, idle: number, waiting: number, closing = 0) => ({
      connections: () => ({ open, idle, waiting, closing }),
    });
    const shown = async () => {
      const f = parsePrometheusText(await metrics.text());
      return [
        samples(f, 'coco_store_connections').map((x) => [x.labels, x.value]),
        samples(f, 'coco_store_connection_waiters').map((x) => [x.labels, x.value]),
      ];
    };
    const detach = metrics.attach(engine, null, null, {
      engine: pool(5, 1, 3, 2),
      jobs: pool(2, 2, 0),
    });
    expect(await shown()).toEqual([
      [
        [{ store: 'engine', state: 'busy' }, 4],
        [{ store: 'engine', state: 'idle' }, 1],
        [{ store: 'engine', state: 'closing' }, 2],
        [{ store: 'jobs', state: 'busy' }, 0],
        [{ store: 'jobs', state: 'idle' }, 2],
        [{ store: 'jobs', state: 'closing' }, 0],
      ],
      [
        [{ store: 'engine' }, 3],
        [{ store: 'jobs' }, 0],
      ],
    ]);
    // Without pools (SQLite), or once detached: no series.
    detach();
    expect(await shown()).toEqual([[], []]);
    metrics.attach(engine);
    expect(await shown()).toEqual([[], []]);
  });

  it("shows the HTTP broker's call slots of a node that calls its agents itself", async () => {
    const dir = tempDir('coco-metrics-slots-');
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const remote = await startRemote(dir);
    const t = testCommands(new Journal());
    const node = await startNode({
      config: parseConfig(
        {
          store: `sqlite:${join(dir, 'coco.db')}`,
          api: { port: 0, token: TOKEN },
          agents: [{ id: 'h1', url: remote.url, secret: SECRET }],
        },
        dir,
      ),
      commands: t.all,
      logger: silent,
    });
    cleanups.push(() => node.close());
    const { id } = await node.engine.submit(t.leaf, { name: 'remote', agent: 'h1' });
    expect((await node.engine.waitFor(id)).status).toBe('succeeded');
    const families = parsePrometheusText(await (await scrape(node)).text());
    const v = (name: string) => sampleValue(families, name, {});
    expect(v('coco_broker_call_slots')).toBe(DEFAULT_MAX_CONCURRENT_CALLS);
    expect(families.get('coco_broker_call_slots')?.type).toBe('gauge');
    expect(v('coco_broker_calls_waiting')).toBe(0);
    expect(v('coco_broker_calls_in_flight')).toBeLessThanOrEqual(DEFAULT_MAX_CONCURRENT_CALLS);
    expect(families.get('coco_broker_calls_refused_total')?.type).toBe('counter');
    expect(v('coco_broker_calls_refused_total')).toBe(0);
    expect(v('coco_broker_calls_waited_total')).toBe(0);
  });

  it("keeps counting the broker's waits and refusals across generations, once per broker", async () => {
    const metrics = createNodeMetrics();
    const engine = fakeEngine();
    const broker = (counts: { waited: number; refused: number }) => ({
      callSlots: () => ({ limit: 8, inFlight: 3, waiting: 2, ...counts }),
    });
    const read = async () => {
      const f = parsePrometheusText(await metrics.text());
      return {
        slots: f.get('coco_broker_call_slots')?.samples.length
          ? sampleValue(f, 'coco_broker_call_slots', {})
          : null,
        inFlight: f.get('coco_broker_calls_in_flight')?.samples.length
          ? sampleValue(f, 'coco_broker_calls_in_flight', {})
          : null,
        waiting: f.get('coco_broker_calls_waiting')?.samples.length
          ? sampleValue(f, 'coco_broker_calls_waiting', {})
          : null,
        waited: sampleValue(f, 'coco_broker_calls_waited_total', {}),
        refused: sampleValue(f, 'coco_broker_calls_refused_total', {}),
      };
    };
    // No broker with slots (in-process agents): everything at 0.
    const detachNone = metrics.attach(engine);
    expect(await read()).toEqual({ slots: 0, inFlight: 0, waiting: 0, waited: 0, refused: 0 });
    detachNone();
    // A generation's own broker, then the next generation's: the counts add up, never back.
    const first = { waited: 10, refused: 4 };
    const detachFirst = metrics.attach(engine, null, broker(first));
    expect(await read()).toEqual({ slots: 8, inFlight: 3, waiting: 2, waited: 10, refused: 4 });
    first.waited = 12;
    detachFirst();
    expect(await read()).toMatchObject({ slots: 0, waited: 12, refused: 4 });
    const second = { waited: 1, refused: 0 };
    const kept = broker(second);
    const detachSecond = metrics.attach(engine, null, kept);
    expect(await read()).toMatchObject({ slots: 8, waited: 13, refused: 4 });
    // A broker that outlives its generation (given to the node) is attached again: its counts
    // are not added twice.
    second.refused = 2;
    detachSecond();
    expect(await read()).toMatchObject({ waited: 13, refused: 6 });
    second.refused = 3;
    const detachThird = metrics.attach(engine, null, kept);
    expect(await read()).toMatchObject({ waited: 13, refused: 7 });
    detachThird();
    metrics.attach(engine, null, kept);
    expect(await read()).toMatchObject({ waited: 13, refused: 7 });
  });

  it('keeps two nodes of one process apart (a registry each)', async () => {
    const one = createNodeMetrics();
    const two = createNodeMetrics();
    expect(one.registry).not.toBe(two.registry);
    const a = parsePrometheusText(await one.text());
    const b = parsePrometheusText(await two.text());
    expect([...a.keys()]).toEqual([...b.keys()]);
    expect(a.has('coco_commands_submitted_total')).toBe(true);
  });

  it('writes cheap children as prom-client would: cumulative buckets, +Inf, sum and count', async () => {
    const registry = new Registry();
    const h = new FastHistogram({
      name: 'h_seconds',
      help: 'h',
      labelNames: ['k'],
      buckets: [0.1, 1, 10],
      registers: [registry],
    });
    const a = h.child({ k: 'a' });
    for (const x of [0.05, 0.1, 0.5, 2, 20, 1]) a.observe(x);
    h.child({ k: 'b' });
    const c = new FastCounter({
      name: 'c_total',
      help: 'c',
      labelNames: ['k'],
      registers: [registry],
    });
    c.child({ k: 'x' }).inc();
    c.child({ k: 'y' }).inc(3);
    const f = parsePrometheusText(await registry.metrics());
    const bucket = (k: string, le: string) => sampleValue(f, 'h_seconds_bucket', { k, le });
    expect([bucket('a', '0.1'), bucket('a', '1'), bucket('a', '10'), bucket('a', '+Inf')]).toEqual([
      2, 4, 5, 6,
    ]);
    expect(sampleValue(f, 'h_seconds_sum', { k: 'a' })).toBeCloseTo(23.65);
    expect(sampleValue(f, 'h_seconds_count', { k: 'a' })).toBe(6);
    expect(bucket('b', '+Inf')).toBe(0);
    expect(f.get('h_seconds')?.type).toBe('histogram');
    expect(sampleValue(f, 'c_total', { k: 'x' })).toBe(1);
    expect(sampleValue(f, 'c_total', { k: 'y' })).toBe(3);
    expect(f.get('c_total')?.type).toBe('counter');
  });
});

describePg('GET /metrics on PostgreSQL', () => {
  it("shows the engine store's and the job view's connection pools", async () => {
    const fresh = freshSchema('coco_metrics_pool');
    cleanups.push(() => fresh.drop());
    const dir = tempDir('coco-metrics-pool-');
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const url = new URL(PG_URL);
    url.searchParams.set('schema', fresh.schema);
    const t = testCommands(new Journal());
    const node = await startNode({
      config: parseConfig({ store: url.toString(), api: { port: 0, token: TOKEN } }, dir),
      commands: t.all,
      broker: inProcessAgents(['a1']),
      logger: silent,
    });
    cleanups.push(() => node.close());
    const { id } = await node.engine.submit(t.leaf, { name: 'one' });
    expect((await node.engine.waitFor(id)).status).toBe('succeeded');
    const families = parsePrometheusText(await (await scrape(node)).text());
    expect(families.get('coco_store_connections')?.type).toBe('gauge');
    const v = (name: string, labels: Record<string, string>) => sampleValue(families, name, labels);
    for (const store of ['engine', 'jobs']) {
      // The engine store holds its apply connections and its listener: some are busy.
      const busy = v('coco_store_connections', { store, state: 'busy' });
      const idle = v('coco_store_connections', { store, state: 'idle' });
      expect(busy + idle).toBeGreaterThan(0);
      expect(v('coco_store_connection_waiters', { store })).toBe(0);
    }
    expect(v('coco_store_connections', { store: 'engine', state: 'busy' })).toBeGreaterThan(0);
  });
});
