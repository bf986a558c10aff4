/**
 * Retention through a running engine on SQLite, with its job view: ended trees and their jobs
 * go, a running tree and its job stay whole, the sweep removes jobs a prune left behind, dry runs
 * delete nothing, budgets bound a pass, and the engine and the view go on (and restart) as if
 * nothing happened.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import type { Engine } from '../../src/engine/engine.js';
import { runRetention, type RetentionTarget } from '../../src/jobs/retention.js';
import type { JobMonitor } from '../../src/jobs/monitor.js';
import type { Store } from '../../src/store/port.js';
import { Journal, testCommands } from '../support/commands.js';
import { rejection } from '../support/errors.js';
import { assertNoLeakedEngines, holdVerbs, whenCommitted } from '../support/harness.js';
import { flatten, startMonitored, whenJob, type MonitoredEnv } from './support.js';

afterEach(assertNoLeakedEngines);

/** The pass of a node: its engine's trees, its reads, its job view. */
function target(engine: Engine, monitor: JobMonitor | null): RetentionTarget {
  return {
    prune: (request, onBatch) => engine.prune(request, onBatch),
    get: (id) => engine.get(id),
    jobs: monitor?.jobStore ?? null,
  };
}

/** Resolves once no command of the tree is active (ended, tasks cleared: prunable). */
async function whenSettled(engine: Engine, store: Store, rootId: number): Promise<void> {
  const live = async (): Promise<boolean> =>
    (await store.loadActive()).commands.some((c) => c.rootId === rootId);
  if (await live()) await whenCommitted(engine, async () => !(await live()));
}

/** Submits a group of `n` children of one task each, and waits until it has settled. */
async function settledGroup(m: MonitoredEnv, t: ReturnType<typeof testCommands>, n = 2) {
  const children = Array.from({ length: n }, (_, i) => ({ name: `c${i}` }));
  const { id } = await m.env.engine.submit(t.group, { name: 'g', children });
  await m.env.engine.waitFor(id);
  await whenSettled(m.env.engine, m.env.store, id);
  await m.monitor.flush();
  return id;
}

describe('retention through a running engine (SQLite) with its job view', () => {
  it('prunes ended trees and their jobs; a running tree and its job stay whole; both go on', async () => {
    const t = testCommands(new Journal());
    const hold = holdVerbs();
    const m = await startMonitored({ commands: t.all, verbs: hold.verbs });
    try {
      const { engine } = m.env;
      const done = [await settledGroup(m, t), await settledGroup(m, t, 3)];
      const { id: running } = await engine.submit(t.group, {
        name: 'held',
        children: [{ name: 'h', verb: 'hold', args: { key: 'h' } }],
      });
      // Its task's `running` is stored (the view shows it): nothing of the tree changes now.
      await whenJob(m.monitor, running, (tree) =>
        flatten(tree).some((s) => s.kind === 'task' && s.status === 'running'),
      );
      const before = await engine.inspect(running);
      const stepsBefore = await m.monitor.jobStore.getSteps(running);

      const report = await runRetention(target(engine, m.monitor), { olderThanMs: 0 });
      // Two groups: 1 + 2 and 1 + 3 commands, a task per child, an undo step per command.
      expect(report).toMatchObject({ trees: 2, commands: 7, tasks: 5, undo: 7, more: false });
      expect(report.jobs).toBe(2);
      expect(report.steps).toBe(12);
      for (const id of done) {
        expect(await engine.get(id)).toBeNull();
        expect(await m.monitor.getJob(id)).toBeNull();
        expect(await m.monitor.jobStore.getSteps(id)).toEqual([]);
        expect((await engine.list({ rootId: id })).commands).toEqual([]);
      }
      expect(await engine.inspect(running)).toEqual(before);
      expect(await m.monitor.jobStore.getSteps(running)).toEqual(stepsBefore);

      // The running tree ends and settles; the engine and the view followed it all along.
      hold.release('h');
      await engine.waitFor(running);
      await whenSettled(engine, m.env.store, running);
      await m.monitor.flush();
      expect((await m.monitor.getJob(running))?.status).toBe('succeeded');
      expect(await runRetention(target(engine, m.monitor), { olderThanMs: 0 })).toMatchObject({
        trees: 1,
        jobs: 1,
      });
      // New work runs as ever.
      const next = await settledGroup(m, t, 1);
      expect((await m.monitor.getJob(next))?.status).toBe('succeeded');
    } finally {
      await m.cleanup();
    }
  });

  it('keeps trees younger than the age, and counts without deleting on a dry run', async () => {
    const t = testCommands(new Journal());
    const m = await startMonitored({ commands: t.all });
    try {
      const { engine } = m.env;
      const id = await settledGroup(m, t);
      expect(
        await runRetention(target(engine, m.monitor), { olderThanMs: 3_600_000 }),
      ).toMatchObject({ trees: 0, jobs: 0, more: false });
      const dry = await runRetention(target(engine, m.monitor), { olderThanMs: 0, dryRun: true });
      expect(dry).toMatchObject({ trees: 1, commands: 3, tasks: 2, jobs: 1, steps: 5 });
      expect(await engine.get(id)).not.toBeNull();
      expect(await m.monitor.getJob(id)).not.toBeNull();
      const real = await runRetention(target(engine, m.monitor), { olderThanMs: 0 });
      expect({ ...real, durationMs: 0, endedBefore: 0 }).toEqual({
        ...dry,
        durationMs: 0,
        endedBefore: 0,
      });
    } finally {
      await m.cleanup();
    }
  });

  it('the sweep deletes jobs whose tree a pass pruned without them, and no job whose root exists', async () => {
    const t = testCommands(new Journal());
    const hold = holdVerbs();
    const m = await startMonitored({ commands: t.all, verbs: hold.verbs });
    try {
      const { engine } = m.env;
      const ids = [await settledGroup(m, t), await settledGroup(m, t)];
      const { id: running } = await engine.submit(t.group, {
        name: 'held',
        children: [{ name: 'h', verb: 'hold', args: { key: 'h' } }],
      });
      await whenJob(m.monitor, running, (tree) => tree.root?.children.length === 1);
      // A pass that stopped after the engine's rows (a crash before the view's): jobs remain.
      expect(await engine.prune({ olderThanMs: 0 })).toMatchObject({ trees: 2 });
      for (const id of ids) expect(await m.monitor.getJob(id)).not.toBeNull();
      // The next pass finds them: old enough, and their roots are gone. The running job (started
      // before the cutoff too) keeps its root, and stays.
      const dry = await runRetention(target(engine, m.monitor), { olderThanMs: 0, dryRun: true });
      expect(dry).toMatchObject({ trees: 0, jobs: 2, steps: 10 });
      const pass = await runRetention(target(engine, m.monitor), { olderThanMs: 0 });
      expect(pass).toMatchObject({ trees: 0, jobs: 2, steps: 10, more: false });
      for (const id of ids) expect(await m.monitor.getJob(id)).toBeNull();
      expect((await m.monitor.getJob(running))?.status).toBe('running');
      hold.release('h');
      await engine.waitFor(running);
    } finally {
      await m.cleanup();
    }
  });

  it('a budget bounds a pass: `more` until everything is pruned', async () => {
    const t = testCommands(new Journal());
    const m = await startMonitored({ commands: t.all });
    try {
      const { engine } = m.env;
      for (let i = 0; i < 3; i++) await settledGroup(m, t, 1);
      // One tree per batch, and a budget spent by the first batch.
      const request = { olderThanMs: 0, batch: 1, budgetMs: 1 };
      const passes = [];
      for (let more = true; more;) {
        const r = await runRetention(target(engine, m.monitor), request);
        passes.push(r);
        more = r.more;
      }
      expect(passes.length).toBeGreaterThanOrEqual(2);
      expect(passes.reduce((n, r) => n + r.trees, 0)).toBe(3);
      expect(passes.reduce((n, r) => n + r.jobs, 0)).toBe(3);
      expect(passes.every((r) => r.batches <= 2)).toBe(true);
    } finally {
      await m.cleanup();
    }
  });

  it('refuses a bad request naming the field, and a prune on an engine that is not running', async () => {
    const t = testCommands(new Journal());
    const m = await startMonitored({ commands: t.all });
    const { engine } = m.env;
    try {
      for (const [request, field] of [
        [{ olderThanMs: -1 }, 'olderThanMs'],
        [{ olderThanMs: 1.5 }, 'olderThanMs'],
        [{ olderThanMs: 0, batch: 0 }, 'batch'],
        [{ olderThanMs: 0, batch: 10_001 }, 'batch'],
        [{ olderThanMs: 0, budgetMs: 0 }, 'budgetMs'],
        [{ olderThanMs: 0, dryRun: 'yes' }, 'dryRun'],
      ] as const) {
        const error = await rejection(engine.prune(request as never));
        expect(error).toMatchObject({ code: ErrorCode.InvalidOptions });
        expect(JSON.stringify(error.details)).toContain(field);
      }
    } finally {
      await m.cleanup();
    }
    expect(await rejection(engine.prune({ olderThanMs: 0 }))).toMatchObject({
      code: ErrorCode.EngineStopped,
    });
  });

  it('after a prune, the engine and its view restart as ever, a running tree resuming', async () => {
    const t = testCommands(new Journal());
    const hold = holdVerbs();
    let m = await startMonitored({ commands: t.all, verbs: hold.verbs });
    try {
      const id = await settledGroup(m, t);
      const { id: held } = await m.env.engine.submit(t.group, {
        name: 'held',
        children: [{ name: 'h', verb: 'hold', args: { key: 'h' } }],
      });
      await whenJob(m.monitor, held, (tree) => tree.root?.children.length === 1);
      await runRetention(target(m.env.engine, m.monitor), { olderThanMs: 0 });
      expect(await m.env.engine.get(id)).toBeNull();
      m = await m.restart();
      expect(await m.env.engine.get(id)).toBeNull();
      expect(await m.monitor.getJob(id)).toBeNull();
      expect((await m.monitor.getJob(held))?.status).toBe('running');
      hold.release('h');
      await m.env.engine.waitFor(held);
      await m.monitor.flush();
      expect((await m.monitor.getJob(held))?.status).toBe('succeeded');
      const after = await settledGroup(m, t, 1);
      expect((await m.monitor.getJob(after))?.status).toBe('succeeded');
    } finally {
      await m.cleanup();
    }
  });
});
