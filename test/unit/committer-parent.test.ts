/**
 * A parent queued behind its child joins the child's batch (Committer `#take`): a parent's
 * reaction to a child (its end, once its last child ended) is stored with its cause, not batches
 * later behind the groups queued in between; its other queued children come along, so a parent's
 * change still never commits before its children's.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ManualClock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import { Committer } from '../../src/engine/committer.js';
import type { LiveCommand } from '../../src/engine/live.js';
import type { ChangeBatch, Store } from '../../src/store/port.js';
import { liveCommand } from '../support/live.js';

const type = defineCommand({ name: 'unit.parent', schema: z.object({}), execute() {} });

class RecordingStore {
  readonly batches: number[][] = [];
  apply(b: ChangeBatch): Promise<void> {
    this.batches.push(b.commandUpdates.map((c) => c.id));
    return Promise.resolve();
  }
}

const turns = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

describe('committer: a parent joins its child', () => {
  it("stores a parent's change with its child's, ahead of the groups queued between them", async () => {
    const store = new RecordingStore();
    const live = new Map<number, LiveCommand>();
    const committer = new Committer(
      store as unknown as Store,
      new ManualClock(),
      // No idle split: the batches are cut at maxBatchRows only.
      { retryBaseMs: 1, retryMaxMs: 4, maxInFlight: 1, maxBatchRows: 3, splitMinRows: 1_000 },
      () => {},
      (id) => live.get(id),
    );
    const stored = (id: number, parent: LiveCommand | null = null): LiveCommand => {
      const c = liveCommand(type, id, { parent, persisted: true });
      live.set(id, c);
      // As the coordinator does: the parent knows its child.
      parent?.addChild({
        id,
        type: type.name,
        seq: c.seq!,
        originStage: 0,
        status: 'pending',
        result: null,
        error: null,
        compensation: 'none',
        ended: false,
      } as never);
      return c;
    };
    const parent = stored(1);
    const [a, b] = [stored(2, parent), stored(3, parent)];
    const others = [stored(10), stored(11)];
    // Queued in this order: two unrelated commands, the child, another unrelated one, the
    // parent (its reaction to the child), the parent's other child.
    committer.command(others[0]!);
    committer.command(others[1]!);
    committer.command(a);
    const later = stored(12);
    committer.command(later);
    committer.command(parent);
    committer.command(b);
    await turns();
    // The first batch is full at the child (3 rows): the parent joins it, and with it its other
    // queued child.
    expect(store.batches).toEqual([[10, 11, 2, 1, 3], [12]]);
  });
});
