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
      if (texts.length > 0) send({ table, text: '[' + texts.join(',') + ']' });
    }
    if (end === undefined) break;
    after = end.id;
  }
  db.exec('COMMIT');
  send({ done: true });
} catch (error) {
  parentPort.postMessage({ error: { message: String(error && error.message), code: error && error.code } });
}
try { if (db) db.close(); } catch {}
`;

/** What the thread sends. */
type ReaderMessage =
  | { readonly table: LoadTable; readonly text: string }
  | { readonly table: LoadTable; readonly rows: unknown[] }
  | { readonly done: true }
  | { readonly error: { readonly message: string; readonly code: unknown } };

/**
 * Reads the active set in the reader thread, handing each row to the sink on this thread as its
 * part arrives (see the module); resolves once the last was handed over. Rejects with
 * `STORE_FAILED` if the thread fails, or with what the sink threw.
 */
export function streamInThread(settings: ConnectionSettings, sink: ActiveRowSink): Promise<void> {
  const router = new ActiveRowRouter(sink);
  const taken = new Int32Array(new SharedArrayBuffer(4));
  return new Promise<void>((resolve, reject) => {
    const worker = new Worker(READER_SOURCE, {
      eval: true,
      // Plain CommonJS: the parent's flags must not change how it is read (as the writer's).
      execArgv: [],
      workerData: {
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        path: settings.path,
        busyTimeoutMs: settings.busyTimeoutMs,
        chunkEnd: SQL.activePartEnd,
        queries: LOAD_QUERIES.map(([table, json, plain]) => [table, SQL[json], SQL[plain]]),
        taken: taken.buffer,
        ahead: PARTS_AHEAD,
      },
    });
    let settled = false;
    const finish = (error?: unknown): void => {
      if (settled) return;
      settled = true;
      if (error === undefined) resolve();
      else {
        void worker.terminate();
        reject(error instanceof Error ? error : storeFailed('loadActive failed', error));
      }
    };
    worker.on('message', (message: ReaderMessage) => {
      if (settled) return;
      try {
        if ('done' in message) return finish();
        if ('error' in message)
          return finish(
            storeFailed('loadActive failed', Object.assign(new Error(), message.error)),
          );
        if ('text' in message)
          router.take(message.table, JSON.parse(message.text) as unknown[], 'json');
        else router.take(message.table, message.rows, 'plain');
        Atomics.add(taken, 0, 1);
        Atomics.notify(taken, 0);
      } catch (error) {
        finish(error);
      }
    });
    worker.on('error', (error) => finish(storeFailed('the SQLite reader thread failed', error)));
    worker.on('exit', (code) =>
      finish(storeFailed('loadActive failed', new Error(`the reader thread exited (${code})`))),
    );
  });
}
