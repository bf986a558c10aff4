/**
 * An idle store's flush is split (Committer, SPLIT_MIN_ROWS): when no batch is in flight and at
 * least twice `splitMinRows` rows are dirty, the first batch takes about half, cut only before a
 * stored command's group, and the rest follows at once. New commands queued together (a
 * submitMany's roots) are never cut apart by it, and a store with a batch in flight gets
 * everything at once, as before.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ManualClock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import { Committer, SPLIT_MIN_ROWS } from '../../src/engine/committer.js';
import type { LiveCommand } from '../../src/engine/live.js';
import type { ChangeBatch, Store } from '../../src/store/port.js';
import { liveCommand, liveTask } from '../support/live.js';

const type = defineCommand({ name: 'unit.split', schema: z.object({}), execute() {} });

/** Records each batch's rows; holds every apply until `release` is called. */
class HoldingStore {
  readonly batches: { inserts: number[]; updates: number[]; tasks: number }[] = [];
  readonly #held: (() => void)[] = [];
  apply(b: ChangeBatch): Promise<void> {
    this.batches.push({
      inserts: b.commandInserts.map((c) => c.id),
      updates: b.commandUpdates.map((c) => c.id),
      tasks: b.taskInserts.length + b.taskUpdates.length,
    });
    return new Promise((resolve) => this.#held.push(resolve));
  }
  /** Lets every held batch commit. */
  release(): void {
    for (const resolve of this.#held.splice(0)) resolve();
  }
}

const turns = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

function setup(splitMinRows: number | undefined, maxInFlight = 2) {
  const store = new HoldingStore();
  const committer = new Committer(
    store as unknown as Store,
    new ManualClock(),
    {
      retryBaseMs: 1,
      retryMaxMs: 4,
      maxInFlight,
      maxBatchRows: 1_000,
      ...(splitMinRows === undefined ? {} : { splitMinRows }),
    },
    () => {},
  );
  return { store, committer };
}

/** `n` stored commands, each changed with one task changed. */
function storedWithTask(committer: Committer, n: number, from = 1): LiveCommand[] {
  return Array.from({ length: n }, (_, i) => {
    const c = liveCommand(type, from + i, { persisted: true });
    committer.command(c);
    committer.task(liveTask(c, 0, { persisted: true }));
    return c;
  });
}

describe('committer: an idle store gets half first', () => {
  it('splits a flush of stored commands in two halves, the second sent at once', async () => {
    const { store, committer } = setup(5);
    storedWithTask(committer, 10); // 20 rows, at least 2 × 5
    await turns();
    expect(store.batches.map((b) => b.updates)).toEqual([
      [1, 2, 3, 4, 5],
      [6, 7, 8, 9, 10],
    ]);
    expect(store.batches.map((b) => b.tasks)).toEqual([5, 5]);
    store.release();
  });

  it('does not split below twice the minimum part', async () => {
    const { store, committer } = setup(6);
    storedWithTask(committer, 5); // 10 rows < 12
    await turns();
    expect(store.batches.map((b) => b.updates)).toEqual([[1, 2, 3, 4, 5]]);
    store.release();
  });

  it('never cuts between new commands queued together (a submitMany)', async () => {
    const { store, committer } = setup(2);
    const roots = Array.from({ length: 10 }, (_, i) => liveCommand(type, i + 1));
    for (const c of roots) committer.command(c);
    storedWithTask(committer, 4, 100);
    await turns();
    // 18 rows: the budget (9) is reached inside the run of new roots, so the cut waits for the
    // first stored command's group.
    expect(store.batches.map((b) => b.inserts)).toEqual([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], []]);
    expect(store.batches.map((b) => b.updates)).toEqual([[], [100, 101, 102, 103]]);
    store.release();
  });

  it('sends everything at once to a store that is writing a batch', async () => {
    const { store, committer } = setup(2);
    storedWithTask(committer, 1);
    await turns();
    expect(store.batches).toHaveLength(1);
    storedWithTask(committer, 10, 10);
    await turns();
    expect(store.batches.map((b) => b.updates)).toEqual([
      [1],
      [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
    ]);
    store.release();
  });

  it('does not split with one batch in flight at most', async () => {
    const { store, committer } = setup(2, 1);
    storedWithTask(committer, 10);
    await turns();
    expect(store.batches).toHaveLength(1);
    store.release();
  });

  it('by default splits from twice SPLIT_MIN_ROWS rows', async () => {
    const { store, committer } = setup(undefined);
    storedWithTask(committer, SPLIT_MIN_ROWS - 1);
    await turns();
    expect(store.batches).toHaveLength(1);
    store.release();
    await turns();
    const more = setup(undefined);
    storedWithTask(more.committer, SPLIT_MIN_ROWS);
    await turns();
    expect(more.store.batches.map((b) => b.updates.length)).toEqual([
      SPLIT_MIN_ROWS / 2,
      SPLIT_MIN_ROWS / 2,
    ]);
    more.store.release();
  });
});
