/**
 * Readiness's store probe: one keyed read at a time. A read that does not answer (a PostgreSQL
 * store tries a read again for 30 s while its server is away) is waited for by the next probes
 * instead of each starting one of its own, which gathered a read per second in the pool's queue.
 */
import { afterEach, expect, it, vi } from 'vitest';
import type { Engine } from '../../src/engine/engine.js';
import { Readiness, STORE_CHECK_MS, STORE_CHECK_TIMEOUT_MS } from '../../src/http/readiness.js';

afterEach(() => vi.useRealTimers());

/** An engine whose store reads wait until the test answers them. */
function engine(): { engine: Engine; reads: (() => void)[] } {
  const reads: (() => void)[] = [];
  const e = {
    state: 'running',
    haltError: null,
    storeOutage: null,
    get: () => new Promise<null>((resolve) => reads.push(() => resolve(null))),
  };
  return { engine: e as unknown as Engine, reads };
}

it('starts no second store read while the first has not answered', async () => {
  vi.useFakeTimers();
  const { engine: e, reads } = engine();
  const readiness = new Readiness(
    () => e,
    () => false,
  );
  for (let probe = 0; probe < 10; probe++) {
    const answer = readiness.check();
    await vi.advanceTimersByTimeAsync(STORE_CHECK_TIMEOUT_MS);
    expect(await answer).toEqual({
      reason: `the store did not answer within ${STORE_CHECK_TIMEOUT_MS} ms`,
      detail: null,
    });
    await vi.advanceTimersByTimeAsync(STORE_CHECK_MS);
  }
  expect(reads).toHaveLength(1);

  // It answers: the next probe starts a read of its own, and the node is ready.
  reads[0]!();
  await vi.advanceTimersByTimeAsync(0);
  const answer = readiness.check();
  reads[1]!();
  expect(await answer).toBeNull();
  expect(reads).toHaveLength(2);
});
