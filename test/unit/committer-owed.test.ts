/**
 * What the store owes the committer (`owedSince` and `lastFailure`, the engine's `storeOutage`):
 * since the first send of the oldest batch not yet committed — through failed tries and their
 * retries — with the latest failure; null once nothing waits for the store.
 */
import { expect, it } from 'vitest';
import { z } from 'zod';
import { ManualClock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import { CocoError } from '../../src/core/errors.js';
import { Committer } from '../../src/engine/committer.js';
import type { Store } from '../../src/store/port.js';
import { liveCommand } from '../support/live.js';

const type = defineCommand({ name: 'unit.owed', schema: z.object({}), execute() {} });

const owed = (c: Committer): { since: number | null; last: unknown } => ({
  since: c.owedSince,
  last: c.lastFailure,
});

/** A store whose batches are answered by the test, in order. */
class HeldStore {
  readonly waiting: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  apply(): Promise<void> {
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A committer on a held store and a manual clock starting at `start`. */
function setup(
  start: number,
  maxInFlight: number,
): { store: HeldStore; clock: ManualClock; committer: Committer } {
  const store = new HeldStore();
  const clock = new ManualClock(start);
  const committer = new Committer(
    store as unknown as Store,
    clock,
    { retryBaseMs: 100, retryMaxMs: 100, maxInFlight, maxBatchRows: 100 },
    () => {},
  );
  return { store, clock, committer };
}

it('counts from the first send of the oldest batch not committed, and clears once all are', async () => {
  const { store, clock, committer } = setup(1_000, 2);
  expect(committer.owedSince).toBeNull();
  committer.command(liveCommand(type, 1));
  await turn();
  expect(store.waiting).toHaveLength(1);
  expect(owed(committer)).toEqual({ since: 1_000, last: null });

  clock.advance(50);
  committer.command(liveCommand(type, 2));
  await turn();
  expect(store.waiting).toHaveLength(2);
  // Still the first batch's send.
  expect(owed(committer)).toEqual({ since: 1_000, last: null });

  store.waiting.shift()!.resolve();
  await turn();
  // The first committed: the second is the oldest owed now.
  expect(owed(committer)).toEqual({ since: 1_050, last: null });
  store.waiting.shift()!.resolve();
  await turn();
  expect(committer.owedSince).toBeNull();
});

it('keeps counting through failed tries and their retries, with the latest failure', async () => {
  const { store, clock, committer } = setup(5_000, 1);
  committer.command(liveCommand(type, 1));
  await turn();
  for (const message of ['disk full', 'disk still full']) {
    clock.advance(30);
    store.waiting.shift()!.reject(new CocoError('STORE_FAILED', message));
    await turn();
    expect(owed(committer)).toEqual({
      since: 5_000,
      last: expect.objectContaining({ code: 'STORE_FAILED', message }) as unknown,
    });
    // The retry, after its delay.
    clock.advance(100);
    await turn();
    expect(store.waiting).toHaveLength(1);
    expect(committer.owedSince).toBe(5_000);
  }
  store.waiting.shift()!.resolve();
  await turn();
  expect(committer.owedSince).toBeNull();

  // A new batch after the outage counts from its own send, with no failure.
  clock.advance(1_000);
  committer.command(liveCommand(type, 2));
  await turn();
  expect(owed(committer)).toEqual({ since: 6_260, last: null });
});

it('reports an outage once, when the oldest batch has been owed for the limit, and its end', async () => {
  const { store, clock, committer } = setup(0, 2);
  const said: string[] = [];
  committer.watchOutages(
    500,
    (forMs) => said.push(`out at ${clock.now()} after ${forMs}`),
    (ms) => said.push(`back after ${ms}`),
  );

  // Batches that keep committing within the limit: nothing said, whatever the pipeline.
  committer.command(liveCommand(type, 1));
  await turn();
  clock.advance(300);
  committer.command(liveCommand(type, 2));
  await turn();
  clock.advance(100);
  store.waiting.shift()!.resolve(); // the first, at 400: the second (sent at 300) is owed now
  await turn();
  clock.advance(300);
  store.waiting.shift()!.resolve(); // the second, at 700
  await turn();
  clock.advance(5_000);
  expect(said).toEqual([]);

  // A batch the store does not answer: said once, at its limit, then its end.
  committer.command(liveCommand(type, 3));
  await turn();
  clock.advance(499);
  expect(said).toEqual([]);
  clock.advance(1);
  expect(said).toEqual(['out at 6200 after 500']);
  clock.advance(10_000);
  expect(said).toEqual(['out at 6200 after 500']);
  store.waiting.shift()!.resolve();
  await turn();
  expect(said).toEqual(['out at 6200 after 500', 'back after 10500']);

  // The first of two batches commits, the second is never answered: counted from its own send.
  said.length = 0;
  committer.command(liveCommand(type, 4)); // sent at 16200
  await turn();
  clock.advance(300);
  committer.command(liveCommand(type, 5)); // sent at 16500
  await turn();
  clock.advance(100);
  store.waiting.shift()!.resolve();
  await turn();
  clock.advance(399);
  expect(said).toEqual([]);
  clock.advance(1);
  expect(said).toEqual(['out at 17000 after 500']);
});
