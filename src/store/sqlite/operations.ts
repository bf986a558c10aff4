/**
 * The SQLite store's batch: writing a change batch (the body of the apply transaction, inline or
 * in the writer thread). Reading the active set is load.ts.
 *
 * @module
 */
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { ChangeBatch } from '../port.js';
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
      // As arguments, not one array: cheaper to bind (see writer.ts).
      if (st.run(...values).changes === 0 && mustChange) {
        throw missing(statement, JSON.stringify(values[values.length - 1]));
      }
    }
  }
}
