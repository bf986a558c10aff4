/**
 * The memory of used task ids (src/protocol/used-ids.ts) behaves as a map in age order would:
 * checked against such a model over long random sequences (ids used again, expired, dropped
 * past the count, the ring compacted, grown and wrapped many times), over short sequences with
 * small bounds that fast-check shrinks to a minimal failing one, and on the cases the rule names.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsedTaskIds, type UsedHow } from '../../../src/protocol/used-ids.js';

/** The rule in its plainest form: a Map in insertion (age) order, scanned from its start. */
class Model {
  readonly #ids = new Map<string, { how: UsedHow; at: number }>();
  readonly maxIds: number;
  readonly retentionMs: number;
  constructor(maxIds: number, retentionMs: number) {
    this.maxIds = maxIds;
    this.retentionMs = retentionMs;
  }
  get size(): number {
    return this.#ids.size;
  }
  add(taskId: string, how: UsedHow, at: number): { how: UsedHow; dropped: string[] } {
    const now: UsedHow = this.#ids.get(taskId)?.how === 'cleared' ? 'cleared' : how;
    this.#ids.delete(taskId);
    this.#ids.set(taskId, { how: now, at });
    return { how: now, dropped: this.expire(at) };
  }
  get(taskId: string, now: number): UsedHow | undefined {
    const e = this.#ids.get(taskId);
    return e === undefined || e.at + this.retentionMs <= now ? undefined : e.how;
  }
  expire(now: number): string[] {
    const dropped: string[] = [];
    for (const [taskId, { at }] of this.#ids) {
      if (this.#ids.size - dropped.length <= this.maxIds && at + this.retentionMs > now) break;
      dropped.push(taskId);
    }
    for (const taskId of dropped) this.#ids.delete(taskId);
    return dropped;
  }
  entries(): [string, { how: UsedHow; at: number }][] {
    return [...this.#ids];
  }
  clear(): void {
    this.#ids.clear();
  }
}

/** A small deterministic generator (mulberry32), so a failure replays. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('UsedTaskIds', () => {
  it.each([
    // ids used again and again: the queue fills with empty slots and is compacted
    { seed: 1, pool: 40, maxIds: 1_000, retentionMs: 1_000_000, ops: 40_000 },
    // fresh ids past the count: dropped from the front, the queue sliced
    { seed: 2, pool: 1_000_000, maxIds: 300, retentionMs: 1_000_000, ops: 40_000 },
    // ids expiring by age, some used again
    { seed: 3, pool: 3_000, maxIds: 100_000, retentionMs: 500, ops: 40_000 },
    // everything at once, a tiny count
    { seed: 4, pool: 20, maxIds: 5, retentionMs: 50, ops: 20_000 },
  ])('matches a map in age order (%o)', ({ seed, pool, maxIds, retentionMs, ops }) => {
    const next = random(seed);
    const used = new UsedTaskIds({ maxIds, retentionMs });
    const model = new Model(maxIds, retentionMs);
    let now = 1_700_000_000_000;
    for (let k = 0; k < ops; k++) {
      if (next() < 0.3) now += Math.floor(next() * 5);
      const taskId = `t${Math.floor(next() * pool)}`;
      const how: UsedHow = next() < 0.3 ? 'stopped' : 'cleared';
      const op = next();
      if (op < 0.5) expect(used.add(taskId, how, now)).toEqual(model.add(taskId, how, now));
      else if (op < 0.8) {
        used.mark(taskId, how, now);
        model.add(taskId, how, now);
      } else if (op < 0.97) expect(used.get(taskId, now)).toBe(model.get(taskId, now));
      else expect(used.expire(now)).toEqual(model.expire(now));
      expect(used.size).toBe(model.size);
      if (k % 4999 === 0) expect([...used.entries()]).toEqual(model.entries());
    }
    expect([...used.entries()]).toEqual(model.entries());
  });

  // Small bounds reach every path of the ring in a few operations: a tiny pool of ids used
  // again fills it with empty slots (compaction), a larger count grows it past its first size,
  // and fresh ids at the count wrap it around.
  const opArb = fc.record({
    // clear() rarely: it empties the memory the other operations build up
    op: fc.oneof(
      { arbitrary: fc.constantFrom('add', 'mark', 'markNew', 'get', 'expire'), weight: 60 },
      { arbitrary: fc.constant('clear'), weight: 1 },
    ),
    id: fc.nat(),
    how: fc.constantFrom<UsedHow>('stopped', 'cleared'),
    dt: fc.constantFrom(0, 0, 0, 1, 2, 7),
  });
  it('matches a map in age order over random operations with small bounds (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 30, max: 90 })),
        fc.oneof(fc.integer({ min: 1, max: 40 }), fc.constant(1_000_000)),
        fc.integer({ min: 1, max: 150 }),
        fc.array(opArb, { maxLength: 400, size: 'max' }),
        (maxIds, retentionMs, pool, ops) => {
          const used = new UsedTaskIds({ maxIds, retentionMs });
          const model = new Model(maxIds, retentionMs);
          let now = 1_000;
          for (const { op, id, how, dt } of ops) {
            now += dt;
            const taskId = `t${id % pool}`;
            if (op === 'add')
              expect(used.add(taskId, how, now)).toEqual(model.add(taskId, how, now));
            else if (op === 'mark' || op === 'markNew') {
              // markNew is only a shortcut: on an id remembered already it is mark all the same
              used[op](taskId, how, now);
              model.add(taskId, how, now);
            } else if (op === 'get') expect(used.get(taskId, now)).toBe(model.get(taskId, now));
            else if (op === 'expire') expect(used.expire(now)).toEqual(model.expire(now));
            else {
              used.clear();
              model.clear();
            }
            expect(used.size).toBe(model.size);
            expect([...used.entries()]).toEqual(model.entries());
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps a cleared id cleared when it is stopped again, and moves it to the end', () => {
    const used = new UsedTaskIds({ maxIds: 2 });
    used.add('a', 'cleared', 1);
    used.add('b', 'stopped', 2);
    expect(used.add('a', 'stopped', 3)).toEqual({ how: 'cleared', dropped: [] });
    // 'b' is now the oldest: it goes first
    expect(used.add('c', 'stopped', 4)).toEqual({ how: 'stopped', dropped: ['b'] });
    expect([...used.entries()]).toEqual([
      ['a', { how: 'cleared', at: 3 }],
      ['c', { how: 'stopped', at: 4 }],
    ]);
  });

  it('markNew of an id remembered after all (expired, not yet dropped) moves it as mark does', () => {
    const used = new UsedTaskIds({ maxIds: 2, retentionMs: 10 });
    used.mark('a', 'stopped', 100);
    used.mark('b', 'cleared', 105);
    expect(used.get('b', 115)).toBeUndefined(); // expired, still remembered
    used.markNew('b', 'stopped', 116); // drops 'a'; 'b' stays cleared, now at 116
    expect([...used.entries()]).toEqual([['b', { how: 'cleared', at: 116 }]]);
    used.markNew('c', 'stopped', 117);
    used.markNew('d', 'stopped', 118); // past the count: 'b' goes, once
    expect([...used.entries()].map(([taskId]) => taskId)).toEqual(['c', 'd']);
    expect(used.size).toBe(2);
  });

  it('forgets an id at its retention, not before', () => {
    const used = new UsedTaskIds({ retentionMs: 10 });
    used.mark('a', 'stopped', 100);
    expect(used.get('a', 109)).toBe('stopped');
    expect(used.get('a', 110)).toBeUndefined();
    expect(used.expire(110)).toEqual(['a']);
    expect(used.size).toBe(0);
  });

  it('forgets everything on clear() and starts over', () => {
    const used = new UsedTaskIds({ maxIds: 10 });
    for (let i = 0; i < 10_000; i++) used.mark(`t${i}`, 'cleared', i);
    used.clear();
    expect(used.size).toBe(0);
    expect(used.get('t9999', 10_000)).toBeUndefined();
    used.mark('t1', 'stopped', 10_001);
    expect([...used.entries()]).toEqual([['t1', { how: 'stopped', at: 10_001 }]]);
  });
});
