/**
 * Admission control on one node (engine/admission.ts): real SQLite, in-process agents whose
 * verbs count, on the agent's side, how many tasks run at once and in which order they start.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import type { VerbRegistry } from '../../src/verbs/model.js';
import { assertNoLeakedEngines, settled, startEnv, whenCommitted } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

/** One task on agent a1; its verb says which command it belongs to. */
const migrate = defineCommand({
  name: 'test.migrate',
  schema: z.object({
    n: z.number().int(),
    verb: z.string().default('work'),
    hold: z.boolean().default(false),
  }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    const { n, verb, hold } = ctx.params;
    ctx.startTask({ agent: 'a1', verb, args: { n, hold } });
  },
});

/**
 * Agent-side counters: `work` runs until released (or a macrotask later when `auto`), keeping
 * how many run at once, the most ever, and the order of starts.
 */
function countingVerbs(auto: boolean): {
  verbs: VerbRegistry;
  running: () => number;
  max: () => number;
  maxOf: (verb: string) => number;
  starts: number[];
  resetMax(): void;
  releaseAll(): void;
  releaseOne(): boolean;
  startedWhen(count: number): Promise<void>;
} {
  let running = 0;
  let max = 0;
  const byVerb = new Map<string, { running: number; max: number }>();
  const starts: number[] = [];
  const waiting: (() => void)[] = [];
  const watchers: { count: number; resolve(): void }[] = [];
  const verb =
    (name: string) =>
    (args: unknown): Promise<unknown> => {
      const v = byVerb.get(name) ?? { running: 0, max: 0 };
      byVerb.set(name, v);
      running++;
      v.running++;
      max = Math.max(max, running);
      v.max = Math.max(v.max, v.running);
      starts.push((args as { n: number }).n);
      for (const w of watchers.splice(0))
        if (starts.length >= w.count) w.resolve();
        else watchers.push(w);
      return new Promise((resolve) => {
        const done = (): void => {
          running--;
          v.running--;
          resolve({ ok: true });
        };
        if (auto && !(args as { hold?: boolean }).hold) setImmediate(done);
        else waiting.push(done);
      });
    };
  return {
    verbs: { work: verb('work'), other: verb('other') },
    running: () => running,
    max: () => max,
    maxOf: (name) => byVerb.get(name)?.max ?? 0,
    starts,
    resetMax: () => (max = running),
    releaseAll: () => {
      for (const f of waiting.splice(0)) f();
    },
    releaseOne: () => {
      const f = waiting.shift();
      f?.();
      return f !== undefined;
    },
    startedWhen: (count) =>
      starts.length >= count
        ? Promise.resolve()
        : new Promise((resolve) => watchers.push({ count, resolve })),
  };
}

describe('admission: a limit per agent', () => {
  it('runs 500 migrations on one agent at most 4 at once, all ending, by priority then submission', async () => {
    const agent = countingVerbs(true);
    const env = await startEnv({
      commands: [migrate],
      verbs: agent.verbs,
      limits: { agents: { a1: { maxRunning: 4 } } },
    });
    try {
      // Four held tasks fill the agent; then 500 with priorities 0, 1 and 2, mixed (n is the
      // submission order), all queued before the first slot frees.
      const blockers = await Promise.all(
        [-4, -3, -2, -1].map((n) => env.engine.submit(migrate, { n, hold: true })),
      );
      await agent.startedWhen(4);
      const priorityOf = (n: number): number => (n * 7) % 3;
      const ids = await Promise.all(
        Array.from({ length: 500 }, (_, n) =>
          env.engine.submit(migrate, { n }, { priority: priorityOf(n) }),
        ),
      );
      await whenCommitted(env.engine, () => env.engine.admissionStats()[0]?.queued === 500);
      agent.releaseAll();
      const ended = await Promise.all(
        [...blockers, ...ids].map(({ id }) => env.engine.waitFor(id)),
      );
      expect(ended.every((c) => c.status === 'succeeded')).toBe(true);
      expect(agent.max()).toBe(4);
      expect(agent.starts).toHaveLength(504);
      // By priority (higher first), then submission: exactly, since all waited together.
      const expected = Array.from({ length: 500 }, (_, n) => n).sort(
        (a, b) => priorityOf(b) - priorityOf(a) || a - b,
      );
      expect(agent.starts.slice(4)).toEqual(expected);
    } finally {
      await env.cleanup();
    }
  }, 60_000);

  it('holds a limit per verb beside the agent limit', async () => {
    const agent = countingVerbs(false);
    const env = await startEnv({
      commands: [migrate],
      verbs: agent.verbs,
      limits: { agents: { a1: { maxRunning: 3, maxRunningByVerb: { work: 1 } } } },
    });
    try {
      const a = await Promise.all(
        Array.from({ length: 3 }, (_, n) => env.engine.submit(migrate, { n, verb: 'work' })),
      );
      const b = await Promise.all(
        Array.from({ length: 3 }, (_, n) =>
          env.engine.submit(migrate, { n: 10 + n, verb: 'other' }),
        ),
      );
      // One `work` and two `other`: the agent's 3 slots, at most one of them `work`.
      await agent.startedWhen(3);
      expect([...agent.starts].sort((x, y) => x - y)).toEqual([0, 10, 11]);
      const details = await env.engine.inspect(a[1]!.id);
      expect(details?.tasks[0]?.status).toBe('queued');
      expect(details?.queued[0]?.position.text).toBe(
        'queued for a1: 0 ahead, limit 3, work limit 1',
      );
      while (agent.starts.length < 6) {
        const before = agent.starts.length;
        agent.releaseAll();
        await agent.startedWhen(before + 1);
      }
      agent.releaseAll();
      for (const { id } of [...a, ...b]) await env.engine.waitFor(id);
      expect(agent.max()).toBeLessThanOrEqual(3);
      expect(agent.maxOf('work')).toBe(1);
    } finally {
      agent.releaseAll();
      await env.cleanup();
    }
  });

  it('never starts a queued task whose command is cancelled', async () => {
    const agent = countingVerbs(false);
    const env = await startEnv({
      commands: [migrate],
      verbs: agent.verbs,
      limits: { agents: { a1: { maxRunning: 1 } } },
    });
    try {
      const first = await env.engine.submit(migrate, { n: 0 });
      const second = await env.engine.submit(migrate, { n: 1 });
      await agent.startedWhen(1);
      await whenCommitted(
        env.engine,
        async () => (await env.engine.inspect(second.id))?.tasks[0]?.status === 'queued',
      );
      const details = await env.engine.inspect(second.id);
      expect(details?.queued).toHaveLength(1);
      expect(details?.queued[0]).toMatchObject({
        ordinal: 0,
        position: { agentId: 'a1', ahead: 0, limit: 1, running: 1 },
      });
      await env.engine.cancel(second.id);
      const cancelled = await env.engine.waitFor(second.id);
      expect(cancelled.status).toBe('cancelled');
      agent.releaseAll();
      expect((await env.engine.waitFor(first.id)).status).toBe('succeeded');
      await settled(env.engine, second.id);
      expect(agent.starts).toEqual([0]);
      expect(env.agent().taskHistory(`${env.engine.storeId}-${second.id}-0`)).toBeUndefined();
      expect((await env.engine.inspect(second.id))?.tasks[0]?.status).toBe('cancelled');
    } finally {
      agent.releaseAll();
      await env.cleanup();
    }
  });

  it('respects a limit lowered at run time from then on, and admits at once when raised', async () => {
    const agent = countingVerbs(false);
    const env = await startEnv({
      commands: [migrate],
      verbs: agent.verbs,
      limits: { agents: { a1: { maxRunning: 4 } } },
    });
    try {
      const ids = await Promise.all(
        Array.from({ length: 20 }, (_, n) => env.engine.submit(migrate, { n })),
      );
      await agent.startedWhen(4);
      env.engine.setLimits({ agents: { a1: { maxRunning: 2 } } });
      // The 4 running go on; none starts until fewer than 2 run.
      agent.releaseOne();
      agent.releaseOne();
      agent.releaseOne();
      await agent.startedWhen(5);
      expect(agent.starts).toHaveLength(5);
      expect(agent.running()).toBe(2);
      agent.resetMax();
      for (let i = 0; i < 8; i++) {
        agent.releaseOne();
        await agent.startedWhen(6 + i);
      }
      expect(agent.max()).toBe(2);
      env.engine.setLimits({ agents: { a1: { maxRunning: 10 } } });
      await agent.startedWhen(20);
      expect(agent.running()).toBeGreaterThan(2);
      agent.releaseAll();
      await Promise.all(ids.map(({ id }) => env.engine.waitFor(id)));
      agent.releaseAll();
      expect(env.engine.admissionStats()).toEqual([
        expect.objectContaining({ agentId: 'a1', limit: 10, queued: 0 }),
      ]);
    } finally {
      agent.releaseAll();
      await env.cleanup();
    }
  });

  it('after a restart, queued tasks wait in the same order, slots held, nothing started twice', async () => {
    const agent = countingVerbs(false);
    const env = await startEnv({
      commands: [migrate],
      verbs: agent.verbs,
      limits: { agents: { a1: { maxRunning: 2 } } },
    });
    let env2 = env;
    try {
      const ids = await Promise.all(
        Array.from({ length: 30 }, (_, n) =>
          env.engine.submit(migrate, { n }, { priority: n % 2 === 1 ? 1 : 0 }),
        ),
      );
      await agent.startedWhen(2);
      await whenCommitted(
        env.engine,
        async () => (await env.engine.inspect(ids[29]!.id))?.tasks.length === 1,
      );
      env2 = await env.restart();
      expect(agent.running()).toBe(2);
      expect(agent.starts).toHaveLength(2);
      while (agent.starts.length < 30) {
        agent.releaseOne();
        await agent.startedWhen(agent.starts.length + 1);
        expect(agent.running()).toBeLessThanOrEqual(2);
      }
      agent.releaseAll();
      await Promise.all(ids.map(({ id }) => env2.engine.waitFor(id)));
      agent.releaseAll();
      expect(agent.max()).toBe(2);
      // Odd n (priority 1) first, then even, each in submission order, after the two started.
      const later = agent.starts.slice(2);
      const expected = later.slice().sort((a, b) => (b % 2) - (a % 2) || a - b);
      expect(later).toEqual(expected);
      for (const { id } of ids)
        expect(env2.agent().taskHistory(`${env2.engine.storeId}-${id}-0`)?.starts).toBe(1);
    } finally {
      agent.releaseAll();
      await env2.cleanup();
    }
  });
});

describe('admission: limits of running roots', () => {
  it('runs at most N roots of a type and of the node, queued ones admitted as roots end; a cancelled queued root never runs', async () => {
    const agent = countingVerbs(false);
    const runs: number[] = [];
    const other = defineCommand({
      name: 'test.other-root',
      schema: z.object({ n: z.number().int() }),
      execute(ctx) {
        runs.push(ctx.params.n);
        ctx.expect({ tasks: 1 });
        ctx.startTask({ agent: 'a1', verb: 'other', args: { n: ctx.params.n } });
      },
    });
    const counted = defineCommand({
      name: 'test.counted-root',
      schema: z.object({ n: z.number().int() }),
      execute(ctx) {
        runs.push(ctx.params.n);
        ctx.expect({ tasks: 1 });
        ctx.startTask({ agent: 'a1', verb: 'work', args: { n: ctx.params.n } });
      },
    });
    const env = await startEnv({
      commands: [counted, other],
      verbs: agent.verbs,
      limits: { types: { 'test.counted-root': { maxRunning: 2 } }, maxRunningRoots: 3 },
    });
    try {
      const c = await Promise.all(
        [0, 1, 2, 3].map((n) => env.engine.submit(counted, { n }, { priority: n === 3 ? 1 : 0 })),
      );
      const o = await Promise.all([10, 11].map((n) => env.engine.submit(other, { n })));
      // Two of the type run, the other type takes the node's third slot; the rest wait.
      await agent.startedWhen(3);
      expect(runs).toEqual([0, 1, 10]);
      const waiting = await env.engine.inspect(c[2]!.id);
      expect(waiting?.command.status).toBe('pending');
      expect(waiting?.command.queuedSince).not.toBeNull();
      expect(waiting?.rootQueue?.text).toBe(
        'queued: 1 ahead, test.counted-root limit 2, node limit 3',
      );
      await env.engine.cancel(c[2]!.id);
      expect((await env.engine.waitFor(c[2]!.id)).status).toBe('cancelled');
      // One counted root ends: the best waiting one of that type (priority 1: n = 3) runs.
      agent.releaseOne();
      await agent.startedWhen(4);
      expect(runs).toEqual([0, 1, 10, 3]);
      while (runs.length < 5) {
        const before = agent.starts.length;
        agent.releaseAll();
        await agent.startedWhen(before + 1);
      }
      agent.releaseAll();
      for (const { id } of [...c, ...o]) await env.engine.waitFor(id);
      agent.releaseAll();
      expect(runs).toEqual([0, 1, 10, 3, 11]);
      expect(agent.max()).toBeLessThanOrEqual(3);
      expect((await env.engine.get(c[3]!.id))?.queuedSince).toBeNull();
    } finally {
      agent.releaseAll();
      await env.cleanup();
    }
  });
});

describe('admission: priorities of children', () => {
  it('a child inherits its parent priority unless it sets its own', async () => {
    const leaf = defineCommand({
      name: 'test.prio-leaf',
      childOnly: true,
      createdBy: ['test.prio-parent'],
      schema: z.object({}),
      execute() {},
    });
    const parent = defineCommand({
      name: 'test.prio-parent',
      schema: z.object({}),
      execute(ctx) {
        ctx.expect({ children: 2 });
        ctx.addChild(leaf, {});
        ctx.addChild(leaf, {}, { priority: 7 });
      },
    });
    const env = await startEnv({ commands: [parent, leaf] });
    try {
      const { id } = await env.engine.submit(parent, {}, { priority: 2 });
      await env.engine.waitFor(id);
      const details = await env.engine.inspect(id);
      expect(details?.command.priority).toBe(2);
      expect(details?.children.map((c) => c.priority)).toEqual([2, 7]);
      await expect(env.engine.submit(parent, {}, { priority: 1.5 })).rejects.toMatchObject({
        code: 'PARAMETERS_INVALID',
        issues: [{ path: 'priority' }],
      });
    } finally {
      await env.cleanup();
    }
  });
});
