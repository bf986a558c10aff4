/**
 * The two multi-statement operations of the SQLite store: writing a change batch (the body of
 * the apply transaction) and reading the active snapshot (the body of the load transaction).
 *
 * @module
 */
import type Database from 'better-sqlite3';
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { CommandRecord, TaskRecord, UndoRecord } from '../../core/records.js';
import type { ActiveSnapshot, ChangeBatch, CorruptRow } from '../port.js';
import { parseCommandRow, parseUndoRow, type Parsed } from '../rows/parse.js';
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
 * Reads and parses the rows of a bulk query: through its JSON form (one text per row), or, if
 * that fails, through its plain form (json_array refuses a BLOB: one odd row must not stop a
 * load). Values for which `keep` is false are dropped; rows that do not parse go to `corrupt`.
 */
function bulk<T>(
  json: Stmt,
  plain: Stmt,
  parse: (row: unknown) => Parsed<T>,
  keep: (value: T) => boolean,
  corrupt: CorruptRow[],
  range: readonly [after: number, upTo: number],
  values: T[] = [],
): T[] {
  let rows: unknown[];
  let texts = true;
  try {
    rows = json.all(range[0], range[1]);
  } catch {
    rows = plain.all(range[0], range[1]);
    texts = false;
  }
  for (let i = 0; i < rows.length; i++) {
    const parsed = parse(texts ? (JSON.parse(rows[i] as string) as unknown) : rows[i]);
    // Let the row text go at once: only the records outlive the load.
    rows[i] = null;
    if (!parsed.ok) corrupt.push(parsed.corrupt);
    else if (keep(parsed.value)) values.push(parsed.value);
  }
  return values;
}

/**
 * Reads the active snapshot with four set-based queries over the partial index of active
 * commands, chunk after chunk of `LOAD_CHUNK` (statements.ts) command ids (a 1,000,000-command restart:
 * 25.6 → 14.3 s, the garbage of each chunk dying young). Must run in one read transaction, so
 * that every query of every chunk sees the same state.
 *
 * Rows that do not parse are reported in `corrupt`. Tasks, undo steps and ended children of a
 * command that could not be read are left out: the snapshot only holds rows of the commands it
 * returns, and the unreadable command is already reported.
 */
export function readActive(q: Statements): ActiveSnapshot {
  const corrupt: CorruptRow[] = [];
  const ids = new Set<number>();
  const ofActive = (r: { commandId: number }): boolean => ids.has(r.commandId);
  const commands: CommandRecord[] = [];
  const tasks: TaskRecord[] = [];
  const undo: UndoRecord[] = [];
  const endedChildren: CommandRecord[] = [];
  // Chunk after chunk of LOAD_CHUNK active commands, each with its tasks, undo steps and ended
  // children: the same snapshot (one read transaction), with less garbage alive at once.
  let after = 0;
  for (;;) {
    const end = (q.activeChunkEnd.get(after) as { id: number } | undefined)?.id;
    const range = [after, end ?? Number.MAX_SAFE_INTEGER] as const;
    const from = commands.length;
    bulk(
      q.activeCommandsJson,
      q.activeCommands,
      parseCommandRowFast,
      () => true,
      corrupt,
      range,
      commands,
    );
    for (let i = from; i < commands.length; i++) ids.add(commands[i]!.id);
    bulk(q.activeTasksJson, q.activeTasks, parseTaskRowFast, ofActive, corrupt, range, tasks);
    bulk(q.activeUndoJson, q.activeUndo, parseUndoRow, ofActive, corrupt, range, undo);
    bulk(
      q.endedChildrenJson,
      q.endedChildren,
      parseCommandRow,
      (c) => c.parentId !== null && ids.has(c.parentId),
      corrupt,
      range,
      endedChildren,
    );
    if (end === undefined) break;
    after = end;
  }
  return { commands, tasks, undo, endedChildren, corrupt };
}
