/**
 * Traces through `@opentelemetry/api`, with the SDK's in-memory exporter registered globally
 * (as a user would): a disk migration run by a reference agent over real HTTP — the command's
 * span under the caller's, its children's under it, their tasks' under theirs, the agent's
 * runs under the tasks' — and a command resumed after a restart, in the same trace.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpAgents } from '../../src/brokers/http/broker.js';
import { parseTraceParent } from '../../src/core/trace-context.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { startAgent } from '../../src/reference-agent/index.js';
import { storageVerbs } from '../../src/reference-agent/storage/verbs.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { postgresStore, type PostgresStore } from '../../src/store/postgres/pg-store.js';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { PG_URL, describePg, freshSchema } from '../support/pg.js';
import { diskCommands, diskCreate, diskMigrate } from '../../examples/disk/index.js';
import { Journal, testCommands } from '../support/commands.js';
import { TOKENS } from '../support/api.js';
import { FAST, assertNoLeakedEngines, holdVerbs, startEnv, tempDir } from '../support/harness.js';
import { startApiNode } from '../http/support.js';

const SECRET = 'tracing-test-agent-secret-0123456789';
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(contextManager.enable());
});
afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  exporter.reset();
  await assertNoLeakedEngines();
});

const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;
const idOf = (s: ReadableSpan): string => s.spanContext().spanId;

/** The one finished span matching `match`. */
function one(spans: readonly ReadableSpan[], match: (s: ReadableSpan) => boolean): ReadableSpan {
  const found = spans.filter(match);
  expect(found.length, found.map((s) => s.name).join(', ')).toBe(1);
  return found[0]!;
}

/** Resolves once every span the agent and the engine end after the command have ended. */
async function spansSettled(expected: (spans: readonly ReadableSpan[]) => boolean): Promise<void> {
  for (let i = 0; i < 200 && !expected(exporter.getFinishedSpans()); i++)
    await new Promise((r) => setImmediate(r));
}

describe('traces', () => {
  it('a disk migration: the command under the caller, children under it, tasks under them, agent runs under the tasks', async () => {
    const dir = tempDir('coco-tracing-');
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const agent = await startAgent({
      id: 'host-1',
      secret: SECRET,
      dataDir: join(dir, 'agent'),
      logger: silent,
      verbs: storageVerbs(join(dir, 'storage')),
    });
    cleanups.push(() => agent.close());
    const broker = httpAgents({
      caller: 'tracing-node',
      agents: [{ id: 'host-1', url: agent.url, secret: SECRET }],
    });
    const engine: Engine = createEngine({
      store: sqliteStore({ path: join(dir, 'coco.db') }),
      agents: broker,
      commands: diskCommands,
      tuning: FAST,
    });
    await engine.start();
    cleanups.push(async () => {
      await engine.stop();
      await broker.close();
    });
    const created = await engine.submit(diskCreate, {
      disk: 'd1',
      domain: 'sd1',
      sizeBytes: 256 * 1024,
      agent: 'host-1',
      seed: 'demo',
    });
    expect((await engine.waitFor(created.id)).status).toBe('succeeded');
    exporter.reset();

    // The caller's span: the migration's trace starts there.
    const tracer = trace.getTracer('test');
    const { caller, id } = await tracer.startActiveSpan('caller', async (span) => {
      const submitted = await engine.submit(diskMigrate, {
        disk: 'd1',
        toDomain: 'sd2',
        agent: 'host-1',
        chunkBytes: 64 * 1024,
      });
      span.end();
      return { caller: span.spanContext(), id: submitted.id };
    });
    expect((await engine.waitFor(id)).status).toBe('succeeded');
    const details = await engine.inspect(id);
    const children = details!.children;
    const tasksOf = new Map(
      await Promise.all(children.map(async (c) => [c.id, await engine.inspect(c.id)] as const)),
    );
    const taskCount = [...tasksOf.values()].reduce((n, d) => n + d!.tasks.length, 0);
    await spansSettled(
      (spans) => spans.filter((s) => s.name.startsWith('agent ')).length >= taskCount,
    );
    const spans = exporter
      .getFinishedSpans()
      .filter((s) => s.spanContext().traceId === caller.traceId);

    // Everything of the migration is in the caller's trace.
    const root = one(spans, (s) => s.name === 'command disk.migrate');
    expect(parentOf(root)).toBe(caller.spanId);
    expect(root.attributes['coco.command.id']).toBe(id);
    expect(root.attributes['coco.command.outcome']).toBe('succeeded');
    // Its stored trace context names its span.
    const stored = parseTraceParent((await engine.get(id))!.traceContext);
    expect(stored).toMatchObject({ traceId: caller.traceId, spanId: idOf(root) });
    // Its handler runs under it.
    expect(parentOf(one(spans, (s) => s.name === 'disk.migrate execute'))).toBe(idOf(root));
    const nexts = spans.filter((s) => s.name === 'disk.migrate next');
    expect(nexts.length).toBeGreaterThan(0);
    for (const s of nexts) expect(parentOf(s)).toBe(idOf(root));

    // One span per child, under the root; each child's tasks under the child.
    expect(children.length).toBeGreaterThanOrEqual(5);
    const agentSpans = spans.filter((s) => s.name.startsWith('agent '));
    for (const child of children) {
      const span = one(
        spans,
        (s) => s.name.startsWith('command ') && s.attributes['coco.command.id'] === child.id,
      );
      expect(span.name).toBe(`command ${child.type}`);
      expect(parentOf(span)).toBe(idOf(root));
      for (const t of tasksOf.get(child.id)!.tasks) {
        const taskSpan = one(
          spans,
          (s) =>
            s.name === `task ${t.verb}` &&
            s.attributes['coco.task.id'] === `${engine.storeId}-${child.id}-${t.ordinal}`,
        );
        expect(parentOf(taskSpan)).toBe(idOf(span));
        expect(taskSpan.events.map((e) => e.name)).toContain('started');
        // The agent's run of the task joined the trace, under the task's span.
        const run = one(agentSpans, (s) => parentOf(s) === idOf(taskSpan));
        expect(run.name).toBe(`agent ${t.verb}`);
        expect(run.attributes['coco.agent.id']).toBe('host-1');
        expect(run.attributes['coco.task.status']).toBe('succeeded');
      }
    }
    expect(agentSpans.length).toBe(taskCount);
  });

  it('a command resumed after a restart stays in its trace, under its stored span', async () => {
    const hold = holdVerbs();
    const t = testCommands(new Journal());
    const env = await startEnv({ commands: t.all, verbs: hold.verbs });
    cleanups.push(async () => rmSync(env.dir, { recursive: true, force: true }));
    const { id } = await env.engine.submit(t.group, {
      name: 'g',
      children: [{ name: 'c1', verb: 'hold', args: { key: 'k1' } }],
    });
    const childId = id + 1;
    await new Promise<void>((resolve) => {
      const off = env.engine.on('committed', (b) => {
        if (b.taskUpdates.some((u) => u.commandId === childId && u.status === 'running')) {
          off();
          resolve();
        }
      });
    });
    const rootContext = parseTraceParent((await env.engine.get(id))!.traceContext)!;
    const childContext = parseTraceParent((await env.engine.get(childId))!.traceContext)!;
    expect(rootContext).not.toBeNull();
    expect(childContext.traceId).toBe(rootContext.traceId);
    // The spans of the first run never end (never exported): the process "died" with them.
    const restarted = await env.restart();
    hold.release('k1');
    expect((await restarted.engine.waitFor(id)).status).toBe('succeeded');
    await spansSettled((spans) =>
      spans.some((s) => s.name === 'command test.group' && s.attributes['coco.resumed'] === true),
    );
    const spans = exporter
      .getFinishedSpans()
      .filter((s) => s.spanContext().traceId === rootContext.traceId);
    const resumedRoot = one(spans, (s) => s.name === 'command test.group');
    const resumedChild = one(spans, (s) => s.name === 'command test.leaf');
    expect(resumedRoot.attributes['coco.resumed']).toBe(true);
    expect(parentOf(resumedRoot)).toBe(rootContext.spanId);
    expect(parentOf(resumedChild)).toBe(childContext.spanId);
    // The task still running at the restart has a span again, under the child's new one.
    const task = one(spans, (s) => s.name === 'task hold');
    expect(task.attributes['coco.resumed']).toBe(true);
    expect(parentOf(task)).toBe(idOf(resumedChild));
    // The handlers after the restart (the child's and the group's onSuccess) too.
    expect(parentOf(one(spans, (s) => s.name === 'test.group onSuccess'))).toBe(idOf(resumedRoot));
    await restarted.cleanup();
  });

  it("a command submitted through the API with a traceparent header nests under the caller's span", async () => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    cleanups.push(async () => propagation.disable());
    const api = await startApiNode();
    cleanups.push(() => api.close());
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const r = await fetch(`${api.url}/v1/commands`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${TOKENS.operator}`,
        'content-type': 'application/json',
        traceparent: `00-${traceId}-${callerSpan}-01`,
      },
      body: JSON.stringify({ type: 'api.work', params: { tasks: 1 } }),
    });
    expect(r.status).toBe(201);
    const { id } = (await r.json()) as { id: number };
    await api.node.engine.waitFor(id);
    await spansSettled((spans) => spans.some((s) => s.name === 'command api.work'));
    const span = one(exporter.getFinishedSpans(), (s) => s.name === 'command api.work');
    expect(span.spanContext().traceId).toBe(traceId);
    expect(parentOf(span)).toBe(callerSpan);
    expect(parseTraceParent((await api.node.engine.get(id))!.traceContext)?.traceId).toBe(traceId);
  });

  it('without a registered SDK nothing is recorded or stored', async () => {
    trace.disable();
    try {
      const t = testCommands(new Journal());
      const env = await startEnv({ commands: t.all });
      cleanups.push(() => env.cleanup());
      const { id } = await env.engine.submit(t.leaf, { name: 'plain' });
      await env.engine.waitFor(id);
      expect((await env.engine.get(id))!.traceContext).toBeNull();
      expect(exporter.getFinishedSpans()).toEqual([]);
    } finally {
      trace.setGlobalTracerProvider(provider);
    }
  });
});

describePg('traces on PostgreSQL', () => {
  it('a keyed root, stored on its own before it runs, keeps its trace context; one whose key was taken ends its span unstored', async () => {
    const fresh = freshSchema('coco_trace_key');
    cleanups.push(() => fresh.drop());
    const t = testCommands(new Journal());
    const agents = inProcessAgents(['a1']);
    const node = async (nodeId: string, store: PostgresStore): Promise<Engine> => {
      const engine = createEngine({ store, agents, commands: t.all, nodeId, logger: silent });
      await engine.start();
      cleanups.push(() => engine.stop());
      return engine;
    };
    const a = await node('trace-a', postgresStore({ url: PG_URL, schema: fresh.schema }));
    // Node b looks for the key in the instant before a stored it (the race across nodes).
    const storeB = postgresStore({ url: PG_URL, schema: fresh.schema });
    const lookUp = storeB.getCommandByKey.bind(storeB);
    let early = true;
    storeB.getCommandByKey = (key) =>
      early ? ((early = false), Promise.resolve(null)) : lookUp(key);
    const b = await node('trace-b', storeB);

    const caller = trace.getTracer('test').startSpan('caller');
    const submit = (engine: Engine): Promise<{ id: number; existing?: true }> =>
      context.with(trace.setSpan(context.active(), caller), () =>
        engine.submit(t.leaf, { name: 'keyed' }, { idempotencyKey: 'trace-key' }),
      );
    const first = await submit(a);
    expect(await submit(b)).toEqual({ id: first.id, existing: true });
    caller.end();
    await a.waitFor(first.id);
    const named = (s: ReadableSpan): boolean => s.name === `command ${t.leaf.name}`;
    await spansSettled((spans) => spans.filter(named).length === 2);
    const spans = exporter.getFinishedSpans().filter(named);
    // The stored one: its row names its span, under the caller's.
    const root = one(spans, (s) => s.attributes['coco.command.id'] === first.id);
    expect(root.attributes['coco.command.outcome']).toBe('succeeded');
    expect(parentOf(root)).toBe(caller.spanContext().spanId);
    expect(parseTraceParent((await a.get(first.id))!.traceContext)).toMatchObject({
      traceId: caller.spanContext().traceId,
      spanId: idOf(root),
    });
    // The one never stored: its span ended, saying so.
    const dropped = one(spans, (s) => s.attributes['coco.command.id'] !== first.id);
    expect(dropped.attributes['coco.command.outcome']).toBe('not stored: idempotency key taken');
    expect(await b.get(Number(dropped.attributes['coco.command.id']))).toBeNull();
  });
});
