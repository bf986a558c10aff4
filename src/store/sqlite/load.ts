/**
 * Reading the SQLite store's active set (`loadActive`, `streamActive`): the load's queries, and
 * the routing of their rows to a sink — on the event loop here, or from the reader thread
 * (reader.ts) when there is much to read.
 *
 * @module
 */
import type Database from 'better-sqlite3';
import type { CommandRecord, TaskRecord, UndoRecord } from '../../core/records.js';
import type { ActiveRowSink, ActiveSnapshot, CorruptRow } from '../port.js';
import { parseCommandRow, parseUndoRow } from '../rows/parse.js';
import {
  fastCommandRow,
  fastTaskRow,
  parseDeclinedCommandRow,
  parseDeclinedTaskRow,
} from '../rows/parse-fast.js';
import type { Statements } from './statements.js';

type Stmt = Database.Statement<unknown[], unknown>;

/**
 * The load's queries, in the order each chunk runs them: the table of their rows, the JSON form
 * (one text per row, see statements.ts `asJson`; commands and tasks embed their JSON columns,
 * `asEmbeddedJson`) and the plain form (positional rows).
 */
export const LOAD_QUERIES = [
  ['commands', 'activeCommandsJson', 'activeCommands'],
  ['tasks', 'activeTasksJson', 'activeTasks'],
  ['undo', 'activeUndoJson', 'activeUndo'],
  ['endedChildren', 'endedChildrenJson', 'endedChildren'],
] as const satisfies readonly (readonly [string, keyof Statements, keyof Statements])[];

/** What the rows of a load query are. */
export type LoadTable = (typeof LOAD_QUERIES)[number][0];

/**
 * Hands the rows of the load's queries, in the order they run, to a sink, each parsed. Rows that
 * do not parse go to `sink.corrupt`. Tasks, undo steps and ended children of a command that
 * could not be read are left out: every query of a chunk is ordered by command id, so a cursor
 * over the chunk's readable command ids (collected from its command rows) tells which to keep.
 */
export class ActiveRowRouter {
  readonly #sink: ActiveRowSink;
  #table: LoadTable | null = null;
  /** The readable command ids of the chunk, ascending. */
  readonly #ids: number[] = [];
  #at = 0;

  constructor(sink: ActiveRowSink) {
    this.#sink = sink;
  }

  /**
   * Takes rows of `table`, in query order, as `form` says: the JSON texts of the query's JSON
   * form, those texts parsed, or positional rows of its plain form. A chunk's command rows come
   * before its other rows (a chunk without command rows has none).
   */
  take(table: LoadTable, rows: unknown[], form: 'texts' | 'json' | 'plain'): void {
    if (table !== this.#table) {
      if (table === 'commands') this.#ids.length = 0;
      this.#at = 0;
      this.#table = table;
    }
    const sink = this.#sink;
    const texts = form === 'texts';
    const embedded = form !== 'plain';
    for (let i = 0; i < rows.length; i++) {
      const text = rows[i];
      // Let the row (or its text) go at once: only what the sink builds outlives the load.
      rows[i] = null;
      const row = texts ? (JSON.parse(text as string) as unknown) : text;
      // The fast paths' records handed over as they are (no result object per row); a row they
      // decline goes through the full parser, which names the problem.
      if (table === 'commands') {
        let r = fastCommandRow(row, embedded);
        if (r === null) {
          const parsed = parseDeclinedCommandRow(row, embedded);
          if (!parsed.ok) {
            sink.corrupt(parsed.corrupt);
            continue;
          }
          r = parsed.value;
        }
        this.#ids.push(r.id);
        sink.command(r);
      } else if (table === 'tasks') {
        let t = fastTaskRow(row, embedded);
        if (t === null) {
          const parsed = parseDeclinedTaskRow(row, embedded);
          if (!parsed.ok) {
            sink.corrupt(parsed.corrupt);
            continue;
          }
          t = parsed.value;
        }
        if (this.#readable(t.commandId)) sink.task(t);
      } else if (table === 'undo') {
        const parsed = parseUndoRow(row);
        if (!parsed.ok) sink.corrupt(parsed.corrupt);
        else if (this.#readable(parsed.value.commandId)) sink.undo(parsed.value);
      } else {
        const parsed = parseCommandRow(row);
        if (!parsed.ok) sink.corrupt(parsed.corrupt);
        else if (parsed.value.parentId !== null && this.#readable(parsed.value.parentId))
          sink.endedChild(parsed.value);
      }
    }
  }

  #readable(id: number): boolean {
    const ids = this.#ids;
    while (this.#at < ids.length && ids[this.#at]! < id) this.#at++;
    return ids[this.#at] === id;
  }
}

/**
 * Runs one query of a chunk: its JSON form, or, if that fails, its plain form (json_array
 * refuses a BLOB: one odd row must not stop a load).
 */
function bulk(
  router: ActiveRowRouter,
  table: LoadTable,
  json: Stmt,
  plain: Stmt,
  after: number,
  upTo: number,
): void {
  let rows: unknown[];
  try {
    rows = json.all(after, upTo);
  } catch {
    router.take(table, plain.all(after, upTo), 'plain');
    return;
  }
  router.take(table, rows, 'texts');
}

/**
 * Reads the active set with four set-based queries over the partial index of active commands,
 * chunk after chunk of `LOAD_CHUNK` (statements.ts) command ids, handing each row to the sink as
 * it is parsed (a 1,000,000-command restart: 25.6 → 14.3 s with the chunks, the garbage of each
 * dying young). Must run in one read transaction, so that every query of every chunk sees the
 * same state.
 */
export function streamActive(q: Statements, sink: ActiveRowSink): void {
  const router = new ActiveRowRouter(sink);
  let after = 0;
  for (;;) {
    const end = (q.activeChunkEnd.get(after) as { id: number } | undefined)?.id;
    const upTo = end ?? Number.MAX_SAFE_INTEGER;
    for (const [table, json, plain] of LOAD_QUERIES)
      bulk(router, table, q[json], q[plain], after, upTo);
    if (end === undefined) break;
    after = end;
  }
}

/** The active snapshot (see {@link streamActive}), its rows collected. */
export function readActive(q: Statements): ActiveSnapshot {
  const commands: CommandRecord[] = [];
  const tasks: TaskRecord[] = [];
  const undo: UndoRecord[] = [];
  const endedChildren: CommandRecord[] = [];
  const corrupt: CorruptRow[] = [];
  streamActive(q, {
    command: (r) => commands.push(r),
    task: (t) => tasks.push(t),
    undo: (u) => undo.push(u),
    endedChild: (r) => endedChildren.push(r),
    corrupt: (row) => corrupt.push(row),
  });
  return { commands, tasks, undo, endedChildren, corrupt };
}

/**
 * Whether a load is worth the reader thread: more than one chunk of active commands (its start,
 * some tens of milliseconds, is paid back by SQLite's work on a chunk running beside the
 * engine's).
 */
export function manyActive(q: Statements): boolean {
  return q.activeChunkEnd.get(0) !== undefined;
}
