/**
 * The SQLite store's batch: writing a change batch (the body of the apply transaction, inline or
 * in the writer thread). Reading the active set is load.ts.
 *
 * @module
 */
import { BatchRefusedError, type CocoError } from '../../core/errors.js';
import type { ChangeBatch, CommandUpdate } from '../port.js';
import type { RecordOp } from './writer.js';
import {
  COMMAND_INSERT,
  COMMAND_SETTLE,
  COMMAND_STATE_UPDATE,
  COMMAND_UPDATE,
  ENTITY_DELETE,
  ENTITY_PUT,
  PARAMS_UPGRADE,
  TASK_INSERT,
  TASK_UPDATE,
  UNDO_INSERT,
  UNDO_UPDATE,
  rowValues,
  type RowCodec,
  type Statements,
} from './statements.js';

/** A row to update that is not there: the batch is refused, on every try (`BATCH_REFUSED`). */
function missing(statement: string, key: string): CocoError {
  return new BatchRefusedError(`${statement}: no such row (${key})`);
}

/**
 * A batch's command updates in two lists: those written whole, and the state-only ones
 * (`CommandUpdate.stateOnly`, written as their `state` and `updated_at`). The engine flags only a
 * command the batch updates once, so the two lists touch different rows and may run one after
 * the other. No state-only update: the batch's own list, and an empty one.
 */
export function splitCommandUpdates(
  updates: readonly CommandUpdate[],
): [whole: readonly CommandUpdate[], stateOnly: readonly CommandUpdate[]] {
  let i = 0;
  while (i < updates.length && updates[i]!.stateOnly !== true) i++;
  if (i === updates.length) return [updates, []];
  const whole = updates.slice(0, i);
  const stateOnly: CommandUpdate[] = [];
  for (; i < updates.length; i++) {
    const u = updates[i]!;
    if (u.stateOnly === true) stateOnly.push(u);
    else whole.push(u);
  }
  return [whole, stateOnly];
}

/**
 * A batch as statement operations, in the port's order: inserts (commands, tasks, undo steps),
 * updates (commands — those written whole, then the state-only ones — tasks, undo steps),
 * settled commands, parameter upgrades, entity writes.
 * Updates must change a row (a missing row fails the batch). Each operation holds the batch's
 * records and the codec reading their values (statements.ts): the inline path binds each
 * record's values as an array, the writer thread's are encoded straight into columns
 * (writer.ts), both from that one codec.
 */
export function batchOps(b: ChangeBatch): RecordOp[] {
  const ops: RecordOp[] = [];
  const add = <T>(
    statement: keyof Statements,
    records: readonly T[],
    codec: RowCodec<T>,
    mustChange: boolean,
  ): void => {
    if (records.length > 0) ops.push({ statement, records, codec, mustChange });
  };
  add('insertCommand', b.commandInserts, COMMAND_INSERT, false);
  add('insertTask', b.taskInserts, TASK_INSERT, false);
  add('insertUndo', b.undoInserts, UNDO_INSERT, false);
  const [whole, stateOnly] = splitCommandUpdates(b.commandUpdates);
  add('updateCommand', whole, COMMAND_UPDATE, true);
  add('updateCommandState', stateOnly, COMMAND_STATE_UPDATE, true);
  add('updateTask', b.taskUpdates, TASK_UPDATE, true);
  add('updateUndo', b.undoUpdates, UNDO_UPDATE, true);
  add('settleCommand', b.commandsSettled, COMMAND_SETTLE, true);
  add('upgradeParams', b.paramsUpgrades, PARAMS_UPGRADE, true);
  // Entity writes keep their order (a put then a delete of one record is a delete): each run
  // of consecutive puts or deletes is one operation.
  let from = 0;
  const writes = b.entityWrites;
  for (let i = 1; i <= writes.length; i++) {
    const put = writes[from]!.value !== null;
    if (i < writes.length && (writes[i]!.value !== null) === put) continue;
    const run = writes.slice(from, i);
    if (put) add('putEntity', run, ENTITY_PUT, false);
    else add('deleteEntity', run, ENTITY_DELETE, false);
    from = i;
  }
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
  for (const op of batchOps(b)) {
    const st = q[op.statement as keyof Statements];
    const codec = op.codec;
    for (const record of op.records) {
      const values = rowValues(codec, record);
      // As arguments, not one array: cheaper to bind (see writer.ts).
      if (st.run(...values).changes === 0 && op.mustChange) {
        throw missing(op.statement, JSON.stringify(values[values.length - 1]));
      }
    }
  }
}
