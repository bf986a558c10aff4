/**
 * Property: whatever the workload (tasks failing or not, concurrent and serial children,
 * cancellations at random moments), every state change the engine stores is a legal transition.
 * The sequences are observed from the committed batches, i.e. exactly what reached the store.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { canTransition } from '../../src/core/states.js';
import type { ChangeBatch } from '../../src/store/port.js';
import { Journal, testCommands } from '../support/commands.js';
import { assertNoLeakedEngines, startEnv } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const leafArb = fc.record({
  name: fc.constantFrom('a', 'b', 'c'),
  tasks: fc.integer({ min: 0, max: 3 }),
  verb: fc.constantFrom('noop', 'sleep', 'fail'),
  failExecute: fc.boolean(),
});
const rootArb = fc.oneof(
  fc.record({ kind: fc.constant('leaf' as const), leaf: leafArb }),
  fc.record({
    kind: fc.constant('group' as const),
    failFast: fc.boolean(),
    children: fc.array(leafArb, { minLength: 1, maxLength: 4 }),
  }),
  fc.record({
    kind: fc.constant('chain' as const),
    stages: fc.array(leafArb, { minLength: 1, maxLength: 4 }),
  }),
);
const workloadArb = fc.array(
  fc.record({ root: rootArb, cancelAfterMs: fc.option(fc.integer({ min: 0, max: 30 })) }),
  { minLength: 1, maxLength: 6 },
);

function track(batches: ChangeBatch[]): string[] {
  const violations: string[] = [];
  const commands = new Map<number, { status: string; compensation: string }>();
  const tasks = new Map<string, string>();
  const undo = new Map<string, string>();
  for (const b of batches) {
    for (const c of [...b.commandInserts, ...b.commandUpdates]) {
      const prev = commands.get(c.id);
      if (prev && !canTransition('command', prev.status, c.status))
        violations.push(`command ${c.id}: ${prev.status} -> ${c.status}`);
      if (prev && !canTransition('compensation', prev.compensation, c.compensation))
        violations.push(`compensation ${c.id}: ${prev.compensation} -> ${c.compensation}`);
      commands.set(c.id, { status: c.status, compensation: c.compensation });
    }
    for (const t of [...b.taskInserts, ...b.taskUpdates]) {
      const key = `${t.commandId}/${t.ordinal}`;
      const prev = tasks.get(key);
      if (prev && !canTransition('task', prev, t.status))
        violations.push(`task ${key}: ${prev} -> ${t.status}`);
      tasks.set(key, t.status);
    }
    for (const u of [...b.undoInserts, ...b.undoUpdates]) {
      const key = `${u.commandId}/${u.ordinal}`;
      const prev = undo.get(key);
      if (prev && !canTransition('undo', prev, u.status))
        violations.push(`undo ${key}: ${prev} -> ${u.status}`);
      undo.set(key, u.status);
    }
  }
  return violations;
}

describe('engine state changes (property)', () => {
  it('no illegal transition is ever stored', async () => {
    const journal = new Journal();
    const t = testCommands(journal);
    const env = await startEnv({ commands: t.all, tuning: { pollIntervalMs: 10 } });
    try {
      await fc.assert(
        fc.asyncProperty(workloadArb, async (workload) => {
          const batches: ChangeBatch[] = [];
          const off = env.engine.on('committed', (b) => batches.push(b));
          const ids: number[] = [];
          for (const [i, item] of workload.entries()) {
            const r = item.root;
            const leaf = (l: {
              name: string;
              tasks: number;
              verb: string;
              failExecute: boolean;
            }) => ({
              ...l,
              name: `${l.name}${i}`,
              args: l.verb === 'sleep' ? { ms: 3 } : null,
            });
            const submitted =
              r.kind === 'leaf'
                ? await env.engine.submit(t.leaf, leaf(r.leaf))
                : r.kind === 'group'
                  ? await env.engine.submit(r.failFast ? t.failFastGroup : t.group, {
                      name: `g${i}`,
                      children: r.children.map(leaf),
                    })
                  : await env.engine.submit(t.chain, {
                      name: `ch${i}`,
                      stages: r.stages.map(leaf),
                    });
            ids.push(submitted.id);
            if (item.cancelAfterMs !== null) {
              setTimeout(
                () => void env.engine.cancel(submitted.id).catch(() => undefined),
                item.cancelAfterMs,
              );
            }
          }
          const ended = await Promise.all(ids.map((id) => env.engine.waitFor(id)));
          off();
          for (const c of ended) expect(['succeeded', 'failed', 'cancelled']).toContain(c.status);
          expect(track(batches)).toEqual([]);
        }),
        { numRuns: 15 },
      );
    } finally {
      await env.cleanup();
    }
  }, 120_000);
});
