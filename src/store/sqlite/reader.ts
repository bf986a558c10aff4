/**
 * The SQLite store's reader thread, for a restart with much to load (more than one chunk of
 * active commands, load.ts `manyActive`): a worker thread with a connection of its own runs the
 * load's queries in one read transaction and hands their rows over in parts, while the main
 * thread builds live objects from the parts already read. SQLite's share of a restart (stepping
 * the queries, building each row's JSON text) then runs beside the engine's instead of before it.
 *
 * The worker is a small script given as source, as the writer thread's is (writer.ts). It reads
 * in chunks of `READ_PART` (statements.ts) active commands; each query's rows are a part: one
 * JSON text (the main thread parses it with one `JSON.parse` and makes no string per row), or,
 * for a query whose JSON form failed (a BLOB), its positional rows.
 *
 * A thread may be spawned ahead of its read ({@link ReaderThread.spawn}, when the store opens):
 * it starts, opens its connection and prepares its statements, then waits; its read transaction
 * begins only when {@link ReaderThread.stream} is called, so it reads the state as of that call,
 * as a thread spawned then would. Spawned beside the writer thread's start, its own start (a
 * worker's bootstrap, some tens of milliseconds of the main thread waiting) is off the restart's
 * path.
 *
 * @module
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { storeFailed, type ConnectionSettings } from '../../db/sqlite.js';
import type { ActiveRowSink } from '../port.js';
import { ActiveRowRouter, LOAD_QUERIES, type LoadTable } from './load.js';
import { SQL } from './statements.js';

/**
 * Parts the thread may have sent that the main thread has not taken yet: enough to keep both
 * busy, few enough that a fast reader does not pile the whole set up in messages (~2 MB).
 */
const PARTS_AHEAD = 8;

const READER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const taken = new Int32Array(workerData.taken);
let sent = 0;
function send(message) {
  for (;;) {
    const t = Atomics.load(taken, 0);
    if (sent - t < workerData.ahead) break;
    Atomics.wait(taken, 0, t, 1000);
  }
  parentPort.postMessage(message);
  sent++;
}
function fail(db, error) {
  parentPort.postMessage({ error: { message: String(error && error.message), code: error && error.code } });
  try { if (db) db.close(); } catch {}
}
// Reads when told to (the first message): the read transaction begins then, not at the start.
function read(db, chunkEnd, queries) {
  try {
    db.exec('BEGIN');
    let after = 0;
    for (;;) {
      const end = chunkEnd.get(after);
      const upTo = end === undefined ? Number.MAX_SAFE_INTEGER : end.id;
      for (const [table, json, plain] of queries) {
        let texts;
        try {
          texts = json.all(after, upTo);
        } catch {
          send({ table, rows: plain.all(after, upTo) });
          continue;
        }
        if (texts.length > 0) {
          // The brackets go in with the rows: join makes one flat text, which postMessage copies
          // as it is ('[' + joined + ']' is a rope, which the copy flattens first: one more
          // text of ~200 KB made and dropped per part).
          texts[0] = '[' + texts[0];
          texts[texts.length - 1] += ']';
          send({ table, text: texts.join(',') });
        }
      }
      if (end === undefined) break;
      after = end.id;
    }
    db.exec('COMMIT');
    send({ done: true });
  } catch (error) {
    return fail(db, error);
  }
  try { db.close(); } catch {}
}
let db;
try {
  db = new Database(workerData.path, { fileMustExist: true });
  db.pragma('busy_timeout = ' + workerData.busyTimeoutMs);
  db.pragma('cache_size = -65536');
  const chunkEnd = db.prepare(workerData.chunkEnd);
  const queries = workerData.queries.map(([table, json, plain]) => [
    table,
    db.prepare(json).pluck(true),
    db.prepare(plain).raw(true),
  ]);
  parentPort.once('message', () => read(db, chunkEnd, queries));
  parentPort.postMessage({ ready: true });
} catch (error) {
  fail(db, error);
}
`;

/** What the thread sends. */
type ReaderMessage =
  | { readonly ready: true }
  | { readonly table: LoadTable; readonly text: string }
  | { readonly table: LoadTable; readonly rows: unknown[] }
  | { readonly done: true }
  | { readonly error: { readonly message: string; readonly code: unknown } };

/**
 * A reader thread (see the module): spawned, then asked once to read the active set. A thread
 * never asked is ended by {@link ReaderThread.close}; it does not keep the process alive.
 */
export class ReaderThread {
  readonly #worker: Worker;
  /** Parts taken by this thread (the reader's back-pressure, see PARTS_AHEAD). */
  readonly #taken = new Int32Array(new SharedArrayBuffer(4));
  /** Set by {@link stream}. */
  #router: ActiveRowRouter | null = null;
  #settle: ((error?: unknown) => void) | null = null;
  /** How the thread failed before it was asked to read (told by {@link stream}). */
  #failure: unknown = null;
  /** Streamed to the end, failed while streaming, or closed: later events are ignored. */
  #over = false;
  #readied!: () => void;
  /**
   * Settles once the thread waits to be asked (its connection open, its statements prepared),
   * or has failed, or was closed. Never rejects.
   */
  readonly ready = new Promise<void>((resolve) => (this.#readied = resolve));

  private constructor(settings: ConnectionSettings) {
    this.#worker = new Worker(READER_SOURCE, {
      eval: true,
      // Plain CommonJS: the parent's flags must not change how it is read (as the writer's).
      execArgv: [],
      workerData: {
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        path: settings.path,
        busyTimeoutMs: settings.busyTimeoutMs,
        chunkEnd: SQL.activePartEnd,
        queries: LOAD_QUERIES.map(([table, json, plain]) => [table, SQL[json], SQL[plain]]),
        taken: this.#taken.buffer,
        ahead: PARTS_AHEAD,
      },
    });
    // Waiting to be asked, it must not hold the process open (reading, it does).
    this.#worker.unref();
    this.#worker.on('message', (message: ReaderMessage) => this.#take(message));
    this.#worker.on('error', (error) =>
      this.#fail(storeFailed('the SQLite reader thread failed', error)),
    );
    this.#worker.on('exit', (code) =>
      this.#fail(storeFailed('loadActive failed', new Error(`the reader thread exited (${code})`))),
    );
  }

  /** Starts a thread that waits to read (its connection opened, its statements prepared). */
  static spawn(settings: ConnectionSettings): ReaderThread {
    return new ReaderThread(settings);
  }

  /**
   * Reads the active set, handing each row to the sink on this thread as its part arrives (see
   * the module); resolves once the last was handed over. The read transaction begins now. Rejects
   * with `STORE_FAILED` if the thread failed (or was closed), or with what the sink threw. Once
   * per thread.
   */
  stream(sink: ActiveRowSink): Promise<void> {
    if (this.#router !== null)
      return Promise.reject(storeFailed('loadActive failed', new Error('the reader was used')));
    this.#router = new ActiveRowRouter(sink);
    return new Promise<void>((resolve, reject) => {
      this.#settle = (error?: unknown): void => {
        if (error === undefined) resolve();
        else reject(error instanceof Error ? error : storeFailed('loadActive failed', error));
      };
      if (this.#failure !== null) this.#end(this.#failure);
      else if (this.#over)
        this.#settle(storeFailed('loadActive failed', new Error('the reader was closed')));
      else {
        this.#worker.ref();
        this.#worker.postMessage('read');
      }
    });
  }

  /** Ends the thread unless it is reading (a store closed without a restart's read). */
  close(): void {
    if (this.#settle !== null) return;
    this.#over = true;
    this.#readied();
    void this.#worker.terminate();
  }

  #take(message: ReaderMessage): void {
    if ('ready' in message) return this.#readied();
    if (this.#over) return;
    const router = this.#router;
    if ('error' in message) {
      const error = storeFailed('loadActive failed', Object.assign(new Error(), message.error));
      return router === null ? this.#fail(error) : this.#end(error);
    }
    // Only a failure comes before the thread is asked to read.
    if (router === null) return;
    try {
      if ('done' in message) return this.#end();
      if ('text' in message)
        router.take(message.table, JSON.parse(message.text) as unknown[], 'json');
      else router.take(message.table, message.rows, 'plain');
      Atomics.add(this.#taken, 0, 1);
      Atomics.notify(this.#taken, 0);
    } catch (error) {
      this.#end(error);
    }
  }

  /** The thread failed: now if it is reading, else when it is asked to. */
  #fail(error: unknown): void {
    this.#readied();
    if (this.#over) return;
    if (this.#settle === null) this.#failure ??= error;
    else this.#end(error);
  }

  #end(error?: unknown): void {
    if (this.#over) return;
    this.#over = true;
    if (error !== undefined) void this.#worker.terminate();
    this.#settle?.(error);
  }
}

/**
 * Reads the active set in a reader thread spawned now (see {@link ReaderThread.stream}).
 */
export function streamInThread(settings: ConnectionSettings, sink: ActiveRowSink): Promise<void> {
  return ReaderThread.spawn(settings).stream(sink);
}
