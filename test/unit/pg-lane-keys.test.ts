import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchKeys } from '../../src/store/postgres/lanes.js';

const keysOf = (ids: readonly number[], names: readonly string[]): BatchKeys => {
  const k = new BatchKeys();
  for (const id of ids) k.id(id);
  for (const n of names) k.name(n);
  return k;
};

describe("a PostgreSQL lane's routing keys", () => {
  it('meet exactly when the two batches share a command id or a name', () => {
    const ids = fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 12 });
    const names = fc.array(fc.constantFrom('e:1:ax', 'e:1:ay', 'i:k1', 'i:k2'), { maxLength: 2 });
    fc.assert(
      fc.property(ids, names, ids, names, (aIds, aNames, bIds, bNames) => {
        const a = keysOf(aIds, aNames);
        const b = keysOf(bIds, bNames);
        const shared = [...aIds, ...aNames].some((k) => [...bIds, ...bNames].includes(k));
        expect(a.meets(b)).toBe(shared);
        expect(b.meets(a)).toBe(shared);
      }),
      { numRuns: 2_000 },
    );
  });

  it('tell batches apart by their ranges, and names still meet across them', () => {
    expect(keysOf([1, 2, 3], []).meets(keysOf([4, 5], []))).toBe(false);
    expect(keysOf([1, 5], []).meets(keysOf([3], []))).toBe(false);
    expect(keysOf([1, 5], []).meets(keysOf([5], []))).toBe(true);
    expect(keysOf([1], ['i:k']).meets(keysOf([9], ['i:k']))).toBe(true);
    expect(keysOf([], []).meets(keysOf([1], ['i:k']))).toBe(false);
  });
});
