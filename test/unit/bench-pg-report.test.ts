import { describe, expect, it } from 'vitest';
import { postgresSince, type CpuSample } from '../../bench/pg-report.js';

const sample = (byPid: Record<number, number>): CpuSample => {
  const postgresByPid = new Map(Object.entries(byPid).map(([pid, j]) => [Number(pid), j]));
  return { busy: 0, total: 0, postgresByPid, ours: 0, apply: 0 };
};

/** All the server's processes' jiffies in a sample: what the benchmark differenced before. */
const total = (s: CpuSample): number => [...s.postgresByPid.values()].reduce((a, b) => a + b, 0);

describe("the PostgreSQL benchmark's server CPU between two samples", () => {
  it('counts each process from its own earlier reading, a new one in full', () => {
    expect(postgresSince(sample({ 1: 100, 2: 50 }), sample({ 1: 130, 2: 55, 3: 7 }))).toBe(42);
  });

  it('leaves out a process that exited instead of subtracting all it ever used', () => {
    // A closed connection's backend had used 5,000 jiffies: a difference of the totals would
    // come out at 10 + 5 - 5,000.
    const before = sample({ 1: 100, 2: 50, 9: 5_000 });
    const after = sample({ 1: 110, 2: 55 });
    expect(total(after) - total(before)).toBeLessThan(0);
    expect(postgresSince(before, after)).toBe(15);
  });
});
