/** Time limits and timers on the clock port (core/clock.ts): what a bounded stop and deadlines are built on. */
import { describe, expect, it, vi } from 'vitest';
import {
  ManualClock,
  raceUntil,
  systemClock,
  timeLimit,
  whenAborted,
} from '../../src/core/clock.js';

/** Whether `p` has settled once the microtasks queued now have run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('timeLimit', () => {
  it('aborts its signal and resolves at the limit on the clock, not before', async () => {
    const clock = new ManualClock();
    const limit = timeLimit(clock, 1_000);
    clock.advance(999);
    expect(limit.signal.aborted).toBe(false);
    expect(await settled(limit.passed)).toBe(false);
    clock.advance(1);
    expect(limit.signal.aborted).toBe(true);
    expect(await settled(limit.passed)).toBe(true);
  });

  it('once cancelled, never aborts', async () => {
    const clock = new ManualClock();
    const limit = timeLimit(clock, 1_000);
    limit.cancel();
    clock.advance(10_000);
    expect(limit.signal.aborted).toBe(false);
    expect(await settled(limit.passed)).toBe(false);
  });
});

describe('whenAborted', () => {
  it('resolves at once for a signal already aborted, at its abort otherwise, never without one', async () => {
    expect(await settled(whenAborted(AbortSignal.abort()))).toBe(true);
    const controller = new AbortController();
    const later = whenAborted(controller.signal);
    expect(await settled(later)).toBe(false);
    controller.abort();
    expect(await settled(later)).toBe(true);
    expect(await settled(whenAborted(undefined))).toBe(false);
  });
});

describe('raceUntil', () => {
  it("answers with the promise's value or failure before the limit, with nothing after it", async () => {
    const never = new Promise<void>(() => {});
    expect(await raceUntil(Promise.resolve(7), never)).toBe(7);
    await expect(raceUntil(Promise.reject(new Error('no')), never)).rejects.toThrow('no');
    let fail = (_: Error): void => {};
    const late = new Promise<number>((_, reject) => (fail = reject));
    expect(await raceUntil(late, Promise.resolve())).toBeUndefined();
    // Failing after the limit: not reported (an unhandled rejection would fail the run).
    fail(new Error('late'));
    await new Promise((r) => setImmediate(r));
  });
});

describe('systemClock.setTimer', () => {
  const DAY = 24 * 3_600_000;

  it('waits a delay past 2^31 − 1 ms (24.8 days) in full: before, Node fired it at once', () => {
    vi.useFakeTimers();
    try {
      const fired: number[] = [];
      const start = Date.now();
      systemClock.setTimer(30 * DAY, () => fired.push(Date.now() - start));
      const cancelled = systemClock.setTimer(30 * DAY, () => fired.push(-1));
      vi.advanceTimersByTime(1);
      expect(fired).toEqual([]);
      vi.advanceTimersByTime(25 * DAY);
      expect(fired).toEqual([]);
      // Cancelled after its first step: never fires.
      cancelled.cancel();
      vi.advanceTimersByTime(5 * DAY - 2);
      expect(fired).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(fired).toEqual([30 * DAY]);
      vi.advanceTimersByTime(100 * DAY);
      expect(fired).toEqual([30 * DAY]);
    } finally {
      vi.useRealTimers();
    }
  });
});
