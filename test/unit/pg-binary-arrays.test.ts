/**
 * The PostgreSQL store's column arrays (store/postgres/binary-arrays.ts) are, byte for byte,
 * PostgreSQL's binary array format as a plain reference encoder below writes it — whatever the
 * values, however much a call's buffer has to grow — and a call's arrays stay as they were
 * after later calls (the apply connection sends them without copying, bind.ts). No server: the
 * server's reading of the format is covered by test/store-conformance/postgres-arrays.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { bigintArray, columnar } from '../../src/store/postgres/binary-arrays.js';

/** Element type OIDs (pg_type). */
const OID: Record<string, number> = { text: 25, bigint: 20, int: 23, bool: 16 };

/** One column's binary array, the obvious way (a Buffer per element, concatenated). */
function reference(type: string, values: readonly unknown[]): Buffer {
  const elements = values.map((v) => {
    if (v === null || v === undefined) return int32(-1);
    let bytes: Buffer;
    if (type === 'text') bytes = Buffer.from(String(v as string | number), 'utf8');
    else if (type === 'bigint') {
      bytes = Buffer.alloc(8);
      bytes.writeBigInt64BE(BigInt(v as number));
    } else if (type === 'int') bytes = int32(v as number);
    else bytes = Buffer.from([v === true ? 1 : 0]);
    return Buffer.concat([int32(bytes.length), bytes]);
  });
  const nulls = values.some((v) => v === null || v === undefined) ? 1 : 0;
  const header = [1, nulls, OID[type]!, values.length, 1].map(int32);
  return Buffer.concat([...header, ...elements]);
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

type Row = readonly unknown[];

/** `columnar` over positional rows, with each column's reference array. */
function encode(types: readonly string[], rows: readonly Row[]) {
  const columns = types.map((t, j) => [`c${j}`, t] as const);
  const got = columnar(
    rows,
    columns,
    types.map((_, j) => (r: Row) => r[j]),
  );
  const want = types.map((t, j) =>
    reference(
      t,
      rows.map((r) => r[j]),
    ),
  );
  return { got, want };
}

const TEXTS = [
  '',
  'a',
  'status',
  'x'.repeat(31),
  'y'.repeat(32),
  'z'.repeat(5_000),
  'ü€😀 short',
  `${'long ü€😀 '.repeat(10)}`,
  'a\uD800b',
  `${'w'.repeat(40)}\uDC00`,
  '{"json":"with \\"quotes\\""}',
  null,
  undefined,
];

describe('the PostgreSQL store’s column arrays', () => {
  it('are the binary array format, byte for byte, for every kind of column and value', () => {
    const types = ['text', 'bigint', 'int', 'bool', 'text'];
    const bigs = [
      0,
      1,
      -1,
      2 ** 32,
      -(2 ** 32),
      2 ** 53 - 1,
      -(2 ** 53 - 1),
      null,
      1_765_000_000_000,
    ];
    const ints = [0, -1, 2 ** 31 - 1, -(2 ** 31), null, 7];
    const flags = [true, false, null];
    const rows: Row[] = Array.from({ length: 40 }, (_, i) => [
      TEXTS[i % TEXTS.length],
      bigs[i % bigs.length],
      ints[i % ints.length],
      flags[i % flags.length],
      i % 5 === 0 ? 1.5 : `row ${i}`, // a text column's number goes as its text
    ]); // prettier-ignore
    const { got, want } = encode(types, rows);
    for (let j = 0; j < types.length; j++) expect(got[j]).toEqual(want[j]);
  });

  it('are right when the call’s buffer grows past its estimate, and stay as they were after later calls', () => {
    const types = ['bigint', 'text', 'bool'];
    const small: Row[] = Array.from({ length: 50 }, (_, i) => [i, 's', true]);
    // Same columns (the estimate is per column list, so reuse one list), then far longer texts.
    const columns = types.map((t, j) => [`c${j}`, t] as const);
    const getters = types.map((_, j) => (r: Row) => r[j]);
    const first = columnar(small, columns, getters);
    const firstCopy = first.map((c) => Buffer.from(c as Buffer));
    const long: Row[] = Array.from({ length: 300 }, (_, i) => [i, `${'ü'.repeat(i)}${i}`, null]);
    const second = columnar(long, columns, getters);
    types.forEach((t, j) => {
      expect(second[j]).toEqual(
        reference(
          t,
          long.map((r) => r[j]),
        ),
      );
      expect(first[j]).toEqual(firstCopy[j]);
    });
    const third = columnar(small, columns, getters);
    expect(third.map((c) => Buffer.from(c as Buffer))).toEqual(firstCopy);
    expect(second.map((c) => Buffer.from(c as Buffer))).toEqual(
      types.map((t, j) =>
        reference(
          t,
          long.map((r) => r[j]),
        ),
      ),
    );
  });

  it('go as a literal for a number or boolean column with a value that does not fit its type', () => {
    const cases: [type: string, values: unknown[], literal: string][] = [
      ['bigint', [1, 1.5, null], '{1,1.5,NULL}'],
      ['int', [1, 2 ** 31], '{1,2147483648}'],
      ['bigint', [1, 2 ** 53], '{1,9007199254740992}'],
      ['bool', [true, 1, false], '{t,1,f}'],
    ];
    for (const [type, values, literal] of cases) {
      // A literal column between two binary ones: the others are unaffected.
      const rows = values.map((v, i) => [`t${i}`, v, i] as Row);
      const got = columnar(
        rows,
        [['t', 'text'], ['v', type], ['i', 'int']],
        [(r) => r[0], (r) => r[1], (r) => r[2]],
      ); // prettier-ignore
      expect(got[1]).toBe(literal);
      expect(got[0]).toEqual(
        reference(
          'text',
          rows.map((r) => r[0]),
        ),
      );
      expect(got[2]).toEqual(
        reference(
          'int',
          rows.map((r) => r[2]),
        ),
      );
    }
  });

  it('are empty literals for no rows, and refuse an unknown type or a wrong number of values', () => {
    expect(columnar([], [['t', 'text']], [() => null])).toEqual(['{}']);
    expect(() => columnar([1], [['t', 'json']], [(v) => v])).toThrow(/no array encoding/);
    expect(() => columnar([1], [['t', 'text']], [])).toThrow(/0 values for 1 columns/);
  });

  it('encode ids as a bigint array', () => {
    expect(bigintArray([3, 1, 2 ** 40])).toEqual(reference('bigint', [3, 1, 2 ** 40]));
  });
});

describe('the column arrays’ buffer', () => {
  it('is sized within bounds after a call whose rows were few and large', () => {
    // One row of 1 MB, then 100,000 rows of one character: sized by bytes per row alone, the
    // second call's buffer would be ~100 GB (more than a Buffer can hold: a RangeError).
    const columns = [['t', 'text']] as const;
    const getters = [(v: string) => v];
    columnar(['x'.repeat(1_000_000)], columns, getters);
    const many = Array.from({ length: 100_000 }, () => 'a');
    const [col] = columnar(many, columns, getters);
    expect(col).toEqual(reference('text', many));
    expect((col as Buffer).buffer.byteLength).toBeLessThanOrEqual(8 * 1024 * 1024);
  });
});
