/**
 * Root admission (engine/root-admission.ts) against a model: the queue kept by type (each type's
 * best first, the best head admitted) admits the same roots in the same order as one queue of
 * every root walked from its best, which is the rule — through limits, pauses, ends, cancels and
 * limits changed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand, type CommandType } from '../../src/core/command-type.js';
import type { LiveCommand } from '../../src/engine/live.js';
import { RootAdmission } from '../../src/engine/root-admission.js';
import type { PausedType } from '../../src/store/port.js';
import { liveCommand } from '../support/live.js';

const TYPES: CommandType[] = ['t.a', 't.b', 't.c'].map((name) =>
  defineCommand({ name, schema: z.object({}), execute() {} }),
);
const AGE_STEP = 10;

/** The rule, stated plainly: one queue of every waiting root, walked from its best at each change. */
class Model {
  readonly queue: { id: number; type: string; key: number }[] = [];
  readonly slots = new Set<number>();
  readonly typeOf = new Map<number, string>();
  readonly admitted: number[] = [];
  paused = new Set<string>();
  typeLimits = new Map<string, number>();
  nodeLimit: number | null = null;

  get limited(): boolean {
    return this.nodeLimit !== null || this.typeLimits.size > 0 || this.paused.size > 0;
  }
  running(type?: string): number {
    return [...this.slots].filter((id) => type === undefined || this.typeOf.get(id) === type)
      .length;
  }
  room(type: string): boolean {
    if (this.paused.has(type)) return false;
    if (this.nodeLimit !== null && this.running() >= this.nodeLimit) return false;
    const l = this.typeLimits.get(type);
    return l === undefined || this.running(type) < l;
  }
  submit(id: number, type: string, key: number): boolean {
    this.typeOf.set(id, type);
    if (!this.limited) return true;
    if (this.queue.length === 0 && this.room(type)) {
      this.slots.add(id);
      return true;
    }
    this.queue.push({ id, type, key });
    this.queue.sort((a, b) => a.key - b.key || a.id - b.id);
    this.pump();
    return !this.queue.some((e) => e.id === id);
  }
  pump(): void {
    for (let i = 0; i < this.queue.length;) {
      if (this.nodeLimit !== null && this.running() >= this.nodeLimit) return;
      const e = this.queue[i]!;
      if (!this.room(e.type)) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.slots.add(e.id);
      this.admitted.push(e.id);
    }
  }
  end(id: number): void {
    if (this.slots.delete(id)) this.pump();
  }
  remove(id: number): void {
    const i = this.queue.findIndex((e) => e.id === id);
    if (i >= 0) this.queue.splice(i, 1);
  }
}

type Op =
  | { op: 'submit'; type: number; priority: number }
  | { op: 'end'; pick: number }
  | { op: 'cancel'; pick: number }
  | { op: 'pause'; types: boolean[] }
  | { op: 'limits'; node: number | null; typeLimits: (number | null)[] };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('submit' as const),
      type: fc.nat(2),
      priority: fc.integer({ min: -2, max: 2 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('end' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('cancel' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('pause' as const),
      types: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('limits' as const),
      node: fc.option(fc.integer({ min: 1, max: 4 })),
      typeLimits: fc.array(fc.option(fc.integer({ min: 0, max: 3 })), {
        minLength: 3,
        maxLength: 3,
      }),
    }),
  },
);

function pauseOf(type: string): PausedType {
  return { type, pausedAt: 0, by: null, reason: null };
}

describe('root admission', () => {
  it('admits as one queue walked from its best would, through limits, pauses, ends and cancels (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.array(opArb, { maxLength: 80 }),
        (node, ops) => {
          const admitted: number[] = [];
          const roots = new RootAdmission(
            { admitted: (c) => admitted.push(c.id) },
            { ageStepMs: AGE_STEP, maxRunningRoots: node },
          );
          const model = new Model();
          model.nodeLimit = node;
          const live = new Map<number, LiveCommand>();
          let now = 0;
          for (const o of ops) {
            now += 1;
            if (o.op === 'submit') {
              const id = live.size + 1;
              const c = liveCommand(TYPES[o.type]!, id);
              c.priority = o.priority;
              live.set(id, c);
              const key = now - o.priority * AGE_STEP;
              expect(roots.submit(c, now)).toBe(model.submit(id, c.type.name, key));
            } else if (o.op === 'end') {
              const held = [...model.slots].sort((a, b) => a - b);
              const id = held[o.pick % Math.max(1, held.length)];
              if (id === undefined) continue;
              const c = live.get(id)!;
              expect(c.rootSlot).toBe(true);
              roots.ended(c);
              model.end(id);
            } else if (o.op === 'cancel') {
              const waiting = model.queue.map((e) => e.id).sort((a, b) => a - b);
              const id = waiting[o.pick % Math.max(1, waiting.length)];
              if (id === undefined) continue;
              roots.remove(live.get(id)!);
              model.remove(id);
            } else if (o.op === 'pause') {
              const names = TYPES.filter((_, i) => o.types[i]).map((t) => t.name);
              model.paused = new Set(names);
              roots.setPaused(new Map(names.map((n) => [n, pauseOf(n)])));
              model.pump();
            } else {
              const types = Object.fromEntries(
                TYPES.flatMap((t, i) => {
                  const l = o.typeLimits[i];
                  return l === null || l === undefined ? [] : [[t.name, { maxRunning: l }]];
                }),
              );
              model.nodeLimit = o.node;
              model.typeLimits = new Map(
                Object.entries(types).map(([n, l]) => [n, l.maxRunning] as const),
              );
              roots.setLimits({
                ageStepMs: AGE_STEP,
                types,
                ...(o.node === null ? {} : { maxRunningRoots: o.node }),
              });
              model.pump();
            }
            expect(admitted).toEqual(model.admitted);
            expect(roots.stats().queued).toBe(model.queue.length);
            // Each waiting root's place: the roots ahead of it in the one queue.
            model.queue.forEach((e, i) => {
              expect(roots.position(live.get(e.id)!)?.ahead).toBe(i);
            });
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a long queue: admitted from its front in order across compactions, cancels and positions kept', () => {
    const admitted: number[] = [];
    const roots = new RootAdmission({ admitted: (c) => admitted.push(c.id) }, {});
    roots.setPaused(new Map([['t.a', pauseOf('t.a')]]));
    const live = Array.from({ length: 5_000 }, (_, i) => liveCommand(TYPES[0]!, i + 1));
    live.forEach((c, i) => expect(roots.submit(c, i)).toBe(false));
    // Resumed under a node limit of 3,000: the front 3,000 go (the taken front is dropped twice).
    roots.setLimits({ maxRunningRoots: 3_000 });
    roots.setPaused(new Map());
    expect(admitted).toEqual(live.slice(0, 3_000).map((c) => c.id));
    // Every other one of the rest is cancelled; the others keep their places.
    for (const c of live.slice(3_000).filter((_, i) => i % 2 === 0)) roots.remove(c);
    const left = live.slice(3_000).filter((_, i) => i % 2 === 1);
    expect(roots.stats().queued).toBe(1_000);
    left.forEach((c, i) => expect(roots.position(c)?.ahead).toBe(i));
    for (const c of live.slice(0, 1_000)) roots.ended(c);
    expect(admitted.slice(3_000)).toEqual(left.map((c) => c.id));
    expect(roots.stats()).toEqual({ running: 3_000, queued: 0, limit: 3_000 });
  });

  it("a paused type's position says so, with its limits", () => {
    const roots = new RootAdmission({ admitted: () => undefined }, { maxRunningRoots: 5 });
    roots.setPaused(new Map([['t.a', pauseOf('t.a')]]));
    const c = liveCommand(TYPES[0]!, 1);
    expect(roots.submit(c, 1)).toBe(false);
    expect(roots.position(c)).toEqual({
      ahead: 0,
      typeLimit: null,
      nodeLimit: 5,
      paused: pauseOf('t.a'),
      text: 'queued: 0 ahead, t.a paused, node limit 5',
    });
    const admitted: number[] = [];
    const again = new RootAdmission({ admitted: (x) => admitted.push(x.id) }, {});
    again.setPaused(new Map([['t.a', pauseOf('t.a')]]));
    expect(again.submit(c, 1)).toBe(false);
    again.setPaused(new Map());
    expect(admitted).toEqual([1]);
  });
});
