import { afterEach, describe, expect, it } from 'vitest';
import { assertNoLeakedEngines, settled, startEnv } from '../support/harness.js';
import { Journal, testCommands } from '../support/commands.js';

afterEach(assertNoLeakedEngines);

describe('concurrent children', () => {
  it('a parent with 10 children of 2 tasks each ends exactly once, after all of them', async () => {
    const journal = new Journal();
    const t = testCommands(journal);
    const env = await startEnv({ commands: t.all, verbs: {} });
    try {
      const children = Array.from({ length: 10 }, (_, i) => ({
        name: `c${i}`,
        tasks: 2,
        verb: 'sleep',
        args: { ms: 5 + i * 3 },
      }));
      const { id } = await env.engine.submit(t.group, { name: 'parent', children });
      const parent = await env.engine.waitFor(id);
      expect(parent.status).toBe('succeeded');
      expect(journal.count('success:parent')).toBe(1);
      const details = await env.engine.inspect(id);
      expect(details?.children).toHaveLength(10);
      for (const child of details!.children) {
        expect(child.status).toBe('succeeded');
        expect(child.endedAt).not.toBeNull();
        expect(parent.endedAt!).toBeGreaterThanOrEqual(child.endedAt!);
        const tasks = await env.engine.inspect(child.id);
        expect(tasks?.tasks.map((x) => x.status)).toEqual(['succeeded', 'succeeded']);
      }
      for (let i = 0; i < 10; i++) expect(journal.count(`success:c${i}`)).toBe(1);
      // The parent's end handler saw every child's result.
      expect((parent.result as { children: unknown[] }).children).toHaveLength(10);
      expect(journal.matching('undo:')).toEqual([]);
      await settled(env.engine, id);
      expect(env.agent().counters().starts).toBe(20);
    } finally {
      await env.cleanup();
    }
  });

  it('fail-fast: one failing child cancels its running siblings and fails the parent', async () => {
    const journal = new Journal();
    const t = testCommands(journal);
    const env = await startEnv({ commands: t.all });
    try {
      const { id } = await env.engine.submit(t.failFastGroup, {
        name: 'ff',
        children: [
          { name: 'slow1', verb: 'sleep', args: { ms: 60_000 } },
          { name: 'bad', verb: 'fail', args: { message: 'disk on fire' } },
          { name: 'slow2', verb: 'sleep', args: { ms: 60_000 } },
        ],
      });
      const parent = await env.engine.waitFor(id);
      expect(parent.status).toBe('failed');
      expect(parent.error?.code).toBe('CHILD_FAILED');
      expect(parent.error?.message).toContain('disk on fire');
      const details = await env.engine.inspect(id);
      const byName = (n: string) =>
        details!.children.find((c) => (c.params as { name: string }).name === n)!;
      expect(byName('bad').status).toBe('failed');
      expect(byName('slow1').status).toBe('cancelled');
      expect(byName('slow2').status).toBe('cancelled');
      expect(env.agent().counters().stops).toBe(2);
      // Cancelled and failed children compensate themselves; the parent compensates its own step.
      expect(journal.count('undo:slow1')).toBe(1);
      expect(journal.count('undo:slow2')).toBe(1);
      expect(journal.count('undo:bad')).toBe(1);
      expect(journal.count('undo:ff')).toBe(1);
      expect(journal.count('failure:ff:CHILD_FAILED')).toBe(1);
    } finally {
      await env.cleanup();
    }
  });

  it('wait-all: siblings finish, then the parent fails and compensates the succeeded ones', async () => {
    const journal = new Journal();
    const t = testCommands(journal);
    const env = await startEnv({ commands: t.all });
    try {
      const { id } = await env.engine.submit(t.group, {
        name: 'wa',
        children: [
          { name: 'ok1', verb: 'sleep', args: { ms: 30 } },
          { name: 'bad', verb: 'fail', args: { message: 'nope' } },
          { name: 'ok2', verb: 'sleep', args: { ms: 30 } },
        ],
      });
      const parent = await env.engine.waitFor(id);
      expect(parent.status).toBe('failed');
      expect(parent.compensation).toBe('compensated');
      const details = await env.engine.inspect(id);
      const statuses = Object.fromEntries(
        details!.children.map((c) => [
          (c.params as { name: string }).name,
          [c.status, c.compensation],
        ]),
      );
      expect(statuses).toEqual({
        ok1: ['succeeded', 'compensated'],
        bad: ['failed', 'compensated'],
        ok2: ['succeeded', 'compensated'],
      });
      expect(env.agent().counters().stops).toBe(0);
      // Reverse order: ok2 (created last) before ok1, the parent's own step last.
      expect(journal.matching('undo:').filter((e) => e !== 'undo:bad')).toEqual([
        'undo:ok2',
        'undo:ok1',
        'undo:wa',
      ]);
    } finally {
      await env.cleanup();
    }
  });
});

describe('serial chains', () => {
  it('a chain of 5 whose 3rd stage fails: 1-2 compensated in reverse, 4-5 never created', async () => {
    const journal = new Journal();
    const t = testCommands(journal);
    const env = await startEnv({ commands: t.all });
    try {
      const stages = [
        { name: 's1', tasks: 1 },
        { name: 's2', tasks: 1 },
        { name: 's3', verb: 'fail', args: { message: 'stage 3 broke' } },
        { name: 's4', tasks: 1 },
        { name: 's5', tasks: 1 },
      ];
      const { id } = await env.engine.submit(t.chain, { name: 'chain', stages });
      const parent = await env.engine.waitFor(id);
      expect(parent.status).toBe('failed');
      expect(parent.error?.code).toBe('CHILD_FAILED');
      expect(parent.compensation).toBe('compensated');
      const details = await env.engine.inspect(id);
      expect(details!.children.map((c) => (c.params as { name: string }).name)).toEqual([
        's1',
        's2',
        's3',
      ]);
      expect(details!.children.map((c) => c.status)).toEqual(['succeeded', 'succeeded', 'failed']);
      // s3 undid its own work when it failed; then the chain undid s2, then s1.
      expect(journal.matching('undo:')).toEqual(['undo:s3', 'undo:s2', 'undo:s1']);
      expect(journal.count('success:s4') + journal.count('success:s5')).toBe(0);
      // Stages ran in order, each once.
      expect(journal.matching('next:')).toEqual(['next:chain:1', 'next:chain:2']);
      expect(env.agent().counters().starts).toBe(3);
    } finally {
      await env.cleanup();
    }
  });

  it('a successful chain creates each stage only after the previous one succeeded', async () => {
    const journal = new Journal();
    const t = testCommands(journal);
    const env = await startEnv({ commands: t.all });
    try {
      const stages = Array.from({ length: 5 }, (_, i) => ({
        name: `s${i + 1}`,
        verb: 'sleep',
        args: { ms: 5 },
      }));
      const { id } = await env.engine.submit(t.chain, { name: 'ok-chain', stages });
      const parent = await env.engine.waitFor(id);
      expect(parent.status).toBe('succeeded');
      const details = await env.engine.inspect(id);
      const children = details!.children;
      expect(children).toHaveLength(5);
      for (let i = 1; i < children.length; i++) {
        expect(children[i]!.createdAt).toBeGreaterThanOrEqual(children[i - 1]!.endedAt!);
      }
      expect(journal.matching('success:s')).toEqual([
        'success:s1',
        'success:s2',
        'success:s3',
        'success:s4',
        'success:s5',
      ]);
    } finally {
      await env.cleanup();
    }
  });
});
