/**
 * The PostgreSQL store encodes its batches' column arrays itself (statements.ts `columnar`), in
 * PostgreSQL's binary array format: every value comes back from the server as it went in — text
 * with quotes, backslashes, braces, commas, the word NULL, empty strings, newlines and non-ASCII;
 * numbers; booleans; nulls.
 */
import { afterAll, expect, it } from 'vitest';
import { columnar } from '../../src/store/postgres/binary-arrays.js';
import { describePg } from '../support/pg.js';
import { admin, endAdmin } from './pg-harness.js';

const TEXTS = [
  'plain',
  '',
  'NULL',
  'null',
  '{"a":"b \\"quoted\\" c"}',
  'back\\slash\\\\double',
  'brace { } , comma',
  'line\nbreak\ttab',
  'ünïcødé ✓ 𝄞',
  ' spaced ',
  '"',
  '\\',
  null,
];

describePg('PostgreSQL array parameters encoded by coco', () => {
  afterAll(endAdmin);

  it('round-trip through unnest unchanged, column by column', async () => {
    const rows = TEXTS.map((text, i) => ({
      text,
      big: i % 3 === 0 ? null : 2 ** 53 - 1 - i,
      int: i - 5,
      flag: i % 4 === 0 ? null : i % 2 === 0,
    }));
    const [texts, bigs, ints, flags] = columnar(
      rows,
      [
        ['t', 'text'],
        ['b', 'bigint'],
        ['i', 'int'],
        ['f', 'bool'],
      ],
      [(r) => r.text, (r) => r.big, (r) => r.int, (r) => r.flag],
    );
    const back = await admin().query(
      'SELECT t, b::text AS b, i, f FROM unnest($1::text[], $2::bigint[], $3::int[], $4::bool[]) WITH ORDINALITY AS u(t, b, i, f, n) ORDER BY n',
      [texts, bigs, ints, flags],
    );
    expect(back.rows).toEqual(
      rows.map((r) => ({
        t: r.text,
        b: r.big === null ? null : String(r.big),
        i: r.int,
        f: r.flag,
      })),
    );
  });

  it('number and boolean columns go in binary, extremes and nulls included', async () => {
    const bigs = [
      0,
      1,
      -1,
      2 ** 32,
      -(2 ** 32),
      2 ** 32 - 1,
      2 ** 53 - 1,
      -(2 ** 53 - 1),
      null,
      1_765_000_000_000,
    ];
    const ints = [0, -1, 2 ** 31 - 1, -(2 ** 31), null, 7, 8, 9, 10, 11];
    const flags = [true, false, null, true, false, true, false, true, false, null];
    const cols = columnar(
      bigs.map((b, i) => ({ b, i: ints[i], f: flags[i] })),
      [
        ['b', 'bigint'],
        ['i', 'int'],
        ['f', 'bool'],
      ],
      [(r) => r.b, (r) => r.i, (r) => r.f],
    );
    // Buffers: node-postgres sends them in binary format (the server's array_recv reads them).
    for (const c of cols) expect(Buffer.isBuffer(c)).toBe(true);
    const back = await admin().query(
      'SELECT b::text AS b, i, f FROM unnest($1::bigint[], $2::int[], $3::bool[]) WITH ORDINALITY AS u(b, i, f, n) ORDER BY n',
      cols,
    );
    expect(back.rows).toEqual(
      bigs.map((b, k) => ({ b: b === null ? null : String(b), i: ints[k], f: flags[k] })),
    );
  });

  it('a column with a value that does not fit its type goes as text, read by the server as before', async () => {
    // [type, value, what the server makes of the text literal: its text, or null if refused]
    const cases: [type: string, value: unknown, back: string | null][] = [
      ['bigint', 1.5, null],
      ['int', 2 ** 31, null],
      ['bigint', 2 ** 53, '{1,9007199254740992}'],
      ['bool', 1, '{t,t}'],
    ];
    for (const [type, value, back] of cases) {
      const what = `${type} ${String(value)}`;
      const first = type === 'bool' ? true : 1;
      const [col] = columnar([{ v: first }, { v: value }], [['v', type]], [(r) => r.v]);
      expect(col, what).toBe(`{${type === 'bool' ? 't' : '1'},${String(value)}}`);
      const read = admin().query<{ a: string }>(`SELECT $1::${type}[]::text AS a`, [col]);
      if (back === null) await expect(read, what).rejects.toThrow();
      else expect((await read).rows[0]?.a, what).toBe(back);
    }
  });

  it('text columns go in binary as well, as node-postgres would have encoded each string', async () => {
    // A lone surrogate becomes U+FFFD (Buffer's UTF-8 encoding, node-postgres' for a string
    // parameter); a number in a text column goes as its text; long and many values outgrow the
    // encoder's scratch buffers, and a later call is not confused by what an earlier one left.
    const long = 'x'.repeat(70_000) + 'é';
    const texts = ['a\uD800b', 'ascii then ü', long, 'plain', null];
    const many = Array.from({ length: 20_000 }, (_, i) => `row ${i} ✓`);
    for (const values of [texts, many, texts]) {
      const [col] = columnar(values, [['t', 'text']], [(v) => v]);
      expect(Buffer.isBuffer(col)).toBe(true);
      const back = await admin().query<{ t: string | null }>(
        'SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n',
        [col],
      );
      expect(back.rows.map((r) => r.t)).toEqual(
        values.map((v) => (v === null ? null : v.replace('\uD800', '\uFFFD'))),
      );
    }
    const [numbers] = columnar([1.5, 2], [['t', 'text']], [(v) => v]);
    const back = await admin().query('SELECT $1::text[] AS a', [numbers]);
    expect(back.rows).toEqual([{ a: ['1.5', '2'] }]);
  });

  it('a text with a NUL character is refused by the server, as before', async () => {
    const [col] = columnar(['a\u0000b'], [['t', 'text']], [(v) => v]);
    await expect(admin().query('SELECT $1::text[] AS a', [col])).rejects.toThrow(/0x00/);
    await expect(admin().query('SELECT $1::text AS a', ['a\u0000b'])).rejects.toThrow(/0x00/);
  });

  it('an empty batch is an empty array', async () => {
    const [empty] = columnar([], [['t', 'text']], [() => null]);
    expect(empty).toBe('{}');
    const back = await admin().query('SELECT cardinality($1::text[]) AS n', [empty]);
    expect(back.rows).toEqual([{ n: 0 }]);
  });
});
