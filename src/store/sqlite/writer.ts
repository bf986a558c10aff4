/**
 * The SQLite store's writer thread. `apply` is the engine's hot path and SQLite's work is CPU:
 * run on the event loop it halves the engine's throughput on a 2-core machine. Here a worker
 * thread with its own connection runs each batch's statements in one transaction while the main
 * thread goes on building the next batch; reads stay on the main connection (WAL lets readers
 * and the writer run side by side, and a read started after `apply` resolved sees the batch).
 *
 * The worker is a small script (given as source, so it runs the same under tsx, vitest and the
 * compiled package) that only knows prepared statements by name and rows of values: the main
 * thread encodes records into columns with the same codecs the inline path binds (statements.ts).
 *
 * @module
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { whenAborted } from '../../core/clock.js';
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { ConnectionSettings } from '../../db/sqlite.js';
import { MULTI_ROWS, type MultiRowUpdate, type RowCodec, type ValueSink } from './statements.js';

/** One statement and the rows of values to run it with; `mustChange` rows must change a row. */
export type WriteOp = readonly [
  statement: string,
  rows: readonly (readonly unknown[])[],
  mustChange: boolean,
];

/**
 * One statement and the records to run it with, each record's values read by `codec` (the
 * engine's batches, operations.ts `batchOps`): encoded straight into the columns the thread
 * reads, with no array of values per row. `mustChange` records must change a row.
 */
export interface RecordOp<T = unknown> {
  readonly statement: string;
  readonly records: readonly T[];
  readonly codec: RowCodec<T>;
  readonly mustChange: boolean;
}

const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = ' + workerData.busyTimeoutMs);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = ' + workerData.synchronous);
db.pragma('cache_size = -65536');
const statements = {};
for (const [name, sql] of Object.entries(workerData.statements)) statements[name] = db.prepare(sql);
// Inserts stored workerData.multiRows rows per run (statements.ts MULTI_ROWS), by statement name.
const multi = {};
for (const [name, sql] of Object.entries(workerData.multi)) multi[name] = db.prepare(sql);
// Updates run as many rows per run (statements.ts MULTI_ROW_UPDATES), by statement name.
const multiUpdates = {};
for (const [name, u] of Object.entries(workerData.multiUpdates))
  multiUpdates[name] = { run: db.prepare(u.sql), keys: u.keys, exists: db.prepare(u.exists) };
const multiRows = workerData.multiRows;
// Statement runs of the last batch (measurements and tests: rows stored many per run).
let runs = 0;
const begin = db.prepare('BEGIN IMMEDIATE');
const commit = db.prepare('COMMIT');
const rollback = db.prepare('ROLLBACK');
parentPort.postMessage({ id: 0, ok: true });

// The rows of an operation sent in columns (writer.ts ColumnEncoder): [name, mustChange, width, count,
// tags, numbers, strings, others]; a value's tag says where it is (0 null, 1 a number, 2 a
// string: strings[numbers[p]], 3 anything else, in order in others).
// A reader of such an operation's values, in order: take(reader, n) returns the next n.
function reader(op) {
  return { tags: op[4], numbers: op[5], strings: op[6], others: op[7], p: 0, o: 0 };
}

function take(r, n) {
  const values = new Array(n);
  const tags = r.tags, numbers = r.numbers;
  let p = r.p;
  for (let c = 0; c < n; c++, p++) {
    const tag = tags[p];
    values[c] = tag === 1 ? numbers[p] : tag === 2 ? r.strings[numbers[p]] : tag === 0 ? null : r.others[r.o++];
  }
  r.p = p;
  return values;
}

function decode(op) {
  const width = op[2], count = op[3];
  const r = reader(op);
  const rows = new Array(count);
  for (let i = 0; i < count; i++) rows[i] = take(r, width);
  return rows;
}

// The values of rows[from .. from + multiRows) in one list. Each row must have the first one's
// width, as one-row runs check: concatenated, a short row would shift the next row's values into
// its columns.
function runArgs(name, rows, from) {
  const width = rows[from].length;
  const args = [];
  for (let j = from; j < from + multiRows; j++) {
    const row = rows[j];
    if (row.length !== width) throw new RangeError(name + ': a row of ' + row.length + ' values, not ' + width);
    for (let c = 0; c < width; c++) args.push(row[c]);
  }
  return args;
}

function missingRow(name, values) {
  const e = new Error(name + ': no such row (' + JSON.stringify(values[values.length - 1]) + ')');
  e.code = 'COCO_MISSING_ROW';
  return e;
}

// The error of a run of multiRows updates that changed fewer rows: its first row (rowAt(j), the
// j-th row's values) whose key names no row, else the count.
function shortRun(name, many, changes, rowAt) {
  for (let j = 0; j < multiRows; j++) {
    const values = rowAt(j);
    if (many.exists.get(...values.slice(values.length - many.keys)) === undefined) return missingRow(name, values);
  }
  return new Error(name + ': ' + changes + ' rows changed, not ' + multiRows);
}

function oneByOne(name, st, rows, from, to, mustChange) {
  for (let i = from; i < to; i++) {
    const values = rows[i];
    // Values as arguments, not one array: better-sqlite3 reads an array's elements through
    // V8's slow element lookup, half of its binding's work (measured, BENCHMARKS.md).
    const r = st.run(...values);
    runs++;
    if (mustChange && r.changes === 0) throw missingRow(name, values);
  }
}

// Updates in runs of multiRows rows, in the batch's order. A run never holds a key twice (one
// update per row and run, each row's own values): at a repeated key the rows before it run first.
// Every row must change its row: a run that changed fewer names its first missing row.
function updateRuns(name, st, many, rows) {
  const keys = many.keys;
  const seen = new Set();
  let from = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    // The key as text: values SQLite takes for one key (5, 5.0, '5') are one key here.
    let key = String(row[row.length - keys]);
    for (let k = row.length - keys + 1; k < row.length; k++) key += '\u0001' + String(row[k]);
    if (seen.has(key)) {
      oneByOne(name, st, rows, from, i, true);
      from = i;
      seen.clear();
    }
    seen.add(key);
    if (i + 1 - from === multiRows) {
      const r = many.run.run(...runArgs(name, rows, from));
      runs++;
      if (r.changes !== multiRows) throw shortRun(name, many, r.changes, (j) => rows[from + j]);
      from = i + 1;
      seen.clear();
    }
  }
  oneByOne(name, st, rows, from, rows.length, true);
}
// updateRuns for an operation sent in columns whose keys are all numbers (the engine's batches:
// ids and ordinals): each run's values taken straight from the columns, as inserts are, with no
// array and no key text per row; a key twice within a run is found by comparing the run's keys
// (at most multiRows rows). Returns false, having done nothing, for other keys (strings, nulls):
// the caller then decodes the rows for updateRuns.
function updateColumns(name, st, many, op) {
  const width = op[2], count = op[3], tags = op[4], numbers = op[5];
  const keys = many.keys, first = width - keys;
  for (let i = 0; i < count; i++)
    for (let c = first; c < width; c++) if (tags[i * width + c] !== 1) return false;
  const r = reader(op);
  let from = 0;
  for (let i = 0; i < count; i++) {
    const at = i * width + first;
    let twice = false;
    for (let j = from; j < i && !twice; j++) {
      twice = true;
      for (let c = 0; c < keys; c++)
        if (numbers[j * width + first + c] !== numbers[at + c]) {
          twice = false;
          break;
        }
    }
    if (twice) {
      oneByOneColumns(name, st, r, width, i - from);
      from = i;
    }
    if (i + 1 - from === multiRows) {
      const args = take(r, multiRows * width);
      const res = many.run.run(...args);
      runs++;
      if (res.changes !== multiRows)
        throw shortRun(name, many, res.changes, (j) => args.slice(j * width, (j + 1) * width));
      from = i + 1;
    }
  }
  oneByOneColumns(name, st, r, width, count - from);
  return true;
}

// The reader's next n rows, one run each; each must change its row.
function oneByOneColumns(name, st, r, width, n) {
  for (let i = 0; i < n; i++) {
    const values = take(r, width);
    const res = st.run(...values);
    runs++;
    if (res.changes === 0) throw missingRow(name, values);
  }
}

// After a failed batch, the batches already sent behind it are refused until the main thread
// resets: applying them would store a batch without the one before it.
let poisoned = false;
parentPort.on('message', (m) => {
  if (m.kind === 'close') {
    db.close();
    parentPort.postMessage({ id: m.id, ok: true });
    return;
  }
  if (m.kind === 'reset') {
    poisoned = false;
    return;
  }
  // The thread's own scheduler figures (Linux): nanoseconds on a CPU, and waiting to get one.
  if (m.kind === 'usage') {
    let usage = null;
    try {
      const [cpu, wait] = require('node:fs').readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
      usage = { cpuMs: cpu / 1e6, runQueueMs: wait / 1e6 };
    } catch {}
    parentPort.postMessage({ id: m.id, ok: true, usage });
    return;
  }
  // A counted write (retention) is not one of the engine's batches: it runs even behind a failed
  // batch, and its own failure refuses no batch.
  if (m.kind === 'count') {
    try {
      begin.run();
      const changes = m.ops.map(([name, rows]) => rows.map((values) => statements[name].run(...values).changes));
      commit.run();
      parentPort.postMessage({ id: m.id, ok: true, changes });
    } catch (error) {
      try { if (db.inTransaction) rollback.run(); } catch {}
      parentPort.postMessage({ id: m.id, ok: false, error: { message: String(error && error.message), code: error && error.code } });
    }
    return;
  }
  if (poisoned) {
    parentPort.postMessage({ id: m.id, ok: false, error: { message: 'not applied: an earlier batch failed', code: 'COCO_SKIPPED' } });
    return;
  }
  const t0 = performance.now();
  try {
    begin.run();
    runs = 0;
    for (const op of m.ops) {
      const name = op[0];
      const plain = op.length === 3;
      const mustChange = plain ? op[2] : op[1];
      const st = statements[name];
      if (!plain && !mustChange) {
        // Inserts sent in columns: each run's values taken straight from them (rows of one width).
        const width = op[2], count = op[3];
        const many = multi[name];
        const r = reader(op);
        let i = 0;
        if (many !== undefined && count >= multiRows) {
          for (; i + multiRows <= count; i += multiRows) {
            many.run(...take(r, multiRows * width));
            runs++;
          }
        }
        for (; i < count; i++) {
          st.run(...take(r, width));
          runs++;
        }
        continue;
      }
      if (!plain) {
        const many = multiUpdates[name];
        if (many !== undefined && op[3] >= multiRows && updateColumns(name, st, many, op)) continue;
      }
      const rows = plain ? op[1] : decode(op);
      let i = 0;
      if (mustChange) {
        const many = multiUpdates[name];
        if (many !== undefined && rows.length >= multiRows) {
          updateRuns(name, st, many, rows);
          continue;
        }
      } else {
        const many = multi[name];
        if (many !== undefined && rows.length >= multiRows) {
          for (; i + multiRows <= rows.length; i += multiRows) {
            many.run(...runArgs(name, rows, i));
            runs++;
          }
        }
      }
      oneByOne(name, st, rows, i, rows.length, mustChange);
    }
    const t1 = performance.now();
    commit.run();
    // The columns' buffers go back to the main thread, which fills them again for the next
    // batches (writer.ts ColumnPool): nothing here reads them any more.
    const buffers = [];
    for (const op of m.ops) if (op.length === 8) buffers.push(op[5].buffer);
    parentPort.postMessage({ id: m.id, ok: true, ms: [t1 - t0, performance.now() - t1], runs, buffers }, buffers);
  } catch (error) {
    try { if (db.inTransaction) rollback.run(); } catch {}
    poisoned = true;
    parentPort.postMessage({ id: m.id, ok: false, error: { message: String(error && error.message), code: error && error.code } });
  }
});
`;

const replySchema = z.discriminatedUnion('ok', [
  z.object({
    id: z.number(),
    ok: z.literal(true),
    ms: z.array(z.number()).optional(),
    runs: z.number().optional(),
    buffers: z.array(z.instanceof(ArrayBuffer)).optional(),
    changes: z.array(z.array(z.number())).optional(),
    usage: z.object({ cpuMs: z.number(), runQueueMs: z.number() }).nullable().optional(),
  }),
  z.object({
    id: z.number(),
    ok: z.literal(false),
    error: z.object({ message: z.string(), code: z.unknown() }),
  }),
]);

/**
 * An operation as the thread receives it: its rows in columns when they all have one width
 * (values in row order: `tags` says where each is, 0 null, 1 in `numbers` at its own position,
 * 2 in `strings` at the index `numbers` holds at its position, 3 next in `others`), else as
 * given (the thread checks the widths).
 */
export type WireOp =
  | WriteOp
  | readonly [
      statement: string,
      mustChange: boolean,
      width: number,
      count: number,
      tags: Uint8Array,
      numbers: Float64Array,
      strings: string[],
      others: unknown[],
    ];

/**
 * Strings up to this length are sent once per operation however many rows hold them (see
 * `ColumnEncoder`): long enough for the names a batch repeats (statuses, types, agents, verbs,
 * node ids), short of the JSON texts.
 */
const SHARED_STRING_LENGTH = 24;

/** Buffers of columns kept for reuse: at most this many bytes in all. */
const POOL_BYTES = 32 * 1024 * 1024;

/**
 * The columns' buffers the thread handed back after their batch, filled again for the next
 * ones. A fresh buffer per operation cost the main thread its allocation and the first touch of
 * each page (the kernel zeroes it), and the thread its release: ~190 µs per buffer of a large
 * batch's operation (up to 2 MB), ~4 µs of the main thread per fan-out parent (BENCHMARKS.md).
 * Sizes are rounded up to a power of two, so that a buffer fits the next batch's same operation.
 */
export class ColumnPool {
  readonly #free: ArrayBuffer[] = [];
  #bytes = 0;
  /** A buffer of at least `bytes` bytes: the smallest kept that fits, else a new one. */
  take(bytes: number): ArrayBuffer {
    const free = this.#free;
    let best = -1;
    for (let i = 0; i < free.length; i++) {
      const size = free[i]!.byteLength;
      if (size >= bytes && (best < 0 || size < free[best]!.byteLength)) best = i;
    }
    if (best < 0) return new ArrayBuffer(bytes <= 1024 ? 1024 : 2 ** Math.ceil(Math.log2(bytes)));
    const buffer = free[best]!;
    free[best] = free[free.length - 1]!;
    free.pop();
    this.#bytes -= buffer.byteLength;
    return buffer;
  }
  /** Keeps `buffer` for reuse (unless the pool is full). */
  give(buffer: ArrayBuffer): void {
    if (this.#bytes + buffer.byteLength > POOL_BYTES) return;
    this.#free.push(buffer);
    this.#bytes += buffer.byteLength;
  }
  /** Buffers kept (tests). */
  get size(): number {
    return this.#free.length;
  }
}

/**
 * Values in columns, in row order (see {@link WireOp}): what an operation's rows are sent as.
 * V8's structured clone of rows of values costs the thread ~1 µs per row to read back (a heap
 * number per large number, a string or a null each, an array per row): ~40 % of its work outside
 * SQLite. Columns read back at ~0.3 µs per row, the numbers and tags as one copy each (their
 * buffers are moved, not copied: added to `transfer`). Records are encoded here straight from
 * their codec ({@link RecordOp}), with no array of values per row.
 */
class ColumnEncoder implements ValueSink {
  readonly tags: Uint8Array<ArrayBuffer>;
  readonly numbers: Float64Array<ArrayBuffer>;
  readonly strings: string[] = [];
  readonly others: unknown[] = [];
  /**
   * Short strings already in `strings`, by value: a status, a type, an agent or a verb repeats
   * from row to row and goes once per operation. Each string sent costs the thread an allocation
   * to read back (and its collection): the writer thread ran 7–9 % fewer instructions per
   * fan-out parent and chain with them shared (callgrind, BENCHMARKS.md). Longer strings (JSON
   * texts) rarely repeat: looking them up would hash each whole text for nothing — unless the
   * codec says a text repeats (`addShared`: a command's cached `state` text, rows/state-text.ts).
   */
  readonly #short = new Map<string, number>();
  /**
   * Per column (a position modulo the row's width), the shared string it held last and that
   * string's index in `strings`: a column mostly repeats the row before's (a batch's statuses,
   * types, agents, verbs, a command's cached `state`), so most strings are found by one `===`
   * (a pointer compare for the same string object) instead of a probe of {@link #short} — those
   * probes were a third of the main thread's Map operations per chain (~80 of ~250).
   */
  readonly #lastText: (string | null)[];
  readonly #lastAt: number[];
  readonly #width: number;
  /** The next value's position. */
  p = 0;
  /**
   * Room for `values` values of rows `width` wide, in one buffer (the numbers, then the tags)
   * taken from `pool`, or a new one. A reused buffer's tags are zeroed: a null adds no tag.
   */
  constructor(values: number, width: number, pool?: ColumnPool) {
    const buffer = pool ? pool.take(9 * values) : new ArrayBuffer(9 * values);
    this.numbers = new Float64Array(buffer, 0, values);
    this.tags = new Uint8Array(buffer, 8 * values, values);
    if (pool) this.tags.fill(0);
    this.#width = width > 0 ? width : 1;
    this.#lastText = new Array<string | null>(this.#width).fill(null);
    this.#lastAt = new Array<number>(this.#width).fill(0);
  }
  add(value: unknown): void {
    const p = this.p++;
    if (typeof value === 'number') {
      this.tags[p] = 1;
      this.numbers[p] = value;
    } else if (typeof value === 'string') {
      if (value.length <= SHARED_STRING_LENGTH) this.#share(p, value);
      else {
        this.tags[p] = 2;
        this.numbers[p] = this.strings.push(value) - 1;
      }
    } else if (value !== null) {
      // A position past the end (a codec adding more than its width) is caught by the caller.
      this.tags[p] = 3;
      this.others.push(value);
    }
  }
  addShared(text: string): void {
    this.#share(this.p++, text);
  }
  /** Position `p` holds `text`, put in `strings` once per operation. */
  #share(p: number, text: string): void {
    this.tags[p] = 2;
    const column = p % this.#width;
    let at: number | undefined;
    if (this.#lastText[column] === text) at = this.#lastAt[column]!;
    else {
      at = this.#short.get(text);
      if (at === undefined) {
        at = this.strings.push(text) - 1;
        this.#short.set(text, at);
      }
      this.#lastText[column] = text;
      this.#lastAt[column] = at;
    }
    this.numbers[p] = at;
  }
  /** The operation as sent; its buffers added to `transfer`. */
  wire(
    statement: string,
    mustChange: boolean,
    width: number,
    count: number,
    transfer: ArrayBuffer[],
  ): WireOp {
    transfer.push(this.numbers.buffer);
    return [
      statement,
      mustChange,
      width,
      count,
      this.tags,
      this.numbers,
      this.strings,
      this.others,
    ];
  }
}

/** `op` in columns (when its rows all have one width; else as given: the thread checks them). */
function encodeRows(op: WriteOp, transfer: ArrayBuffer[], pool?: ColumnPool): WireOp {
  const [statement, rows, mustChange] = op;
  const width = rows[0]?.length ?? 0;
  for (const row of rows) if (row.length !== width) return op;
  const out = new ColumnEncoder(rows.length * width, width, pool);
  for (const row of rows) for (let c = 0; c < width; c++) out.add(row[c]);
  return out.wire(statement, mustChange, width, rows.length, transfer);
}

/**
 * `op`'s records in columns, each record's values added by its codec. A codec adding other than
 * its width throws (concatenated, a short row would shift the next row's values into its
 * columns).
 */
function encodeRecords(op: RecordOp, transfer: ArrayBuffer[], pool?: ColumnPool): WireOp {
  const { statement, records, codec, mustChange } = op;
  const width = codec.width;
  const out = new ColumnEncoder(records.length * width, width, pool);
  for (let i = 0; i < records.length; i++) {
    codec.write(records[i], out);
    if (out.p !== (i + 1) * width)
      throw new RangeError(`${statement}: a row of ${out.p - i * width} values, not ${width}`);
  }
  return out.wire(statement, mustChange, width, records.length, transfer);
}

function isRecordOp(op: WriteOp | RecordOp): op is RecordOp {
  return !Array.isArray(op);
}

/**
 * Operations as the thread receives them (see {@link WireOp}); the buffers to move are added to
 * `transfer`, taken from `pool` when given. Exported for tests.
 */
export function encodeOps(
  ops: readonly (WriteOp | RecordOp)[],
  transfer: ArrayBuffer[],
  pool?: ColumnPool,
): WireOp[] {
  return ops.map((op) =>
    isRecordOp(op) ? encodeRecords(op, transfer, pool) : encodeRows(op, transfer, pool),
  );
}

/** A thread's time on a CPU and waiting for one (run queue), from Linux's schedstat. */
export interface ThreadUsage {
  readonly cpuMs: number;
  readonly runQueueMs: number;
}

/** An error that happened in the writer thread, as the store maps it. */
export class WriterError extends Error {
  readonly code: unknown;
  constructor(message: string, code: unknown) {
    super(message);
    this.code = code;
  }
}

/** The main thread's side of the writer thread. */
export class SqliteWriter {
  readonly #settings: ConnectionSettings;
  readonly #statements: Readonly<Record<string, string>>;
  readonly #multi: Readonly<Record<string, string>>;
  readonly #multiUpdates: Readonly<Record<string, MultiRowUpdate>>;
  #worker: Worker | null = null;
  #nextId = 1;
  /**
   * Time the thread spent running statements and committing; `runs`: the statement runs of the
   * last batch applied (rows are stored many per run, {@link MULTI_ROWS}), `totalRuns` those of
   * every batch applied.
   */
  readonly stats = { statementsMs: 0, commitMs: 0, runs: 0, totalRuns: 0 };
  /** The columns' buffers handed back by the thread, for the next batches. */
  readonly #pool = new ColumnPool();
  /** Buffers handed back and not taken again yet (tests). */
  get pooledBuffers(): number {
    return this.#pool.size;
  }
  /** A batch failed; the thread refuses batches until it is told to reset. */
  #poisoned = false;
  readonly #pending = new Map<
    number,
    {
      resolve(changes?: number[][], usage?: ThreadUsage | null): void;
      reject(e: Error): void;
      /** A counted write: its failure does not stand for a failed batch. */
      readonly counted?: boolean;
    }
  >();

  /**
   * @param statements the SQL of each operation, by name
   * @param multi for some inserts (by operation name), the same insert of {@link MULTI_ROWS} rows
   *   (statements.ts `MULTI_ROW_SQL`): a batch's rows of that insert are stored that many per run
   * @param multiUpdates for some updates (by operation name), the same update of
   *   {@link MULTI_ROWS} rows (statements.ts `MULTI_ROW_UPDATES`): a batch's rows of that update
   *   run that many per run, each still required to change its row
   */
  constructor(
    settings: ConnectionSettings,
    statements: Readonly<Record<string, string>>,
    multi: Readonly<Record<string, string>> = {},
    multiUpdates: Readonly<Record<string, MultiRowUpdate>> = {},
  ) {
    this.#settings = settings;
    this.#statements = statements;
    this.#multi = multi;
    this.#multiUpdates = multiUpdates;
  }

  /**
   * Starts the thread (if it is not running) and resolves once its connection and statements
   * are ready, so the first batch does not pay for a cold start.
   */
  start(): Promise<void> {
    if (this.#worker) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(0, { resolve: () => resolve(), reject });
      this.#worker = this.#spawn();
      this.#worker.ref();
    });
  }

  #spawn(): Worker {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // The script is plain CommonJS: the parent's flags (a loader, --input-type=module) must
      // not change how it is read. COCO_WRITER_CPU_PROF (a folder) profiles the thread, for
      // measurements (BENCHMARKS.md): the parent's --cpu-prof does not reach it.
      execArgv: process.env.COCO_WRITER_CPU_PROF
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.COCO_WRITER_CPU_PROF}`]
        : [],
      workerData: {
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        path: this.#settings.path,
        busyTimeoutMs: this.#settings.busyTimeoutMs,
        synchronous: this.#settings.synchronous,
        statements: this.#statements,
        multi: this.#multi,
        multiUpdates: this.#multiUpdates,
        multiRows: MULTI_ROWS,
      },
    });
    worker.unref();
    worker.on('message', (message: unknown) => {
      const reply = replySchema.safeParse(message);
      if (!reply.success) return;
      const waiter = this.#pending.get(reply.data.id);
      if (!waiter) return;
      this.#pending.delete(reply.data.id);
      if (this.#pending.size === 0) worker.unref();
      if (reply.data.ok) {
        if (reply.data.ms) {
          this.stats.statementsMs += reply.data.ms[0] ?? 0;
          this.stats.commitMs += reply.data.ms[1] ?? 0;
        }
        if (reply.data.runs !== undefined) {
          this.stats.runs = reply.data.runs;
          this.stats.totalRuns += reply.data.runs;
        }
        const buffers = reply.data.buffers;
        if (buffers) for (let i = 0; i < buffers.length; i++) this.#pool.give(buffers[i]!);
        waiter.resolve(reply.data.changes, reply.data.usage);
      } else {
        if (waiter.counted !== true) this.#poisoned = true;
        waiter.reject(new WriterError(reply.data.error.message, reply.data.error.code));
      }
    });
    const fail = (error: Error): void => {
      if (this.#worker === worker) this.#worker = null;
      this.#poisoned = false;
      for (const w of this.#pending.values())
        w.reject(
          new CocoError(
            ErrorCode.StoreFailed,
            `the SQLite writer thread stopped: ${error.message}`,
            { cause: error, retryable: true },
          ),
        );
      this.#pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    return worker;
  }

  /**
   * Whether the thread has anything to do: a batch, a counted write or a request not yet
   * answered. While it has, a write made elsewhere would overtake what is queued here.
   */
  get busy(): boolean {
    return this.#pending.size > 0;
  }

  /**
   * Runs the operations in one transaction in the writer thread; resolves once committed.
   * Writes are applied in call order; after one fails, those already sent behind it fail too
   * (without applying anything) until a write is made after the failure was reported.
   */
  write(ops: readonly (WriteOp | RecordOp)[]): Promise<void> {
    const worker = (this.#worker ??= this.#spawn());
    if (this.#poisoned) {
      this.#poisoned = false;
      worker.postMessage({ kind: 'reset' });
    }
    const id = this.#nextId++;
    const transfer: ArrayBuffer[] = [];
    const wire = encodeOps(ops, transfer, this.#pool);
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve: () => resolve(), reject });
      // While a batch is in flight the thread keeps the process alive.
      worker.ref();
      worker.postMessage({ kind: 'apply', id, ops: wire }, transfer);
    });
  }

  /**
   * Runs the operations in one transaction in the writer thread, in turn with the batches
   * (after those already sent), and resolves with the rows each row of values changed. Unlike
   * {@link SqliteWriter.write} it is not part of the engine's chain of batches: it runs behind a
   * failed batch, and its own failure (rolled back whole) refuses no batch.
   */
  count(ops: readonly WriteOp[]): Promise<number[][]> {
    const worker = (this.#worker ??= this.#spawn());
    const id = this.#nextId++;
    return new Promise<number[][]>((resolve, reject) => {
      this.#pending.set(id, {
        resolve: (changes) => resolve(changes ?? []),
        reject,
        counted: true,
      });
      worker.ref();
      worker.postMessage({ kind: 'count', id, ops });
    });
  }

  /**
   * The writer thread's CPU time and run-queue wait since it started (null where the system does
   * not say: not Linux), for measurements: unlike wall-clock busy time, CPU time does not count
   * the time a loaded machine keeps the thread off a core.
   */
  usage(): Promise<ThreadUsage | null> {
    const worker = this.#worker;
    if (!worker) return Promise.resolve(null);
    const id = this.#nextId++;
    return new Promise<ThreadUsage | null>((resolve, reject) => {
      this.#pending.set(id, {
        resolve: (_changes, usage) => resolve(usage ?? null),
        reject,
        counted: true,
      });
      worker.ref();
      worker.postMessage({ kind: 'usage', id });
    });
  }

  /**
   * Closes the writer's connection and ends the thread, once what was sent before is done. Once
   * `signal` aborts, that is not waited for: the thread is terminated (what it was writing rolls
   * back, as in a crash) and its pending writes fail.
   */
  async close(signal?: AbortSignal): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    const id = this.#nextId++;
    const closed = new Promise<boolean>((resolve) => {
      this.#pending.set(id, { resolve: () => resolve(false), reject: () => resolve(false) });
      worker.ref();
      worker.postMessage({ kind: 'close', id });
    });
    const aborted = await Promise.race([closed, whenAborted(signal).then(() => true)]);
    this.#worker = null;
    // A thread held in a native call ends only when the call returns: not waited for then.
    const ended = worker.terminate();
    if (!aborted) await ended;
  }
}
