/**
 * A batch refused for what it holds (BATCH_REFUSED, ILLEGAL_TRANSITION) would be refused on every
 * try: the committer isolates the trees refused on their own (committer.ts, the module). Every
 * other tree's changes are stored, each tree's part of the failed batches in order; the refused
 * trees go to `onRefused` and nothing more is sent. If no tree is refused alone, the failed
 * batches count as committed (listeners and callbacks run) and the committer goes on.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ManualClock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import { BatchRefusedError, CocoError, ErrorCode } from '../../src/core/errors.js';
import { Committer, type RefusedTree } from '../../src/engine/committer.js';
import type { LiveCommand } from '../../src/engine/live.js';
import type { ChangeBatch, Store } from '../../src/store/port.js';
import { liveCommand, liveTask } from '../support/live.js';

const type = defineCommand({ name: 'unit.refused', schema: z.object({}), execute() {} });

/** The command ids a batch writes a row of. */
function touched(b: ChangeBatch): Set<number> {
  return new Set([
    ...b.commandInserts.map((r) => r.id),
    ...b.commandUpdates.map((r) => r.id),
    ...b.taskInserts.map((r) => r.commandId),
    ...b.taskUpdates.map((r) => r.commandId),
    ...b.commandsSettled,
    ...b.entityWrites.map((w) => w.commandId),
  ]);
}

/**
 * Stores what it is given, but refuses a batch writing a row of a `poisoned` command, or of two
 * commands of a `clash` together; the applies numbered in `away` fail as if the store were away.
 * While `gate` is set, applies wait for it; as a real store, a refusal also fails the batches
 * called before it was reported.
 */
class PickyStore {
  readonly poisoned = new Set<number>();
  clash: [number, number] | null = null;
  readonly away = new Set<number>();
  gate: Promise<void> | null = null;
  /** Command ids written by batches that committed, in order. */
  readonly stored: number[] = [];
  /** Tasks inserted by batches that committed (`command/ordinal`). */
  readonly tasks: string[] = [];
  applies = 0;
  /** Applies called up to the last refusal: they fail with it. */
  #failThrough = 0;
  async apply(b: ChangeBatch): Promise<void> {
    const seq = ++this.applies;
    if (this.gate) await this.gate;
    const ids = touched(b);
    if (this.away.has(seq) || seq <= this.#failThrough)
      throw new CocoError(ErrorCode.StoreFailed, 'away', { retryable: true });
    const refuse = (why: string): never => {
      this.#failThrough = this.applies;
      throw new BatchRefusedError(why);
    };
    for (const id of ids) if (this.poisoned.has(id)) refuse(`poison ${id}`);
    if (this.clash && ids.has(this.clash[0]) && ids.has(this.clash[1])) refuse('clash');
    this.stored.push(...ids);
    for (const t of b.taskInserts) this.tasks.push(`${t.commandId}/${t.ordinal}`);
  }
}

const turns = async (n = 30): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

function setup(options: { onRefused?: boolean; maxInFlight?: number } = {}) {
  const store = new PickyStore();
  const clock = new ManualClock(1_000);
  const refused: RefusedTree[][] = [];
  const errors: unknown[] = [];
  const live = new Map<number, LiveCommand>();
  const committer = new Committer(
    store as unknown as Store,
    clock,
    { retryBaseMs: 10, retryMaxMs: 40, maxInFlight: options.maxInFlight ?? 1, maxBatchRows: 1_000 },
    (error) => errors.push(error),
    (id) => live.get(id),
    options.onRefused === false ? null : (trees) => refused.push([...trees]),
  );
  /** A root with `children` children, each with a task: every row new. */
  const tree = (rootId: number, children = 2): LiveCommand[] => {
    const root = liveCommand(type, rootId);
    const all = [root];
    for (let i = 1; i <= children; i++) all.push(liveCommand(type, rootId + i, { parent: root }));
    for (const c of all) {
      live.set(c.id, c);
      committer.command(c);
      committer.task(liveTask(c, 0));
    }
    return all;
  };
  return { store, clock, committer, refused, errors, tree };
}

describe('committer: a refused batch is isolated by tree', () => {
  it('stores every other tree and hands over the one refused alone; nothing more is sent', async () => {
    const { store, committer, refused, tree } = setup();
    const ran: number[] = [];
    for (let r = 0; r < 8; r++) {
      const [root] = tree(100 * (r + 1));
      committer.afterCommit(() => ran.push(root!.id), root);
    }
    committer.afterCommit(() => ran.push(-1));
    store.poisoned.add(502); // a child of tree 500
    await turns();
    expect(refused).toHaveLength(1);
    expect(refused[0]!.map((t) => t.rootId)).toEqual([500]);
    expect(refused[0]![0]!.error.code).toBe(ErrorCode.BatchRefused);
    const stored = new Set(store.stored);
    for (let r = 1; r <= 8; r++)
      for (const id of [100 * r, 100 * r + 1, 100 * r + 2])
        expect(stored.has(id), `command ${id}`).toBe(r !== 5);
    // Who waits for another tree's changes is told they are stored (a submission answered); the
    // refused tree's callbacks and barriers never run. The engine halts: nothing new is sent.
    expect(ran).toEqual([100, 200, 300, 400, 600, 700, 800]);
    const applies = store.applies;
    tree(900);
    await turns();
    expect(store.applies).toBe(applies);
  });

  it('a refusal between two trees only: both stored apart, the batch counts as committed, work goes on', async () => {
    const { store, committer, refused, tree } = setup();
    const commits: number[] = [];
    committer.onCommit((_b, rows) => commits.push(rows));
    const ran: string[] = [];
    tree(10);
    tree(20);
    committer.afterCommit(() => ran.push('barrier'));
    store.clash = [11, 21];
    await turns();
    expect(refused).toEqual([]);
    expect(new Set(store.stored)).toEqual(new Set([10, 11, 12, 20, 21, 22]));
    expect(ran).toEqual(['barrier']);
    expect(commits).toEqual([12]);
    tree(30);
    await turns();
    expect(store.stored).toContain(31);
    expect(committer.lastFailure).toBeNull();
  });

  it('the store away during the isolation: the same part is tried again after the retry delay', async () => {
    const { store, clock, refused, errors, tree } = setup();
    tree(10);
    tree(20);
    store.poisoned.add(20);
    store.away.add(2); // apply 1: the batch, refused; apply 2: the first part
    await turns();
    expect(refused).toEqual([]);
    expect(store.applies).toBe(2);
    clock.advance(19); // the second failure in a row: 2 × retryBaseMs
    await turns();
    expect(store.applies).toBe(2);
    clock.advance(1);
    await turns();
    expect(refused.flat().map((t) => t.rootId)).toEqual([20]);
    expect(new Set(store.stored)).toEqual(new Set([10, 11, 12]));
    expect(errors.some((e) => e instanceof CocoError && e.code === ErrorCode.StoreFailed)).toBe(
      true,
    );
  });

  it('pipelined batches: the later ones refused with the first are isolated with it, in order', async () => {
    const { store, committer, refused, tree } = setup({ maxInFlight: 2 });
    let open = (): void => {};
    store.gate = new Promise((resolve) => (open = resolve));
    tree(10);
    const [root20] = tree(20);
    await turns(3);
    // Tree 20 changes again: its part of the second batch goes after its part of the first.
    committer.task(liveTask(root20!, 1));
    tree(30);
    await turns(3);
    expect(store.applies).toBe(2);
    store.poisoned.add(10);
    store.gate = null;
    open();
    await turns();
    expect(refused.flat().map((t) => t.rootId)).toEqual([10]);
    expect(new Set(store.stored)).toEqual(new Set([20, 21, 22, 30, 31, 32]));
    expect(store.tasks).toEqual(['20/0', '21/0', '22/0', '20/1', '30/0', '31/0', '32/0']);
  });

  it('without onRefused, a refused batch is tried again as any failed one', async () => {
    const { store, clock, refused, tree } = setup({ onRefused: false });
    tree(10);
    tree(20);
    store.poisoned.add(20);
    await turns();
    const applies = store.applies;
    clock.advance(10);
    await turns();
    expect(store.applies).toBe(applies + 1);
    expect(store.stored).toEqual([]);
    expect(refused).toEqual([]);
  });

  it('finds exactly the poisoned trees, whatever they are (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 24 }),
        fc.array(fc.integer({ min: 0, max: 23 }), { maxLength: 6 }),
        async (n, picks) => {
          const { store, refused, tree } = setup();
          for (let r = 0; r < n; r++) tree(10 * (r + 1), r % 3);
          const poisonedRoots = new Set(picks.filter((p) => p < n).map((p) => 10 * (p + 1)));
          for (const root of poisonedRoots) store.poisoned.add(root);
          await turns(60 + 10 * n);
          const found = refused.flat().map((t) => t.rootId);
          expect(new Set(found)).toEqual(poisonedRoots);
          expect(found).toHaveLength(poisonedRoots.size);
          const stored = new Set(store.stored);
          for (let r = 0; r < n; r++) {
            const root = 10 * (r + 1);
            for (let i = 0; i <= r % 3; i++)
              expect(stored.has(root + i)).toBe(!poisonedRoots.has(root));
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
