/** Time limits on the clock port (core/clock.ts): what a bounded stop is built on. */
import { describe, expect, it } from 'vitest';
import { ManualClock, raceUntil, timeLimit, whenAborted } from '../../src/core/clock.js';

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
