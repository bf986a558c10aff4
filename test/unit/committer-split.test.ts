/**
 * An idle store's flush is split (Committer, SPLIT_MIN_ROWS): when no batch is in flight and at
 * least twice `splitMinRows` rows are dirty, the first batch takes about half, cut only before a
 * stored command's group, and the rest follows at once. New commands queued together (a
 * submitMany's roots) are never cut apart by it, and a store with a batch in flight gets
 * everything at once, as before.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ManualClock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import { Committer, SPLIT_MIN_ROWS } from '../../src/engine/committer.js';
import type { LiveCommand } from '../../src/engine/live.js';
import type { ChangeBatch, Store } from '../../src/store/port.js';
import { liveCommand, liveTask } from '../support/live.js';
import { BatchFaults } from '../support/batch-faults.js';

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

  it('never splits with splitMinRows 0 (tuning idleSplitRows: 0)', async () => {
    const { store, committer } = setup(0);
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

/**
 * Stores rows like a database (updates of missing rows fail), fails the batches whose numbers
 * it is given, and refuses the batches sent behind a failure until it is reported (as every store).
 */
class FailingStore {
  readonly commands = new Map<number, number>();
  readonly tasks = new Map<number, number>();
  readonly faults: BatchFaults;
  constructor(fails: ReadonlySet<number>) {
    this.faults = new BatchFaults(fails);
  }
  get applies(): number {
    return this.faults.applies;
  }
  apply(b: ChangeBatch): Promise<void> {
    const refused = this.faults.next();
    if (refused) return refused;
    for (const c of b.commandInserts) this.commands.set(c.id, c.attempts);
    for (const u of b.commandUpdates) this.commands.set(u.id, u.attempts);
    for (const t of b.taskInserts) this.tasks.set(t.commandId, t.result as number);
    for (const t of b.taskUpdates) this.tasks.set(t.commandId, t.result as number);
    return Promise.resolve();
  }
}

const stepArb = fc.oneof(
  fc.record({ kind: fc.constant('bump' as const), target: fc.nat(60) }),
  fc.record({ kind: fc.constant('task' as const), target: fc.nat(60) }),
  fc.record({ kind: fc.constant('after' as const), target: fc.nat(60) }),
  fc.record({ kind: fc.constant('tick' as const), turns: fc.integer({ min: 1, max: 3 }) }),
);

describe('committer: split flushes and failed batches (property)', () => {
  it('stores every change exactly and runs each callback once, after its cause', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArb, { minLength: 1, maxLength: 150 }),
        fc.uniqueArray(fc.nat(40), { maxLength: 6 }),
        fc.integer({ min: 2, max: 3 }),
        fc.integer({ min: 4, max: 40 }),
        fc.integer({ min: 1, max: 3 }),
        async (steps, fails, maxInFlight, maxBatchRows, splitMinRows) => {
          const store = new FailingStore(new Set(fails.map((f) => f + 1)));
          const clock = new ManualClock();
          const committer = new Committer(
            store as unknown as Store,
            clock,
            { retryBaseMs: 1, retryMaxMs: 4, maxInFlight, maxBatchRows, splitMinRows },
            () => {},
          );
          // 20 commands with a task each, stored by the first batch (never a failing one).
          const live = Array.from({ length: 20 }, (_, i) => liveCommand(type, i + 1));
          const tasks = live.map((c) => liveTask(c, 0, { result: 0 }));
          for (const c of live) committer.command(c);
          for (const t of tasks) committer.task(t);
          await turns();
          const late: string[] = [];
          let callbacks = 0;
          let ran = 0;
          for (const step of steps) {
            if (step.kind === 'tick') {
              for (let i = 0; i < step.turns; i++) await new Promise((r) => setImmediate(r));
              clock.advance(10);
              continue;
            }
            const i = step.target % live.length;
            const c = live[i]!;
            if (step.kind === 'bump') {
              c.attempts++;
              committer.command(c);
            } else if (step.kind === 'task') {
              tasks[i]!.result = (tasks[i]!.result as number) + 1;
              committer.task(tasks[i]!);
            } else {
              const version = c.attempts;
              const taskVersion = tasks[i]!.result as number;
              callbacks++;
              committer.afterCommit(() => {
                ran++;
                if ((store.commands.get(c.id) ?? -1) < version) late.push(`command ${c.id}`);
                if ((store.tasks.get(c.id) ?? -1) < taskVersion) late.push(`task of ${c.id}`);
              }, c);
            }
          }
          for (let k = 0; k < 200 && (committer.pending || ran < callbacks); k++) {
            await new Promise((r) => setImmediate(r));
            clock.advance(10);
          }
          await committer.drain();
          expect(late).toEqual([]);
          expect(ran).toBe(callbacks);
          for (const [i, c] of live.entries()) {
            expect(store.commands.get(c.id)).toBe(c.attempts);
            expect(store.tasks.get(c.id)).toBe(tasks[i]!.result);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
