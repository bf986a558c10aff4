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
/**
 * Bytes of a number or boolean element at most, by kind: its length, then 8, 4 or 1 bytes (a
 * text's room is reserved text by text, 3 bytes per UTF-16 unit).
 */
const MAX_FIXED = [0, 12, 8, 5] as const;

/** What {@link out} is between calls (no batch's bytes kept alive by this module). */
const EMPTY = Buffer.alloc(0);

/**
 * The buffer {@link columnar} is writing its columns into, one after the other (module state: a
 * call runs to its end without yielding). Fresh for each call, and handed out whole: the
 * columns returned are slices of it, so nothing is copied out of it, and it is never written
 * again — the apply connection sends those slices as they are (bind.ts), when the socket gets to
 * them.
 */
let out: Buffer = EMPTY;

/** `out`, with room for `need` bytes, keeping its first `used` (a copy: rare, see {@link columnar}). */
function room(used: number, need: number): Buffer {
  if (out.length >= need) return out;
  const grown = Buffer.allocUnsafe(Math.max(need, out.length + (out.length >>> 1)));
  out.copy(grown, 0, 0, used);
  out = grown;
  return grown;
}

/**
 * Bytes per row of the last call for each list of columns (a statement's), from which a call
 * sizes {@link out}, with a margin: a batch's rows are much like the last batch's, so `out`
 * seldom grows.
 */
const bytesPerRow = new WeakMap<object, number>();
/** Bytes per row, per column, before a statement's first call. */
const FIRST_GUESS = 16;
/** A call's margin over its estimate: an eighth. */
const MARGIN = 1.125;
/**
 * The most a call's buffer starts at, whatever its estimate: bytes per row from a batch of a few
 * large rows would size a later batch of many small ones far too large (up to more than a Buffer
 * holds). 4 MB is ~25× a one-task batch's largest statement (650 command inserts: 169 KB); a call
 * that needs more grows its buffer, copying what it wrote.
 */
const START_MAX = 4 * 1024 * 1024;

/** Writes `n` (an int32 or uint32) big-endian at `at`; returns the offset after it. */
function int32At(buf: Buffer, at: number, n: number): number {
  buf[at] = n >>> 24;
  buf[at + 1] = n >>> 16;
  buf[at + 2] = n >>> 8;
  buf[at + 3] = n;
  return at + 4;
}

/**
 * Texts of at least this many UTF-16 units are encoded by `Buffer.write` (a native call: ~60 ns
 * whatever the length up to 40 characters), shorter ones a character at a time (~2.3 ns a
 * character: 37 ns at 12, 73 ns at 32). Measured on Node 20; the two cross at 28–32 characters.
 */
const NATIVE_TEXT = 32;

/**
 * Writes a text element at `at` (its UTF-8 byte length, then its bytes; `buf` has room for 3 bytes
 * per UTF-16 unit); returns the offset after it. A short ASCII text, nearly every short value
 * coco writes, is copied a character at a time; anything else is encoded by `Buffer.write`, as
 * node-postgres encodes a text parameter (a lone surrogate becomes U+FFFD in both).
 */
function textAt(buf: Buffer, at: number, text: string): number {
  const first = at + 4;
  const length = text.length;
  let k = 0;
  if (length < NATIVE_TEXT)
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

/** Writes a binary array's header at `at`: one dimension of `n` elements from 1. */
function headerAt(buf: Buffer, at: number, nulls: boolean, kind: Kind, n: number): void {
  at = int32At(buf, at, 1); // dimensions
  at = int32At(buf, at, nulls ? 1 : 0);
  at = int32At(buf, at, ELEMENT_OID[kind]);
  at = int32At(buf, at, n);
  int32At(buf, at, 1); // lower bound
}

/** Writes a text column as a binary array at `start` in {@link out}; returns the offset after it. */
function textColumn<T>(rows: readonly T[], get: (r: T) => unknown, start: number): number {
  let buf = room(start, start + ARRAY_HEADER);
  let at = start + ARRAY_HEADER;
  let nulls = false;
  for (let i = 0; i < rows.length; i++) {
    const v = get(rows[i]!);
    if (v === null || v === undefined) {
      if (at + 4 > buf.length) buf = room(at, at + 4);
      at = int32At(buf, at, -1);
      nulls = true;
      continue;
    }
    const text = typeof v === 'string' ? v : scalarText(v as number);
    const need = at + 4 + 3 * text.length;
    if (need > buf.length) buf = room(at, need);
    at = textAt(buf, at, text);
  }
  headerAt(buf, start, nulls, Kind.Text, rows.length);
  return at;
}

/**
 * Writes a number or boolean column as a binary array at `start` in {@link out}; returns the
 * offset after it, or -1 if a value does not fit the column's type.
 */
function fixedColumn<T>(
  rows: readonly T[],
  get: (r: T) => unknown,
  kind: Kind,
  start: number,
): number {
  const n = rows.length;
  const buf = room(start, start + ARRAY_HEADER + MAX_FIXED[kind] * n);
  let at = start + ARRAY_HEADER;
  let nulls = false;
  for (let i = 0; i < n; i++) {
    const v = get(rows[i]!);
    if (v === null || v === undefined) {
      at = int32At(buf, at, -1);
      nulls = true;
    } else if ((at = fixedAt(buf, at, kind, v)) < 0) return -1;
  }
  headerAt(buf, start, nulls, kind, n);
  return at;
}

/**
 * Column arrays of `rows`: `values` gives each column's value of a row, in the order of `columns`
 * (name and SQL type: text, bigint, int or bool), each array in PostgreSQL's binary array format —
 * what `array_recv` reads: one dimension, a null flag, the element type, the length and lower
 * bound, then each element as its byte length (-1 for NULL) and its bytes (numbers big-endian,
 * text in UTF-8). node-postgres sends a Buffer parameter in binary format, so the server reads
 * each element with `textrecv`, `int8recv` and their like instead of parsing a literal
 * (`array_in`: quotes, escapes, one `int8in` call per number); and the node neither quotes nor
 * escapes a text, nor builds a string of each column that node-postgres would measure and encode
 * again. A number or boolean column with a value that does not fit its type goes as a literal
 * (`{1,2.5,NULL}`), which the server refuses as it always did; a text column's numbers go as
 * their text.
 *
 * coco encodes the arrays itself because node-postgres turns every element, numbers included,
 * into a quoted string passed through two regular expressions — 14–16 % of a PostgreSQL node's
 * main thread (BENCHMARKS.md, issue 15). The columns are written one after the other into one
 * fresh buffer, sized from the statement's last call ({@link bytesPerRow}), and returned as
 * slices of it: no array of values per row, and no copy out of scratch buffers (−16 % of the
 * instructions of a one-task batch's parameters and Binds, 2,600 rows: BENCHMARKS.md, stop 28).
 */
export function columnar<T>(
  rows: readonly T[],
  columns: readonly (readonly [name: string, type: string])[],
  values: readonly ((r: T) => unknown)[],
): (string | Buffer)[] {
  const width = columns.length;
  const n = rows.length;
  if (values.length !== width)
    throw new Error(`columnar: ${values.length} values for ${width} columns`);
  const kind = columns.map(([name, type]) => {
    const k = KINDS[type];
    if (k === undefined)
      throw new Error(`columnar: column ${name} has no array encoding (${type})`);
    return k;
  });
  if (n === 0) return kind.map(() => '{}');
  const perRow = bytesPerRow.get(columns) ?? FIRST_GUESS * width;
  out = Buffer.allocUnsafe(
    Math.min(Math.ceil(MARGIN * perRow * n) + ARRAY_HEADER * width, START_MAX),
  );
  /** Where each column starts in `out`, and ends (-1: a literal then, in `literal`). */
  const starts: number[] = new Array<number>(width);
  const ends: number[] = new Array<number>(width);
  const literal: (string | undefined)[] = new Array<string | undefined>(width);
  let at = 0;
  for (let j = 0; j < width; j++) {
    const get = values[j]!;
    const k = kind[j]!;
    const end = k === Kind.Text ? textColumn(rows, get, at) : fixedColumn(rows, get, k, at);
    starts[j] = at;
    ends[j] = end;
    if (end < 0) literal[j] = plainArray(rows.map(get));
    else at = end;
  }
  const buf = out;
  out = EMPTY;
  bytesPerRow.set(columns, at / n);
  const result: (string | Buffer)[] = new Array<string | Buffer>(width);
  for (let j = 0; j < width; j++)
    result[j] = ends[j]! < 0 ? literal[j]! : buf.subarray(starts[j], ends[j]);
  return result;
}

/** Ids as a `bigint[]` parameter (binary, see {@link columnar}). */
export function bigintArray(ids: readonly number[]): string | Buffer {
  return columnar(ids, BIGINT_ID, ONE_ID)[0]!;
}
const BIGINT_ID: readonly (readonly [string, string])[] = [['id', 'bigint']];
const ONE_ID: readonly ((id: number) => unknown)[] = [(id) => id];
