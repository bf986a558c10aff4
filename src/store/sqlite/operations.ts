/**
 * The two multi-statement operations of the SQLite store: writing a change batch (the body of
 * the apply transaction) and reading the active snapshot (the body of the load transaction).
 *
 * @module
 */
import type Database from 'better-sqlite3';
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { CommandRecord, TaskRecord, UndoRecord } from '../../core/records.js';
import type { ActiveRowSink, ActiveSnapshot, ChangeBatch, CorruptRow } from '../port.js';
import { parseCommandRow, parseUndoRow } from '../rows/parse.js';
import { parseCommandRowFast, parseTaskRowFast } from '../rows/parse-fast.js';
import type { WriteOp } from './writer.js';
import {
  commandInsertValues,
  commandUpdateValues,
  entityPutValues,
  paramsUpgradeValues,
  taskInsertValues,
  taskUpdateValues,
  undoInsertValues,
  undoUpdateValues,
  type Statements,
} from './statements.js';

function missing(statement: string, key: string): CocoError {
  return new CocoError(ErrorCode.StoreFailed, `${statement}: no such row (${key})`);
}

/**
 * A batch as statement operations, in the port's order: inserts (commands, tasks, undo steps),
 * updates (commands, tasks, undo steps), settled commands, parameter upgrades, entity writes.
 * Updates must change a row (a missing row fails the batch). Both the inline path and the
 * writer thread run exactly these.
 */
export function batchOps(b: ChangeBatch): WriteOp[] {
  const ops: WriteOp[] = [];
  const add = (
    statement: keyof Statements,
    rows: readonly (readonly unknown[])[],
    mustChange: boolean,
  ): void => {
    if (rows.length > 0) ops.push([statement, rows, mustChange]);
  };
  add('insertCommand', b.commandInserts.map(commandInsertValues), false);
  add('insertTask', b.taskInserts.map(taskInsertValues), false);
  add('insertUndo', b.undoInserts.map(undoInsertValues), false);
  add('updateCommand', b.commandUpdates.map(commandUpdateValues), true);
  add('updateTask', b.taskUpdates.map(taskUpdateValues), true);
  add('updateUndo', b.undoUpdates.map(undoUpdateValues), true);
  add(
    'settleCommand',
    b.commandsSettled.map((id) => [id]),
    true,
  );
  add('upgradeParams', b.paramsUpgrades.map(paramsUpgradeValues), true);
  // Entity writes keep their order (a put then a delete of one record is a delete): each run
  // of consecutive puts or deletes is one operation.
  const runs: { statement: 'putEntity' | 'deleteEntity'; rows: unknown[][] }[] = [];
  for (const w of b.entityWrites) {
    const statement = w.value === null ? 'deleteEntity' : 'putEntity';
    let run = runs.at(-1);
    if (run?.statement !== statement) {
      run = { statement, rows: [] };
      runs.push(run);
    }
    run.rows.push(statement === 'deleteEntity' ? [w.kind, w.id] : entityPutValues(w));
  }
  for (const run of runs) add(run.statement, run.rows, false);
  return ops;
}

/** The highest command id a batch inserts, or 0. */
export function maxInsertedId(b: ChangeBatch): number {
  let maxId = 0;
  for (const r of b.commandInserts) if (r.id > maxId) maxId = r.id;
  return maxId;
}

/**
 * Runs a batch's operations on this connection. Must run inside a transaction: it throws
 * half-way on the first failure (a constraint, a transition trigger, an update of a missing row).
 */
export function writeBatch(q: Statements, b: ChangeBatch): void {
  for (const [statement, rows, mustChange] of batchOps(b)) {
    const st = q[statement as keyof Statements];
    for (const values of rows) {
      if (st.run(values).changes === 0 && mustChange) {
        throw missing(statement, JSON.stringify(values[values.length - 1]));
      }
    }
  }
}

type Stmt = Database.Statement<unknown[], unknown>;

/**
 * Reads the rows of a bulk query and hands each to `each`: through its JSON form (one text per
 * row), or, if that fails, through its plain form (json_array refuses a BLOB: one odd row must
 * not stop a load).
 */
function bulk(
  json: Stmt,
  plain: Stmt,
  range: readonly [after: number, upTo: number],
  each: (row: unknown) => void,
): void {
  let rows: unknown[];
  let texts = true;
  try {
    rows = json.all(range[0], range[1]);
  } catch {
    rows = plain.all(range[0], range[1]);
    texts = false;
  }
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    // Let the row text go at once: only what the sink builds outlives the load.
    rows[i] = null;
    each(texts ? (JSON.parse(row as string) as unknown) : row);
  }
}

/**
 * Reads the active set with four set-based queries over the partial index of active commands,
 * chunk after chunk of `LOAD_CHUNK` (statements.ts) command ids, handing each row to the sink as
 * it is parsed (a 1,000,000-command restart: 25.6 → 14.3 s with the chunks, the garbage of each
 * dying young). Must run in one read transaction, so that every query of every chunk sees the
 * same state.
 *
 * Rows that do not parse go to `sink.corrupt`. Tasks, undo steps and ended children of a command
 * that could not be read are left out: every query of a chunk is ordered by command id, so a
 * cursor over the chunk's readable command ids tells which to keep.
 */
export function streamActive(q: Statements, sink: ActiveRowSink): void {
  const ids: number[] = [];
  let k = 0;
  const readable = (id: number): boolean => {
    while (k < ids.length && ids[k]! < id) k++;
    return ids[k] === id;
  };
  let after = 0;
  for (;;) {
    const end = (q.activeChunkEnd.get(after) as { id: number } | undefined)?.id;
    const range = [after, end ?? Number.MAX_SAFE_INTEGER] as const;
    ids.length = 0;
    bulk(q.activeCommandsJson, q.activeCommands, range, (row) => {
      const parsed = parseCommandRowFast(row);
      if (!parsed.ok) return sink.corrupt(parsed.corrupt);
      ids.push(parsed.value.id);
      sink.command(parsed.value);
    });
    k = 0;
    bulk(q.activeTasksJson, q.activeTasks, range, (row) => {
      const parsed = parseTaskRowFast(row);
      if (!parsed.ok) sink.corrupt(parsed.corrupt);
      else if (readable(parsed.value.commandId)) sink.task(parsed.value);
    });
    k = 0;
    bulk(q.activeUndoJson, q.activeUndo, range, (row) => {
      const parsed = parseUndoRow(row);
      if (!parsed.ok) sink.corrupt(parsed.corrupt);
      else if (readable(parsed.value.commandId)) sink.undo(parsed.value);
    });
    k = 0;
    bulk(q.endedChildrenJson, q.endedChildren, range, (row) => {
      const parsed = parseCommandRow(row);
      if (!parsed.ok) sink.corrupt(parsed.corrupt);
      else if (parsed.value.parentId !== null && readable(parsed.value.parentId))
        sink.endedChild(parsed.value);
    });
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
