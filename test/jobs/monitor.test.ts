import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ManualClock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import type { Engine } from '../../src/engine/engine.js';
import type { Job, Step } from '../../src/jobs/port.js';
import { Journal, testCommands } from '../support/commands.js';
import { assertNoLeakedEngines, gate, holdVerbs, settled } from '../support/harness.js';
import { expectTruthful, flatten, recordJobProgress, startMonitored, whenJob } from './support.js';

afterEach(assertNoLeakedEngines);

/** hold verbs, plus `half`: reports 50 % at once, then holds like `hold`. */
function progressVerbs() {
  const hold = holdVerbs();
  const holdVerb = hold.verbs.hold!;
  return {
    ...hold,
    verbs: {
      ...hold.verbs,
      half: (args: unknown, ctx: Parameters<typeof holdVerb>[1]) => {
        ctx.progress(50);
        return holdVerb(args, ctx);
      },
    },
  };
}

/**
 * `stepped`: one task that reports the progress the test gives it, until the test finishes it.
 * `running` resolves when the agent runs it.
 */
function steppedVerb() {
  const started = gate<(percent: number) => void>();
  const done = gate();
  return {
    verbs: {
      stepped: async (_args: unknown, ctx: { progress(percent: number): void }) => {
        started.open((percent) => ctx.progress(percent));
        await done.promise;
        return null;
      },
    },
    running: started.promise,
    finish: () => done.open(),
  };
}

/** Resolves when the engine has emitted the agent's report of `percent` for a task. */
function reported(engine: Engine, percent: number): Promise<void> {
  return new Promise((resolve) => {
    const off = engine.on('progress', (r) => {
      if (r.progress !== percent) return;
      off();
      resolve();
    });
  });
}

/** `promise`, or a rejection naming `what` if it takes longer than `ms` (a bound, never a wait). */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Lets the macrotasks already queued run (the monitor's scheduled write, on `setImmediate`). */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function nonDecreasing(values: readonly number[]): boolean {
  return values.every((v, i) => i === 0 || v >= values[i - 1]!);
}

describe('job monitor: jobs and steps', () => {
  it('keeps a job per root command, with a step per child command and per task, statuses and times', async () => {
    const t = testCommands(new Journal());
    const m = await startMonitored({ commands: t.all });
    try {
      const children = [0, 1, 2].map((i) => ({ name: `c${i}`, tasks: 2, verb: 'echo' }));
      const { id } = await m.env.engine.submit(t.group, { name: 'parent', children });
      const other = await m.env.engine.submit(t.leaf, { name: 'solo', tasks: 1 });
      await m.env.engine.waitFor(id);
      await m.env.engine.waitFor(other.id);
      const tree = await expectTruthful(m.env.engine, m.monitor, id);
      expect(tree.job).toMatchObject({
        id,
        type: 'test.group',
        status: 'succeeded',
        compensation: 'none',
        progress: 100,
        error: null,
      });
      expect(tree.job.endedAt).toBeGreaterThanOrEqual(tree.job.startedAt);
      const root = tree.root!;
      expect(root.step).toMatchObject({
        key: `c${id}`,
        parentKey: null,
        kind: 'command',
        name: 'test.group',
        expectedChildren: 3,
      });
      expect(root.children.map((c) => c.step.commandId)).toEqual(
        [...root.children.map((c) => c.step.commandId)].sort((a, b) => a - b),
      );
      expect(root.children).toHaveLength(3);
      for (const child of root.children) {
        expect(child.step).toMatchObject({
          kind: 'command',
          name: 'test.leaf',
          status: 'succeeded',
          progress: 100,
          expectedTasks: 2,
          parentKey: `c${id}`,
        });
        expect(
          child.tasks.map((s) => [s.key, s.name, s.status, s.progress, s.taskOrdinal]),
        ).toEqual([
          [`t${child.step.commandId}.0`, 'echo@a1', 'succeeded', 100, 0],
          [`t${child.step.commandId}.1`, 'echo@a1', 'succeeded', 100, 1],
        ]);
        expect(child.step.endedAt).not.toBeNull();
        for (const task of child.tasks) expect(task.endedAt).toBeGreaterThanOrEqual(task.startedAt);
      }
      // Each root is its own job; children are not jobs.
      const jobs = await m.monitor.listJobs();
      expect(jobs.map((j) => j.id)).toEqual([other.id, id]);
      expect(await m.monitor.listJobs({ type: 'test.leaf' })).toMatchObject([
        { id: other.id, status: 'succeeded' },
      ]);
      expect(await m.monitor.listJobs({ beforeId: other.id })).toMatchObject([{ id }]);
      expect(await m.monitor.listJobs({ status: ['running'] })).toEqual([]);
      expect(m.monitor.stats().runningJobs).toBe(0);
    } finally {
      await m.cleanup();
    }
  });

  it('rolls progress up the tree weighted by declared counts: 1 of 4 children done shows 25%', async () => {
    const t = testCommands(new Journal());
    const hold = progressVerbs();
    const m = await startMonitored({ commands: t.all, verbs: hold.verbs });
    try {
      const { id } = await m.env.engine.submit(t.group, {
        name: 'four',
        children: [
          { name: 'done', verb: 'noop' },
          { name: 'h1', verb: 'hold', args: { key: 'h1' } },
          { name: 'h2', verb: 'hold', args: { key: 'h2' } },
          { name: 'h3', verb: 'half', args: { key: 'h3' } },
        ],
      });
      const quarter = await whenJob(
        m.monitor,
        id,
        (tr) =>
          tr.job.progress >= 25 &&
          flatten(tr).filter((s) => s.kind === 'task' && s.status === 'running').length === 3,
      );
      expect(quarter.job.status).toBe('running');
      // The 'half' task reports 50 %: (100 + 0 + 0 + 50) / 4.
      const moved = await whenJob(m.monitor, id, (tr) => tr.job.progress > 25);
      expect(moved.job.progress).toBe(37.5);
      const h3 = moved.root!.children[3]!;
      expect(h3.step.progress).toBe(50);
      expect(h3.tasks[0]!.progress).toBe(50);
      expect(moved.root!.children.map((c) => c.step.progress)).toEqual([100, 0, 0, 50]);
      await expectTruthful(m.env.engine, m.monitor, id);
      for (const key of ['h1', 'h2', 'h3']) hold.release(key);
      await m.env.engine.waitFor(id);
      const done = await expectTruthful(m.env.engine, m.monitor, id);
      expect(done.job.progress).toBe(100);
    } finally {
      await m.cleanup();
    }
  });

  it("a sleeping task's agent progress moves its step and the job, monotonically, then 100", async () => {
    const t = testCommands(new Journal());
    const m = await startMonitored({ commands: t.all }, { progressFlushMs: 20 });
    try {
      const steps: Step[] = [];
      m.monitor.on('step', (s) => s.kind === 'task' && steps.push(s));
      const { id } = await m.env.engine.submit(t.leaf, {
        name: 'sleepy',
        verb: 'sleep',
        args: { ms: 600 },
      });
      const jobProgress = recordJobProgress(m.monitor, id);
      await m.env.engine.waitFor(id);
      await m.monitor.flush();
      const taskProgress = steps.map((s) => s.progress);
      const midway = taskProgress.filter((p) => p > 0 && p < 100);
      expect(midway.length).toBeGreaterThan(0);
      expect(nonDecreasing(taskProgress)).toBe(true);
      expect(taskProgress.at(-1)).toBe(100);
      expect(jobProgress.some((p) => p > 0 && p < 100)).toBe(true);
      expect(nonDecreasing(jobProgress)).toBe(true);
      expect(jobProgress.at(-1)).toBe(100);
    } finally {
      await m.cleanup();
    }
  });

  it("writes a running task's later progress after a batch wrote its first report before the flush timer fired", async () => {
    // The engine commits a batch while a progress report waits for the flush timer (here a
    // task's `running` write of another command): the batch's write takes the report along. The
    // timer must not then leave the next reports waiting for a batch that may come only when the
    // task ends (seen: a copy at 0 % in the job tree for 20 s, its agent reporting all along).
    const t = testCommands(new Journal());
    const clock = new ManualClock(Date.now());
    const agent = steppedVerb();
    const m = await startMonitored(
      { commands: t.all, verbs: agent.verbs },
      { clock, progressFlushMs: 100 },
    );
    try {
      const { id } = await m.env.engine.submit(t.leaf, { name: 'copy', verb: 'stepped' });
      const report = await agent.running;
      const taskShows = (ok: (task: Step) => boolean) =>
        whenJob(m.monitor, id, (tree) => {
          const task = tree.root?.tasks[0];
          return task !== undefined && ok(task);
        });
      await taskShows((task) => task.status === 'running');

      // A report arms the flush timer; a batch (another root) writes it before the timer fires.
      report(10);
      await reported(m.env.engine, 10);
      await m.env.engine.submit(t.leaf, { name: 'other', tasks: 0 });
      await within(
        5_000,
        'the first report',
        taskShows((task) => task.progress === 10),
      );
      clock.advance(100); // the timer armed by the first report: nothing is left to write
      await turn();
      await turn();

      // The next report is written by its own timer, with no batch to carry it.
      report(60);
      await reported(m.env.engine, 60);
      clock.advance(100);
      const tree = await within(
        5_000,
        'the second report',
        taskShows((task) => task.progress === 60),
      );
      expect(tree.root!.tasks[0]!.status).toBe('running');
      expect(tree.job.progress).toBe(60);
      agent.finish();
      await m.env.engine.waitFor(id);
    } finally {
      await m.cleanup();
    }
  });

  it('job progress never goes backwards while children are added and finish at random', async () => {
    const t = testCommands(new Journal());
    const m = await startMonitored({ commands: t.all }, { progressFlushMs: 10 });
    try {
      const children = Array.from({ length: 8 }, (_, i) => ({
        name: `c${i}`,
        tasks: 1 + (i % 3),
        verb: 'sleep',
        args: { ms: 20 + ((i * 37) % 90) },
      }));
      const { id } = await m.env.engine.submit(t.group, { name: 'many', children });
      const progress = recordJobProgress(m.monitor, id);
      const stepProgress = new Map<string, number[]>();
      m.monitor.on('step', (s) => {
        if (s.jobId === id)
          stepProgress.set(s.key, [...(stepProgress.get(s.key) ?? []), s.progress]);
      });
      await m.env.engine.waitFor(id);
      await m.monitor.flush();
      expect(progress.length).toBeGreaterThan(2);
      expect(nonDecreasing(progress)).toBe(true);
      expect(progress.at(-1)).toBe(100);
      for (const [key, values] of stepProgress) expect(nonDecreasing(values), key).toBe(true);
    } finally {
      await m.cleanup();
    }
  });

  it('notifies job and step changes after its own commit', async () => {
    const t = testCommands(new Journal());
    const m = await startMonitored({ commands: t.all });
    try {
      const seen: Promise<Job | null>[] = [];
      const notified: Job[] = [];
      m.monitor.on('job', (job) => {
        notified.push(job);
        // Read back at once: the notified state is already stored.
        seen.push(m.monitor.getJob(job.id));
      });
      const { id } = await m.env.engine.submit(t.leaf, { name: 'x' });
      await m.env.engine.waitFor(id);
      await m.monitor.flush();
      expect(notified.at(-1)).toMatchObject({ id, status: 'succeeded' });
      const stored = await Promise.all(seen);
      stored.forEach((job, i) => expect(job).toEqual(notified[i]));
    } finally {
      await m.cleanup();
    }
  });
});

describe('job monitor: end statuses and compensation', () => {
  it('a failed job keeps its last progress, shows the error, and its compensated steps', async () => {
    const t = testCommands(new Journal());
    const m = await startMonitored({ commands: t.all });
    try {
      const { id } = await m.env.engine.submit(t.group, {
        name: 'wa',
        children: [
          { name: 'ok1', verb: 'echo' },
          { name: 'bad', verb: 'fail', args: { message: 'disk on fire' } },
          { name: 'ok2', verb: 'echo' },
        ],
      });
      const ended = await m.env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      await settled(m.env.engine, id);
      const tree = await expectTruthful(m.env.engine, m.monitor, id);
      expect(tree.job).toMatchObject({ status: 'failed', error: { code: 'CHILD_FAILED' } });
      expect(tree.job.compensation).toBe(ended.compensation);
      expect(tree.job.progress).toBeLessThan(100);
      expect(tree.job.progress).toBeGreaterThan(0);
      const byStatus = tree.root!.children.map((c) => [c.step.status, c.step.compensation]);
      expect(byStatus).toEqual([
        ['succeeded', 'compensated'],
        ['failed', expect.any(String)],
        ['succeeded', 'compensated'],
      ]);
      expect(tree.root!.children[1]!.tasks[0]).toMatchObject({
        status: 'failed',
        error: { code: 'TASK_FAILED' },
      });
    } finally {
      await m.cleanup();
    }
  });

  it('a cancelled job shows cancelled children and tasks', async () => {
    const t = testCommands(new Journal());
    const hold = holdVerbs();
    const m = await startMonitored({ commands: t.all, verbs: hold.verbs });
    try {
      const { id } = await m.env.engine.submit(t.group, {
        name: 'doomed',
        children: [
          { name: 'a', verb: 'hold', args: { key: 'a' } },
          { name: 'b', verb: 'hold', args: { key: 'b' } },
        ],
      });
      await whenJob(
        m.monitor,
        id,
        (tr) => flatten(tr).filter((s) => s.kind === 'task' && s.status === 'running').length === 2,
      );
      await m.env.engine.cancel(id);
      await m.env.engine.waitFor(id);
      const tree = await expectTruthful(m.env.engine, m.monitor, id);
      expect(tree.job).toMatchObject({ status: 'cancelled', error: { code: 'CANCELLED' } });
      for (const child of tree.root!.children) {
        expect(child.step.status).toBe('cancelled');
        expect(child.tasks[0]!.status).toBe('cancelled');
      }
      expect(tree.job.progress).toBe(0);
      expect(await m.monitor.listJobs({ status: ['cancelled'] })).toMatchObject([{ id }]);
    } finally {
      await m.cleanup();
    }
  });

  it('undo tasks appear under their command but do not count toward progress', async () => {
    const undoing = defineCommand({
      name: 'test.undo-task',
      schema: z.object({}),
      execute(ctx) {
        ctx.expect({ tasks: 2 });
        ctx.addUndo('back', {});
        ctx.startTask({ agent: 'a1', verb: 'echo' });
        ctx.startTask({ agent: 'a1', verb: 'fail', args: { message: 'no' } });
      },
      undo: {
        async back(ctx) {
          await ctx.runTask({ agent: 'a1', verb: 'echo' });
        },
      },
    });
    const m = await startMonitored({ commands: [undoing] });
    try {
      const { id } = await m.env.engine.submit(undoing, {});
      await m.env.engine.waitFor(id);
      await settled(m.env.engine, id);
      const tree = await expectTruthful(m.env.engine, m.monitor, id);
      expect(tree.job).toMatchObject({ status: 'failed', compensation: 'compensated' });
      expect(tree.root!.tasks.map((s) => [s.status, s.undo, s.progress])).toEqual([
        ['succeeded', false, 100],
        ['failed', false, 0],
        ['succeeded', true, 100],
      ]);
      // (100 + 0) / 2 declared work tasks; the undo task's 100 does not count.
      expect(tree.job.progress).toBe(50);
    } finally {
      await m.cleanup();
    }
  });
});

describe('job monitor: serial chains', () => {
  it('a chain that declared 3 stages shows a third per finished stage', async () => {
    const t = testCommands(new Journal());
    const hold = holdVerbs();
    const m = await startMonitored({ commands: t.all, verbs: hold.verbs });
    try {
      const { id } = await m.env.engine.submit(t.chain, {
        name: 'ch',
        stages: [
          { name: 's0', verb: 'noop' },
          { name: 's1', verb: 'hold', args: { key: 's1' } },
          { name: 's2', verb: 'noop' },
        ],
      });
      const third = await whenJob(
        m.monitor,
        id,
        (tr) => (tr.root?.children.length ?? 0) === 2 && tr.job.progress > 0,
      );
      expect(third.job.progress).toBe(33.3);
      hold.release('s1');
      await m.env.engine.waitFor(id);
      const done = await expectTruthful(m.env.engine, m.monitor, id);
      expect(done.root!.children.map((c) => c.step.status)).toEqual([
        'succeeded',
        'succeeded',
        'succeeded',
      ]);
    } finally {
      await m.cleanup();
    }
  });
});
