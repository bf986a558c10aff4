/**
 * The fast row parsers must accept exactly what the zod parsers accept, with the same output:
 * checked on valid rows and on rows with one column replaced by an arbitrary value.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  fastCommandRow,
  fastTaskRow,
  parseCommandRowFast,
  parseTaskRowFast,
} from '../../../src/store/rows/parse-fast.js';
import {
  COMMAND_EMBEDDED_ORDER,
  COMMAND_JSON_AT,
  TASK_EMBEDDED_ORDER,
  TASK_JSON_AT,
  parseCommandRow,
  parseTaskRow,
} from '../../../src/store/rows/parse.js';

const validCommand = (): unknown[] => [
  7, 'disk.copy', 2, '{"disk":"d1"}', 'waiting', 3, 1, 4, 0, 'serial', 'fail-fast', 'none',
  '{"code":"E","message":"m","extra":1}', '{"r":[1,2]}',
  '[3,2,1,1,0,5,1,1,0,0,null,{"k":"v"},2,1700000000000,{"code":"L","message":"last"},null]',
  'key-1', 1, 2, null, 0, null, null, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
]; // prettier-ignore
const validTask = (): unknown[] => [
  7,
  0,
  -1,
  'host-1',
  'copy',
  '{"a":1}',
  'failed',
  null,
  '{"code":"TASK_FAILED","message":"x"}',
  5,
  1,
  1,
  2,
];

const oddValue = fc.oneof(
  fc.constant(null),
  fc.integer(),
  fc.double(),
  fc.string(),
  fc.constantFrom(
    'pending',
    'bogus',
    'none',
    'serial',
    '{}',
    '[]',
    '{"code":1}',
    '[1,2]',
    'not json',
    '1.5',
    'true',
  ),
  fc.constant(1.5),
  fc.constant(2 ** 60),
  fc.constant(undefined),
  fc.constant(true),
);

function agree(
  fast: (r: unknown) => unknown,
  slow: (r: unknown) => { ok: boolean; value?: unknown },
  row: unknown[],
): void {
  const f = fast(row);
  const s = slow(row);
  if (f === null) return; // the fast path may decline anything; zod decides then
  expect(s.ok).toBe(true);
  expect(f).toEqual(s.value);
}

describe('fast row parsers', () => {
  it('parse the reference rows like zod', () => {
    expect(fastCommandRow(validCommand())).not.toBeNull();
    expect(fastTaskRow(validTask())).not.toBeNull();
    agree(fastCommandRow, parseCommandRow, validCommand());
    agree(fastTaskRow, parseTaskRow, validTask());
  });

  it('commands: never accept a row zod refuses, and agree on the record (property)', () => {
    fc.assert(
      fc.property(fc.nat(22), oddValue, (column, value) => {
        const row = validCommand();
        row[column] = value;
        agree(fastCommandRow, parseCommandRow, row);
      }),
      { numRuns: 2000 },
    );
  });

  it('tasks: never accept a row zod refuses, and agree on the record (property)', () => {
    fc.assert(
      fc.property(fc.nat(12), oddValue, (column, value) => {
        const row = validTask();
        row[column] = value;
        agree(fastTaskRow, parseTaskRow, row);
      }),
      { numRuns: 2000 },
    );
  });

  it('commands: odd values inside the state column are handled alike (property)', () => {
    fc.assert(
      fc.property(fc.nat(15), oddValue, (index, value) => {
        const row = validCommand();
        const state = JSON.parse(row[14] as string) as unknown[];
        state[index] = value;
        row[14] = JSON.stringify(state);
        agree(fastCommandRow, parseCommandRow, row);
      }),
      { numRuns: 2000 },
    );
  });

  it('embedded rows (JSON columns as values) parse as the rows read plainly, corrupt ones with the same message (property)', () => {
    /**
     * The row as a bulk read's JSON form hands it over (its values in the embedded order), or
     * null where that form fails (a JSON column that is neither NULL nor strict JSON text: the
     * plain form is read then).
     */
    const embed = (
      row: unknown[],
      at: readonly number[],
      order: readonly number[],
    ): unknown[] | null => {
      const out = [...row];
      for (const i of at) {
        const v = out[i];
        if (v === null) continue;
        if (typeof v !== 'string') return null;
        try {
          out[i] = JSON.parse(v) as unknown;
        } catch {
          return null;
        }
      }
      return order.map((column) => out[column]);
    };
    const same = (embedded: unknown[] | null, plain: unknown[], task: boolean): void => {
      if (embedded === null) return;
      const e = task ? parseTaskRowFast(embedded, true) : parseCommandRowFast(embedded, true);
      const p = task ? parseTaskRow(plain) : parseCommandRow(plain);
      expect(e).toEqual(p);
    };
    fc.assert(
      fc.property(fc.nat(22), oddValue, fc.nat(15), oddValue, (column, value, index, inState) => {
        const row = validCommand();
        const state = JSON.parse(row[14] as string) as unknown[];
        state[index] = inState;
        row[14] = JSON.stringify(state);
        row[column] = value;
        same(embed(row, COMMAND_JSON_AT, COMMAND_EMBEDDED_ORDER), row, false);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.nat(12), oddValue, (column, value) => {
        const row = validTask();
        row[column] = value;
        same(embed(row, TASK_JSON_AT, TASK_EMBEDDED_ORDER), row, true);
      }),
      { numRuns: 2000 },
    );
  });
});
