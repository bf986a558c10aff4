/**
 * The columns of the engine's tables and the values written to them, the same for every store
 * (SQLite and PostgreSQL read and write these shapes): the column lists in row order (rows are
 * read as positional arrays in this order, see parse.ts), JSON as text, the command's `state`
 * array, and the `active` flag. Re-exported by parse.ts.
 *
 * @module
 */
import { isTerminal, type CommandStatus, type CompensationStatus } from '../../core/states.js';
import type { CommandUpdate } from '../port.js';

/** `commands` columns, in row order. */
export const COMMAND_COLUMNS = [
  'id', 'type', 'params_version', 'params', 'status', 'parent_id', 'root_id', 'seq', 'origin_stage',
  'child_mode', 'failure_policy', 'compensation', 'error', 'result', 'state', 'idempotency_key',
  'created_at', 'updated_at', 'ended_at', 'tasks_cleared', 'owner', 'lease_until', 'trace_context',
] as const; // prettier-ignore
/**
 * Positions of the `commands` columns holding JSON text (params, error, result, state): a bulk
 * read may hand them over as JSON values already (see parse-fast.ts, "embedded" rows).
 */
export const COMMAND_JSON_AT = [3, 12, 13, 14] as const;
/** The command fields kept in the `state` column: a JSON array, in this order (0/1 for flags). */
export const COMMAND_STATE_FIELDS = [
  'expectedTasks', 'expectedChildren', 'taskCount', 'childCount', 'undoCount', 'journalSeq',
  'stage', 'stageDone', 'chainDone', 'cancelRequested', 'compensationError', 'data', 'attempts',
  'nextAttemptAt', 'lastError', 'deadlineAt', 'priority', 'queuedSince',
] as const; // prettier-ignore
/**
 * State arrays written before `priority` and `queuedSince` (fields 16, 17) were added: read with
 * priority 0, not queued.
 */
export const COMMAND_STATE_FIELDS_V1 = 16;

/** `tasks` columns, in row order. */
export const TASK_COLUMNS = [
  'command_id', 'ordinal', 'origin', 'agent_id', 'verb', 'args', 'status', 'result', 'error',
  'deadline_at', 'stop_requested', 'created_at', 'ended_at',
] as const; // prettier-ignore
/** Positions of the `tasks` columns holding JSON text (args, result, error); see COMMAND_JSON_AT. */
export const TASK_JSON_AT = [5, 7, 8] as const;

/**
 * The order of an *embedded* row's values (a bulk read's JSON form, see parse-fast.ts): the JSON
 * columns first, in row order, then the others in row order. Position `i` of an embedded row holds
 * column `order[i]`. SQLite builds such a row from its JSON columns' own texts, each checked once
 * (statements.ts `asEmbeddedJson`), and the other columns as one `json_array`: that is why they
 * come as one run, after the JSON columns.
 */
function embeddedOrder(count: number, jsonAt: readonly number[]): readonly number[] {
  const rest = Array.from({ length: count }, (_, i) => i).filter((i) => !jsonAt.includes(i));
  return Object.freeze([...jsonAt, ...rest]);
}
/** The order of an embedded `commands` row's values (see {@link embeddedOrder}). */
export const COMMAND_EMBEDDED_ORDER = embeddedOrder(COMMAND_COLUMNS.length, COMMAND_JSON_AT);
/** The order of an embedded `tasks` row's values (see {@link embeddedOrder}). */
export const TASK_EMBEDDED_ORDER = embeddedOrder(TASK_COLUMNS.length, TASK_JSON_AT);

/** `undo_steps` columns, in row order. */
export const UNDO_COLUMNS = [
  'command_id',
  'ordinal',
  'seq',
  'stage',
  'name',
  'data',
  'status',
  'error',
] as const;
/** `entities` columns, in row order. */
export const ENTITY_COLUMNS = ['kind', 'id', 'value', 'command_id', 'updated_at'] as const;

/** JSON column value: text, or NULL for null/undefined (both stores write JSON as text). */
export function jsonText(value: unknown): string | null {
  return value === null || value === undefined ? null : (JSON.stringify(value) ?? null);
}

/**
 * The `state` JSON of a command: its mutable bookkeeping fields (everything a query never
 * filters on), written whole on every insert and update, as an array in the order of
 * {@link COMMAND_STATE_FIELDS} — a third the bytes of an object with names, which is measurably
 * cheaper to write (row size dominates the cost of a write).
 */
export function commandState(u: CommandUpdate): string {
  return JSON.stringify([
    u.expectedTasks,
    u.expectedChildren,
    u.taskCount,
    u.childCount,
    u.undoCount,
    u.journalSeq,
    u.stage,
    u.stageDone ? 1 : 0,
    u.chainDone ? 1 : 0,
    u.cancelRequested ? 1 : 0,
    u.compensationError,
    u.data ?? null,
    u.attempts,
    u.nextAttemptAt,
    u.lastError,
    u.deadlineAt,
    u.priority,
    u.queuedSince,
  ]);
}

/**
 * Whether the engine must resume a command after a restart: it has not ended, or its tasks are
 * not all cleared on their agents, or its own work is being compensated. Stored in the `active`
 * column, which the partial index `commands_active` covers.
 */
export function isActive(
  status: CommandStatus,
  tasksCleared: boolean,
  compensation: CompensationStatus,
): boolean {
  return !isTerminal(status) || !tasksCleared || compensation === 'compensating';
}
