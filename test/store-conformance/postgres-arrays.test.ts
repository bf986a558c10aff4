/**
 * The PostgreSQL store encodes its batches' column arrays itself (statements.ts `columnar`): every
 * value comes back from the server as it went in — text with quotes, backslashes, braces, commas,
 * the word NULL, empty strings, newlines and non-ASCII; numbers; booleans; nulls.
 */
import { afterAll, expect, it } from 'vitest';
import { columnar } from '../../src/store/postgres/statements.js';
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
      (r) => [r.text, r.big, r.int, r.flag],
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

  it('an empty batch is an empty array', async () => {
    const [empty] = columnar([], [['t', 'text']], () => []);
    expect(empty).toBe('{}');
    const back = await admin().query('SELECT cardinality($1::text[]) AS n', [empty]);
    expect(back.rows).toEqual([{ n: 0 }]);
  });
});
