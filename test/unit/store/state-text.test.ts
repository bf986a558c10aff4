/**
 * The `state` texts of the stores' command rows (rows/state-text.ts): taken from a cache of the
 * texts made last, always the text `commandState` makes, and sent to the writer thread once per
 * operation.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { commandState } from '../../../src/store/rows/parse.js';
import type { CommandUpdate } from '../../../src/store/port.js';
import { batchOps } from '../../../src/store/sqlite/operations.js';
import { COMMAND_STATE_FIELDS } from '../../../src/store/rows/columns.js';
import {
  STATE_FIELDS_KEYED,
  STATE_FIELDS_UNCACHED,
  stateText,
  stateTextStats,
} from '../../../src/store/rows/state-text.js';
import { encodeOps } from '../../../src/store/sqlite/writer.js';
import { batch, command, commandUpdate } from '../../store-conformance/fixtures.js';

/** A command's update with the state fields given. */
function update(state: Partial<CommandUpdate>): CommandUpdate {
  return { ...commandUpdate(command(1)), ...state };
}

/** Small numbers, so that states repeat and share the cache's slots. */
const small = fc.integer({ min: 0, max: 3 });
const stateArb = fc.record({
  expectedTasks: small,
  expectedChildren: small,
  taskCount: small,
  childCount: small,
  undoCount: small,
  journalSeq: small,
  stage: small,
  stageDone: fc.boolean(),
  chainDone: fc.boolean(),
  cancelRequested: fc.boolean(),
  attempts: small,
  priority: fc.oneof(small, fc.constant(-0), fc.constant(2.5), fc.constant(NaN)),
  compensationError: fc.option(fc.constant({ code: 'X', message: 'm' })),
  data: fc.option(fc.constant({ d: 1 })),
  nextAttemptAt: fc.option(fc.constant(1_000)),
  lastError: fc.option(fc.constant({ code: 'Y', message: 'n' })),
  deadlineAt: fc.option(fc.constant(2_000)),
  queuedSince: fc.option(fc.constant(3_000)),
});

describe('sqlite state texts', () => {
  it('know every field of the state: each is a key of the cache or keeps a state out of it', () => {
    // A field added to the state and to neither list would be left out of the key: two states
    // differing in it only would share one text.
    expect([...STATE_FIELDS_KEYED, ...STATE_FIELDS_UNCACHED].sort()).toEqual(
      [...COMMAND_STATE_FIELDS].sort(),
    );
  });

  it('are always the text commandState makes, however states follow each other', () => {
    fc.assert(
      fc.property(fc.array(stateArb, { minLength: 1, maxLength: 600 }), (states) => {
        for (const s of states) expect(stateText(update(s))).toBe(commandState(update(s)));
      }),
      { numRuns: 50 },
    );
  });

  it('two states that differ in one field only never share a text', () => {
    // 100 values of one field: many of them fall into the same one of the cache's slots.
    const numbers = [
      'expectedTasks', 'expectedChildren', 'taskCount', 'childCount', 'undoCount', 'journalSeq',
      'stage', 'attempts', 'priority',
    ] as const; // prettier-ignore
    const flags = ['stageDone', 'chainDone', 'cancelRequested'] as const;
    for (let pass = 0; pass < 2; pass++) {
      for (const field of numbers)
        for (let v = 0; v < 100; v++) {
          const u = update({ [field]: v, stageDone: v % 2 === 0 });
          expect(stateText(u)).toBe(commandState(u));
        }
      for (const field of flags)
        for (let v = 0; v < 100; v++) {
          const u = update({ [field]: v % 2 === 1, stage: v >> 1 });
          expect(stateText(u)).toBe(commandState(u));
        }
    }
  });

  it('a state made before is taken from the cache, one with an error or a time is not', () => {
    const u = update({ stage: 7, childCount: 3, journalSeq: 3 });
    stateText(u);
    const before = { ...stateTextStats };
    expect(stateText(update({ stage: 7, childCount: 3, journalSeq: 3 }))).toBe(commandState(u));
    expect(stateTextStats.hits).toBe(before.hits + 1);
    const timed = update({ stage: 7, childCount: 3, journalSeq: 3, deadlineAt: 5 });
    expect(stateText(timed)).toBe(commandState(timed));
    expect(stateTextStats.uncached).toBe(before.uncached + 1);
    expect(stateTextStats.hits).toBe(before.hits + 1);
  });

  it('goes to the writer thread once per operation, however many rows hold it', () => {
    const ids = [1, 2, 3, 4, 5];
    const [op] = encodeOps(batchOps(batch({ commandInserts: ids.map((id) => command(id)) })), []);
    const strings = op?.[6] as string[];
    const state = commandState(command(1));
    expect(state.length).toBeGreaterThan(24);
    expect(strings.filter((s) => s === state)).toHaveLength(1);
  });

  it('a state of its own (one with a time) goes with its row', () => {
    const ids = [1, 2, 3];
    const timed = (id: number) => command(id, { deadlineAt: 5_000 });
    const [op] = encodeOps(batchOps(batch({ commandInserts: ids.map(timed) })), []);
    const strings = op?.[6] as string[];
    expect(strings.filter((s) => s === commandState(timed(1)))).toHaveLength(ids.length);
  });
});
