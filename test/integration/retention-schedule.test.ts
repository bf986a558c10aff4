/**
 * Scheduled retention in a node (`retention` in the configuration): the configuration's
 * durations, passes on the schedule logged at info with their counts, and the schedule kept
 * across a rejoin (a node that lost its lease on PostgreSQL runs its next passes on its new
 * generation).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { parseConfig } from '../../src/config/config.js';
import type { Logger } from '../../src/core/command-type.js';
import { CocoError } from '../../src/core/errors.js';
import type { Engine } from '../../src/engine/engine.js';
import { startNode } from '../../src/server/node.js';
import { Journal, testCommands } from '../support/commands.js';
import { tempDir, whenCommitted } from '../support/harness.js';
import { PG_URL, adminQuery, describePg, freshSchema } from '../support/pg.js';

const t = testCommands(new Journal());

/**
 * A logger that keeps the retention passes it is told of, and lets a test wait for one: the first
 * matching pass from index `from` of `passes` on (already told, or to come; by default only one
 * to come). A pass may prune a tree before the test gets to wait for it (passes every 100 ms).
 */
function passLog(): Logger & {
  passes: Record<string, unknown>[];
  next(
    match: (pass: Record<string, unknown>) => boolean,
    from?: number,
  ): Promise<Record<string, unknown>>;
} {
  const passes: Record<string, unknown>[] = [];
  const waiters: {
    match(p: Record<string, unknown>): boolean;
    resolve(p: Record<string, unknown>): void;
  }[] = [];
  const info = (fields: unknown, message?: string): void => {
    if (message !== 'retention pass') return;
    const pass = fields as Record<string, unknown>;
    passes.push(pass);
    for (const w of waiters.splice(0)) {
      if (w.match(pass)) w.resolve(pass);
      else waiters.push(w);
    }
  };
  return {
    passes,
    debug() {},
    info: info,
    warn() {},
    error() {},
    next: (match, from = passes.length) => {
      const told = passes.slice(from).find(match);
      if (told !== undefined) return Promise.resolve(told);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
  };
}

async function isSettled(engine: Engine, rootId: number): Promise<boolean> {
  const { commands } = await engine.list({ rootId });
  return commands.every(
    (c) => c.endedAt !== null && c.tasksCleared && c.compensation !== 'compensating',
  );
}

/**
 * Runs a group of one child until its tree has settled. Its end is awaited as an event, not by
 * `waitFor`: with a maxAge of 1 ms a pass may prune the tree between its end and `waitFor`'s read
 * of the stored command (COMMAND_NOT_FOUND, seen once under a loaded CI run); a pruned tree lists
 * no commands, so it counts as settled.
 */
async function settledGroup(engine: Engine): Promise<number> {
  const ended = new Set<number>();
  let wake: (() => void) | null = null;
  const off = engine.on('ended', (c) => {
    ended.add(c.id);
    wake?.();
  });
  try {
    const { id } = await engine.submit(t.group, { name: 'g', children: [{ name: 'a' }] });
    while (!ended.has(id)) await new Promise<void>((resolve) => (wake = resolve));
    if (!(await isSettled(engine, id))) await whenCommitted(engine, () => isSettled(engine, id));
    return id;
  } finally {
    off();
  }
}

function thrown(fn: () => unknown): CocoError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CocoError) return error;
    throw error;
  }
  throw new Error('expected an error');
}

describe('configuration: retention', () => {
  it('is off unless configured; durations are text or milliseconds, with defaults', () => {
    expect(parseConfig({}, '/').retention).toBeUndefined();
    expect(parseConfig({ retention: { maxAge: '30d' } }, '/').retention).toEqual({
      maxAge: 30 * 86_400_000,
      interval: 3_600_000,
      batch: 100,
      budget: 30_000,
    });
    expect(
      parseConfig({ retention: { maxAge: 90_000, interval: '90m', batch: 500, budget: '2m' } }, '/')
        .retention,
    ).toEqual({ maxAge: 90_000, interval: 5_400_000, batch: 500, budget: 120_000 });
  });

  it('refuses bad values naming the field and what a duration is', () => {
    for (const [retention, path] of [
      [{}, 'retention.maxAge'],
      [{ maxAge: '30' }, 'retention.maxAge'],
      [{ maxAge: '0d' }, 'retention.maxAge'],
      [{ maxAge: 0 }, 'retention.maxAge'],
      [{ maxAge: '1d', interval: '1w' }, 'retention.interval'],
      [{ maxAge: '1d', batch: 0 }, 'retention.batch'],
      [{ maxAge: '1d', budget: -5 }, 'retention.budget'],
      [{ maxAge: '1d', every: '1h' }, 'retention'],
    ] as const) {
      const error = thrown(() => parseConfig({ retention }, '/'));
      expect(error.code).toBe('INVALID_OPTIONS');
      const issues = (error.details as { issues: { path: string; message: string }[] }).issues;
      expect(
        issues.map((i) => i.path),
        JSON.stringify(retention),
      ).toContain(path);
    }
    const error = thrown(() => parseConfig({ retention: { maxAge: '3 days' } }, '/'));
    expect(JSON.stringify(error.details)).toContain('e.g. 30d, 12h, 90m');
  });
});

describe('scheduled retention in a node', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('prunes on its schedule and logs each pass at info with the counts; off, there is none', async () => {
    const dir = tempDir('coco-retention-');
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const log = passLog();
    const config = parseConfig(
      {
        store: `sqlite:${join(dir, 'coco.db')}`,
        api: { port: 0 },
        retention: { maxAge: 1, interval: '100ms' },
      },
      dir,
    );
    const node = await startNode({
      config,
      commands: t.all,
      broker: inProcessAgents(['a1']),
      logger: log,
      listen: false,
    });
    cleanups.push(() => node.close());
    expect(node.retention).not.toBeNull();
    const from = log.passes.length;
    const id = await settledGroup(node.engine);
    const pass = await log.next((p) => (p.trees as number) > 0, from);
    expect(pass).toMatchObject({
      nodeId: node.engine.nodeId,
      trees: 1,
      commands: 2,
      tasks: 1,
      undo: 2,
      more: false,
    });
    expect(await node.engine.get(id)).toBeNull();
    // The job goes with its tree, or, if the view wrote it after the pass, with the next pass.
    await node.monitor!.flush();
    // A pass already under way when the view wrote the job may miss it; a later one does not
    // (a test failed once at load 12 waiting for just the next pass).
    while ((await node.monitor!.getJob(id)) !== null) await log.next(() => true);
    expect(log.passes.reduce((n, p) => n + (p.jobs as number), 0)).toBe(1);
    // The metrics count the passes and what they deleted, and say when one last succeeded.
    const text = await node.metrics.registry.metrics();
    const sample = (series: string): number =>
      Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(sample('coco_retention_passes_total{outcome="done"}')).toBeGreaterThanOrEqual(
      log.passes.length,
    );
    expect(sample('coco_retention_passes_total{outcome="failed"}')).toBe(0);
    expect(sample('coco_retention_deleted_total{what="trees"}')).toBe(1);
    expect(sample('coco_retention_deleted_total{what="commands"}')).toBe(2);
    expect(sample('coco_retention_deleted_total{what="jobs"}')).toBe(1);
    const last = sample('coco_retention_last_success_timestamp_seconds');
    expect(Date.now() / 1000 - last).toBeGreaterThanOrEqual(0);
    expect(Date.now() / 1000 - last).toBeLessThan(60);

    const off = await startNode({
      config: parseConfig({ store: `sqlite:${join(dir, 'off.db')}`, api: { port: 0 } }, dir),
      commands: t.all,
      broker: inProcessAgents(['a1']),
      logger: log,
      listen: false,
    });
    cleanups.push(() => off.close());
    expect(off.retention).toBeNull();
    // Off: no retention series at all.
    expect(await off.metrics.registry.metrics()).not.toMatch(/^coco_retention_\S+ /m);
  });

  it('a reload turns it on, changes it and turns it off, with no restart', async () => {
    const dir = tempDir('coco-retention-reload-');
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const log = passLog();
    const configured = (retention?: object) =>
      parseConfig(
        {
          store: `sqlite:${join(dir, 'coco.db')}`,
          api: { port: 0 },
          ...(retention && { retention }),
        },
        dir,
      );
    const node = await startNode({
      config: configured(),
      commands: t.all,
      broker: inProcessAgents(['a1']),
      logger: log,
      listen: false,
    });
    cleanups.push(() => node.close());
    expect(node.retention).toBeNull();
    const kept = await settledGroup(node.engine);

    // On: an hour's age keeps the tree; its metrics appear.
    node.setRetention(configured({ maxAge: '1h', interval: '100ms' }).retention);
    expect(node.retention?.settings).toEqual({
      maxAgeMs: 3_600_000,
      intervalMs: 100,
      batch: 100,
      budgetMs: 30_000,
    });
    expect((await node.retention!.runPass())?.trees).toBe(0);
    expect(await node.metrics.registry.metrics()).toMatch(/^coco_retention_passes_total\{/m);
    // Changed: a millisecond's age prunes it.
    node.setRetention(configured({ maxAge: 1, interval: '100ms', batch: 5 }).retention);
    expect(node.retention?.settings?.batch).toBe(5);
    const from = log.passes.length;
    await log.next((p) => (p.trees as number) > 0, from);
    expect(await node.engine.get(kept)).toBeNull();
    // Off: no pass runs, and the schedule says so.
    node.setRetention(undefined);
    expect(node.retention?.settings).toBeNull();
    expect(await node.retention!.runPass()).toBeNull();
  });
});

describe('a stopping node and its retention pass', () => {
  it('ends a pass under way after its current batch instead of waiting out the budget', async () => {
    const dir = tempDir('coco-retention-stop-');
    const node = await startNode({
      config: parseConfig(
        {
          store: `sqlite:${join(dir, 'coco.db')}`,
          api: { port: 0 },
          // A pass of one tree per batch and a budget of an hour: only the stop can end it early.
          retention: { maxAge: 1, interval: '1h', batch: 1, budget: '1h' },
        },
        dir,
      ),
      commands: t.all,
      broker: inProcessAgents(['a1']),
      logger: passLog(),
      listen: false,
    });
    try {
      const trees = 30;
      const submitted = await node.engine.submitMany(
        Array.from({ length: trees }, (_, i) => ({
          type: t.leaf,
          params: { name: `l${i}`, tasks: 0 },
        })),
      );
      // Durably ended (no tasks: settled as they end).
      for (const { id } of submitted) await node.engine.waitFor(id);
      const closing: Promise<void>[] = [];
      const off = node.engine.on('pruned', () => {
        if (closing.length === 0) closing.push(node.close());
      });
      const report = await node.retention!.runPass();
      off();
      expect(closing).toHaveLength(1);
      await closing[0];
      expect(report).toMatchObject({ more: true });
      expect(report!.trees).toBeGreaterThan(0);
      // The batch under way when the stop came, and perhaps the one after it: not all 30.
      expect(report!.trees).toBeLessThanOrEqual(2);
    } finally {
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describePg('scheduled retention across a rejoin (PostgreSQL)', () => {
  it('a node that lost its lease and rejoined runs its next passes on its new generation', async () => {
    const fresh = freshSchema('coco_retj');
    const url = new URL(PG_URL);
    url.searchParams.set('schema', fresh.schema);
    // A short lease (renewed every second), so that a fenced node finds out quickly.
    url.searchParams.set('leaseMs', '3000');
    const log = passLog();
    const config = parseConfig(
      {
        store: url.toString(),
        nodeId: 'ret-node',
        api: { port: 0 },
        tuning: { agentCallTimeoutMs: 1_000 },
        retention: { maxAge: 1, interval: '100ms' },
      },
      process.cwd(),
    );
    const node = await startNode({
      config,
      commands: t.all,
      broker: inProcessAgents(['a1']),
      logger: log,
      listen: false,
    });
    try {
      const before = log.passes.length;
      const first = await settledGroup(node.engine);
      await log.next((p) => p.nodeId === 'ret-node' && (p.trees as number) > 0, before);
      expect(await node.engine.get(first)).toBeNull();

      // Another node fences this one (as after a pause longer than its lease).
      const halted = new Promise((resolve) => node.engine.on('halted', resolve));
      await adminQuery(
        `UPDATE "${fresh.schema}".coco_nodes SET fenced = true WHERE node_id = 'ret-node'`,
      );
      await halted;
      await node.rejoined();
      expect(node.engine.nodeId).toBe('ret-node-r1');

      const rejoined = log.passes.length;
      const second = await settledGroup(node.engine);
      const pass = await log.next(
        (p) => p.nodeId === 'ret-node-r1' && (p.trees as number) > 0,
        rejoined,
      );
      expect(pass).toMatchObject({ trees: 1 });
      expect(await node.engine.get(second)).toBeNull();
      await node.monitor!.flush();
      await log.next((p) => p.nodeId === 'ret-node-r1');
      expect(await node.monitor!.getJob(second)).toBeNull();
    } finally {
      await node.close();
      await fresh.drop();
    }
  });
});
