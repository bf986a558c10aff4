/**
 * The queues of task admission (engine/admission.ts): a heap per agent and verb whose entries
 * keep their place, so that a task taken out (a cancel, a grant) costs O(log n). Checked against
 * the rule, stated plainly: admitted best first by key, then root, command and ordinal, whatever
 * was taken out meanwhile; each waiting task's place counts the tasks before it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { Admission } from '../../src/engine/admission.js';
import type { LiveTask } from '../../src/engine/live.js';
import { liveCommand, liveTask } from '../support/live.js';

const type = defineCommand({ name: 'heap.cmd', schema: z.object({}), execute() {} });
const AGE_STEP = 10;

/** `n` queued tasks on agent `a` (one per command), with the given priorities. */
function tasks(priorities: readonly number[]): LiveTask[] {
  return priorities.map((p, i) => {
    const c = liveCommand(type, i + 1);
    c.priority = p;
    const t = liveTask(c, 0, { agentId: 'a' });
    t.status = 'queued';
    return t;
  });
}

/** The rule: best first by `createdAt − priority × ageStep`, then root, command, ordinal. */
function ruleOrder(ts: readonly LiveTask[]): number[] {
  return [...ts]
    .sort(
      (x, y) =>
        x.createdAt -
          x.command.priority * AGE_STEP -
          (y.createdAt - y.command.priority * AGE_STEP) ||
        x.command.rootId - y.command.rootId ||
        x.command.id - y.command.id ||
        x.ordinal - y.ordinal,
    )
    .map((t) => t.command.id);
}

/** An agent with one slot: the first task submitted runs, the rest wait. */
function admission(): { adm: Admission; admitted: LiveTask[] } {
  const admitted: LiveTask[] = [];
  const adm = new Admission(
    { now: () => 0, admitted: (t) => admitted.push(t), liveTasks: () => [], ledger: null },
    { agents: { a: { maxRunning: 1 } }, ageStepMs: AGE_STEP },
  );
  return { adm, admitted };
}

/** Frees the running task's slot, again and again, until nothing waits. */
function drain(admitted: LiveTask[]): void {
  for (let i = 0; i < admitted.length; i++) admitted[i]!.onAgentDone?.(admitted[i]!);
}

describe('task admission queues', () => {
  it('admits best first whatever was taken out meanwhile; places count the tasks before (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 2, maxLength: 60 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (priorities, picks) => {
          const ts = tasks(priorities);
          const { adm, admitted } = admission();
          for (const t of ts) adm.submit(t);
          expect(admitted).toEqual([ts[0]]);
          let waiting = ts.slice(1);
          for (const pick of picks) {
            if (waiting.length === 0) break;
            const t = waiting[pick % waiting.length]!;
            expect(adm.remove(t)).toBe(true);
            expect(adm.remove(t)).toBe(false);
            waiting = waiting.filter((w) => w !== t);
          }
          const order = ruleOrder(waiting);
          for (const t of waiting) expect(adm.position(t)?.ahead).toBe(order.indexOf(t.command.id));
          drain(admitted);
          expect(admitted.slice(1).map((t) => t.command.id)).toEqual(order);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a cancel storm: half of 20,000 waiting tasks taken out, the rest admitted in order', () => {
    const ts = tasks(Array.from({ length: 20_000 }, (_, i) => (i * 7) % 5));
    const { adm, admitted } = admission();
    for (const t of ts) adm.submit(t);
    const gone = ts.slice(1).filter((_, i) => i % 2 === 0);
    for (const t of gone) expect(adm.remove(t)).toBe(true);
    const kept = ts.slice(1).filter((_, i) => i % 2 === 1);
    drain(admitted);
    expect(admitted.slice(1).map((t) => t.command.id)).toEqual(ruleOrder(kept));
  });
});
