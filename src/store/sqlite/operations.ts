/**
 * The two multi-statement operations of the SQLite store: writing a change batch (the body of
 * the apply transaction) and reading the active snapshot (the body of the load transaction).
 *
 * @module
 */
import type Database from 'better-sqlite3';
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { ActiveSnapshot, ChangeBatch, CorruptRow } from '../port.js';
import { parseCommandRow, parseTaskRow, parseUndoRow, type Parsed } from './rows.js';
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

function missing(what: string, key: string): CocoError {
  return new CocoError(ErrorCode.StoreFailed, `update of ${what} ${key}: no such row`);
}

/**
 * Writes a batch, in the port's order: inserts (commands, tasks, undo steps), updates, parameter
 * upgrades, entity writes. Must run inside a transaction: it throws half-way on the first
 * failure (a constraint, a transition trigger, an update of a missing row).
 *
 * @returns the highest command id inserted, or 0.
 */
export function writeBatch(q: Statements, b: ChangeBatch): number {
  let maxId = 0;
  for (const r of b.commandInserts) {
    q.insertCommand.run(commandInsertValues(r));
    if (r.id > maxId) maxId = r.id;
  }
  for (const t of b.taskInserts) q.insertTask.run(taskInsertValues(t));
  for (const u of b.undoInserts) q.insertUndo.run(undoInsertValues(u));
  for (const u of b.commandUpdates) {
    if (q.updateCommand.run(commandUpdateValues(u)).changes === 0)
      throw missing('command', `${u.id}`);
  }
  for (const t of b.taskUpdates) {
    if (q.updateTask.run(taskUpdateValues(t)).changes === 0) {
      throw missing('task', `${t.commandId}/${t.ordinal}`);
    }
  }
  for (const u of b.undoUpdates) {
    if (q.updateUndo.run(undoUpdateValues(u)).changes === 0) {
      throw missing('undo step', `${u.commandId}/${u.ordinal}`);
    }
  }
  for (const id of b.commandsSettled) {
    if (q.settleCommand.run(id).changes === 0) throw missing('command', `${id}`);
  }
  for (const p of b.paramsUpgrades) {
    if (q.upgradeParams.run(paramsUpgradeValues(p)).changes === 0)
      throw missing('command', `${p.id}`);
  }
  for (const w of b.entityWrites) {
    if (w.value === null) q.deleteEntity.run(w.kind, w.id);
    else q.putEntity.run(entityPutValues(w));
  }
  return maxId;
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
): T[] {
  let rows: unknown[];
  let texts = true;
  try {
    rows = json.all();
  } catch {
    rows = plain.all();
    texts = false;
  }
  const values: T[] = [];
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
 * commands. Should run in one read transaction, so that the queries see the same state.
 *
 * Rows that do not parse are reported in `corrupt`. Tasks, undo steps and ended children of a
 * command that could not be read are left out: the snapshot only holds rows of the commands it
 * returns, and the unreadable command is already reported.
 */
export function readActive(q: Statements): ActiveSnapshot {
  const corrupt: CorruptRow[] = [];
  const ids = new Set<number>();
  const commands = bulk(
    q.activeCommandsJson,
    q.activeCommands,
    parseCommandRow,
    () => true,
    corrupt,
  );
  for (const c of commands) ids.add(c.id);
  const ofActive = (r: { commandId: number }): boolean => ids.has(r.commandId);
  const tasks = bulk(q.activeTasksJson, q.activeTasks, parseTaskRow, ofActive, corrupt);
  const undo = bulk(q.activeUndoJson, q.activeUndo, parseUndoRow, ofActive, corrupt);
  const endedChildren = bulk(
    q.endedChildrenJson,
    q.endedChildren,
    parseCommandRow,
    (c) => c.parentId !== null && ids.has(c.parentId),
    corrupt,
  );
  return { commands, tasks, undo, endedChildren, corrupt };
}
