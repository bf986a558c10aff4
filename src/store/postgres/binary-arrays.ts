/**
 * Column arrays as statement parameters in PostgreSQL's binary array format (what `array_recv`
 * reads), written by coco itself: the batch statements (statements.ts) take one array per
 * column, and node-postgres would otherwise turn every element into a quoted string passed
 * through two regular expressions (BENCHMARKS.md, issue 15).
 *
 * @module
 */

/** A column value's text (the columns hold only strings, numbers and booleans). */
const scalarText = (v: string | number | boolean): string => String(v);

/** A number or boolean as an element of an array literal (numbers as JavaScript prints them). */
const plainElement = (v: unknown): string =>
  v === null || v === undefined
    ? 'NULL'
    : v === true
      ? 't'
      : v === false
        ? 'f'
        : scalarText(v as number);

/** A column as an array literal (the form of a number column holding a value that does not fit). */
function plainArray(values: readonly unknown[]): string {
  return `{${values.map(plainElement).join(',')}}`;
}

/** How {@link columnar} writes a column's elements. */
const Kind = { Text: 0, Bigint: 1, Int: 2, Bool: 3 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];
const KINDS: Readonly<Record<string, Kind>> = {
  text: Kind.Text,
  bigint: Kind.Bigint,
  int: Kind.Int,
  bool: Kind.Bool,
};
/** Element type OIDs of the binary arrays, by kind (pg_type: text, int8, int4, bool). */
const ELEMENT_OID = [25, 20, 23, 16] as const;
const TWO_32 = 2 ** 32;
const INT4_MIN = -(2 ** 31);
const INT4_MAX = 2 ** 31 - 1;
/** Bytes of a binary array's header: dimensions, null flag, element type, length, lower bound. */
const ARRAY_HEADER = 20;
/** Bytes of a number or boolean element at most: its length, then 8 (a bigint). */
const MAX_FIXED = 12;

/**
 * Where {@link columnar} writes each column's elements (column `j` in `scratch[j]`), kept from call
 * to call and grown as needed: a batch's columns are copied out of them into one buffer of the
 * right size, so that what stays allocated per batch is its parameters' bytes.
 */
const scratch: Buffer[] = [];
const SCRATCH_BYTES = 16 * 1024;

/** `scratch[j]`, at least `need` bytes long, keeping its first `used` bytes. */
function room(j: number, used: number, need: number): Buffer {
  const old = scratch[j];
  if (old !== undefined && old.length >= need) return old;
  const grown = Buffer.allocUnsafe(Math.max(need, 2 * (old?.length ?? SCRATCH_BYTES / 2)));
  old?.copy(grown, 0, 0, used);
  scratch[j] = grown;
  return grown;
}

/** Writes `n` (an int32 or uint32) big-endian at `at`; returns the offset after it. */
function int32At(buf: Buffer, at: number, n: number): number {
  buf[at] = n >>> 24;
  buf[at + 1] = n >>> 16;
  buf[at + 2] = n >>> 8;
  buf[at + 3] = n;
  return at + 4;
}

/**
 * Writes a text element at `at` (its UTF-8 byte length, then its bytes; `buf` has room for 3 bytes
 * per UTF-16 unit); returns the offset after it. ASCII, nearly every value coco writes, is copied
 * a character at a time; anything else is encoded by `Buffer.write`, as node-postgres encodes a
 * text parameter (a lone surrogate becomes U+FFFD in both).
 */
function textAt(buf: Buffer, at: number, text: string): number {
  const first = at + 4;
  const length = text.length;
  let k = 0;
  while (k < length) {
    const c = text.charCodeAt(k);
    if (c >= 0x80) break;
    buf[first + k++] = c;
  }
  const bytes = k === length ? length : buf.write(text, first, 'utf8');
  int32At(buf, at, bytes);
  return first + bytes;
}

/**
 * Writes a number or boolean element at `at`; returns the offset after it, or -1 if the value
 * does not fit the column's type (a fraction, an unsafe integer, a string).
 */
function fixedAt(buf: Buffer, at: number, kind: Kind, v: unknown): number {
  if (kind === Kind.Bigint) {
    if (!Number.isSafeInteger(v)) return -1;
    const n = v as number;
    const high = Math.floor(n / TWO_32);
    at = int32At(buf, at, 8);
    return int32At(buf, int32At(buf, at, high), n - high * TWO_32);
  }
  if (kind === Kind.Int) {
    if (!Number.isInteger(v) || (v as number) < INT4_MIN || (v as number) > INT4_MAX) return -1;
    return int32At(buf, int32At(buf, at, 4), v as number);
  }
  if (typeof v !== 'boolean') return -1;
  at = int32At(buf, at, 1);
  buf[at] = v ? 1 : 0;
  return at + 1;
}

/**
 * Column arrays of `rows`: `pick` gives one row's values, in the order of `columns` (name and SQL
 * type: text, bigint, int or bool), each in PostgreSQL's binary array format — what `array_recv`
 * reads: one dimension, a null flag, the element type, the length and lower bound, then each
 * element as its byte length (-1 for NULL) and its bytes (numbers big-endian, text in UTF-8).
 * node-postgres sends a Buffer parameter in binary format, so the server reads each element with
 * `textrecv`, `int8recv` and their like instead of parsing a literal (`array_in`: quotes,
 * escapes, one `int8in` call per number); and the node neither quotes nor escapes a text, nor
 * builds a string of each column that node-postgres would measure and encode again. A number or
 * boolean column with a value that does not fit its type goes as a literal (`{1,2.5,NULL}`), which
 * the server refuses as it always did; a text column's numbers go as their text.
 *
 * coco encodes the arrays itself because node-postgres turns every element, numbers included,
 * into a quoted string passed through two regular expressions — 14–16 % of a PostgreSQL node's
 * main thread (BENCHMARKS.md). One pass over the rows writes every column (issue 15).
 */
export function columnar<T>(
  rows: readonly T[],
  columns: readonly (readonly [name: string, type: string])[],
  pick: (r: T) => readonly unknown[],
): (string | Buffer)[] {
  const width = columns.length;
  const n = rows.length;
  const kind = columns.map(([name, type]) => {
    const k = KINDS[type];
    if (k === undefined)
      throw new Error(`columnar: column ${name} has no array encoding (${type})`);
    return k;
  });
  if (n === 0) return kind.map(() => '{}');
  /** Bytes written of each column (-1 once a value did not fit: a literal then). */
  const at: number[] = new Array<number>(width).fill(0);
  const nulls: boolean[] = new Array<boolean>(width).fill(false);
  for (let i = 0; i < n; i++) {
    const values = pick(rows[i]!);
    for (let j = 0; j < width; j++) {
      let p = at[j]!;
      if (p < 0) continue;
      const v = values[j];
      if (v === null || v === undefined) {
        nulls[j] = true;
        p = int32At(room(j, p, p + 4), p, -1);
      } else if (kind[j] === Kind.Text) {
        const text = typeof v === 'string' ? v : scalarText(v as number);
        p = textAt(room(j, p, p + 4 + 3 * text.length), p, text);
      } else p = fixedAt(room(j, p, p + MAX_FIXED), p, kind[j]!, v);
      at[j] = p;
    }
  }
  let size = 0;
  for (const p of at) if (p >= 0) size += ARRAY_HEADER + p;
  const buf = Buffer.allocUnsafe(size);
  const out: (string | Buffer)[] = new Array<string | Buffer>(width);
  let start = 0;
  for (let j = 0; j < width; j++) {
    const p = at[j]!;
    if (p < 0) {
      out[j] = plainArray(rows.map((r) => pick(r)[j]));
      continue;
    }
    let h = int32At(buf, start, 1); // dimensions
    h = int32At(buf, h, nulls[j] ? 1 : 0);
    h = int32At(buf, h, ELEMENT_OID[kind[j]!]);
    h = int32At(buf, h, n);
    h = int32At(buf, h, 1); // lower bound
    scratch[j]!.copy(buf, h, 0, p);
    out[j] = buf.subarray(start, h + p);
    start = h + p;
  }
  return out;
}

/** Ids as a `bigint[]` parameter (binary, see {@link columnar}). */
export function bigintArray(ids: readonly number[]): string | Buffer {
  return columnar(ids, [['id', 'bigint']], (id) => [id])[0]!;
}
