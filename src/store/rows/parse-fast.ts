/**
 * Fast paths for the two row kinds a restart reads by the hundred thousand (commands and tasks):
 * plain type checks that accept exactly the rows the zod parsers of parse.ts accept, and give
 * `null` for anything else so that the zod parser runs and names the problem. Loading 100,000
 * unfinished commands spent ~1 s in zod; these take a fraction of that. A property test checks
 * that both paths agree.
 *
 * A row may come *embedded*: its JSON columns (`COMMAND_JSON_AT`, `TASK_JSON_AT`) handed over
 * as the values their text holds, parsed with the row's own JSON text (a bulk read's JSON form:
 * one `JSON.parse` per row instead of one per JSON column, and no string for each), and its
 * values in the embedded order (`COMMAND_EMBEDDED_ORDER`, `TASK_EMBEDDED_ORDER`: the JSON
 * columns first). Only valid JSON is embedded, so the zod parser, given the row in row order with
 * those values written back as text, names any other problem as it would for the row read
 * plainly.
 *
 * @module
 */
import type { ErrorInfo } from '../../core/errors.js';
import {
  COMMAND_STATUSES,
  COMPENSATION_STATUSES,
  TASK_STATUSES,
  type CommandStatus,
  type CompensationStatus,
  type TaskStatus,
} from '../../core/states.js';
import type { CommandRecord, TaskRecord } from '../../core/records.js';
import {
  COMMAND_COLUMNS,
  COMMAND_EMBEDDED_ORDER,
  COMMAND_JSON_AT,
  COMMAND_STATE_FIELDS,
  COMMAND_STATE_FIELDS_V1,
  TASK_COLUMNS,
  TASK_EMBEDDED_ORDER,
  TASK_JSON_AT,
  parseCommandRow,
  parseTaskRow,
  type Parsed,
} from './parse.js';

const COMMAND_STATUS = new Set<unknown>(COMMAND_STATUSES);
const COMPENSATION = new Set<unknown>(COMPENSATION_STATUSES);
const TASK_STATUS = new Set<unknown>(TASK_STATUSES);
const CHILD_MODE = new Set<unknown>(['concurrent', 'serial']);
const FAILURE_POLICY = new Set<unknown>(['wait-all', 'fail-fast']);

/** Marks a failed check: the caller falls back to the zod parser. */
class Miss extends Error {}
const MISS = new Miss();

const int = (v: unknown): number => {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  throw MISS;
};
const intOrNull = (v: unknown): number | null => (v === null ? null : int(v));
const str = (v: unknown): string => {
  if (typeof v === 'string') return v;
  throw MISS;
};
const strOrNull = (v: unknown): string | null => (v === null ? null : str(v));
const flag = (v: unknown): boolean => {
  if (v === 1) return true;
  if (v === 0) return false;
  throw MISS;
};
const oneOf = <T>(set: ReadonlySet<unknown>, v: unknown): T => {
  if (set.has(v)) return v as T;
  throw MISS;
};
const json = (v: unknown): unknown => {
  if (v === null) return null;
  if (typeof v !== 'string') throw MISS;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    throw MISS;
  }
};
const errorInfo = (v: unknown): ErrorInfo | null => {
  if (v === null) return null;
  if (typeof v === 'object' && !Array.isArray(v)) {
    const e = v as { code?: unknown; message?: unknown };
    if (typeof e.code === 'string' && typeof e.message === 'string') return v as ErrorInfo;
  }
  throw MISS;
};

/** A JSON column: its text parsed, or (embedded) its value as it is. */
const jsonAt = (v: unknown, embedded: boolean): unknown => (embedded ? v : json(v));

/**
 * Where each column of a row is in a row of the given order: `at[column]` is its position. A
 * plain array of small integers (not frozen: V8 reads those through slower paths).
 */
function positions(order: readonly number[]): readonly number[] {
  const at = order.map(() => 0);
  order.forEach((column, i) => (at[column] = i));
  return at;
}
const ROW_ORDER = (n: number): readonly number[] => Array.from({ length: n }, (_, i) => i);
const COMMAND_AT = positions(ROW_ORDER(COMMAND_COLUMNS.length));
const COMMAND_EMBEDDED_AT = positions(COMMAND_EMBEDDED_ORDER);
const TASK_AT = positions(ROW_ORDER(TASK_COLUMNS.length));
const TASK_EMBEDDED_AT = positions(TASK_EMBEDDED_ORDER);

/** A `commands` row as a record, or null when it needs the full parser. */
export function fastCommandRow(row: unknown, embedded = false): CommandRecord | null {
  if (!Array.isArray(row) || row.length !== COMMAND_COLUMNS.length) return null;
  const a = row as readonly unknown[];
  const p = embedded ? COMMAND_EMBEDDED_AT : COMMAND_AT;
  try {
    const st = jsonAt(a[p[14]!], embedded);
    if (
      !Array.isArray(st) ||
      (st.length !== COMMAND_STATE_FIELDS.length && st.length !== COMMAND_STATE_FIELDS_V1)
    )
      return null;
    const s = st as readonly unknown[];
    return {
      id: int(a[p[0]!]),
      type: str(a[p[1]!]),
      paramsVersion: int(a[p[2]!]),
      params: jsonAt(a[p[3]!], embedded),
      status: oneOf<CommandStatus>(COMMAND_STATUS, a[p[4]!]),
      parentId: intOrNull(a[p[5]!]),
      rootId: int(a[p[6]!]),
      seq: intOrNull(a[p[7]!]),
      originStage: intOrNull(a[p[8]!]),
      childMode: oneOf(CHILD_MODE, a[p[9]!]),
      failurePolicy: oneOf(FAILURE_POLICY, a[p[10]!]),
      expectedTasks: int(s[0]),
      expectedChildren: int(s[1]),
      taskCount: int(s[2]),
      childCount: int(s[3]),
      undoCount: int(s[4]),
      journalSeq: int(s[5]),
      stage: int(s[6]),
      stageDone: flag(s[7]),
      chainDone: flag(s[8]),
      cancelRequested: flag(s[9]),
      error: errorInfo(jsonAt(a[p[12]!], embedded)),
      result: jsonAt(a[p[13]!], embedded),
      compensation: oneOf<CompensationStatus>(COMPENSATION, a[p[11]!]),
      compensationError: errorInfo(s[10]),
      data: s[11],
      attempts: int(s[12]),
      nextAttemptAt: intOrNull(s[13]),
      lastError: errorInfo(s[14]),
      deadlineAt: intOrNull(s[15]),
      priority: s.length > 16 ? int(s[16]) : 0,
      queuedSince: s.length > 17 ? intOrNull(s[17]) : null,
      idempotencyKey: strOrNull(a[p[15]!]),
      createdAt: int(a[p[16]!]),
      updatedAt: int(a[p[17]!]),
      endedAt: intOrNull(a[p[18]!]),
      tasksCleared: flag(a[p[19]!]),
      owner: strOrNull(a[p[20]!]),
      leaseUntil: intOrNull(a[p[21]!]),
      traceContext: strOrNull(a[p[22]!]),
    };
  } catch (error) {
    if (error === MISS) return null;
    throw error;
  }
}

/** A `tasks` row as a record, or null when it needs the full parser. */
export function fastTaskRow(row: unknown, embedded = false): TaskRecord | null {
  if (!Array.isArray(row) || row.length !== TASK_COLUMNS.length) return null;
  const a = row as readonly unknown[];
  const p = embedded ? TASK_EMBEDDED_AT : TASK_AT;
  try {
    return {
      commandId: int(a[p[0]!]),
      ordinal: int(a[p[1]!]),
      origin: int(a[p[2]!]),
      agentId: str(a[p[3]!]),
      verb: str(a[p[4]!]),
      args: jsonAt(a[p[5]!], embedded),
      status: oneOf<TaskStatus>(TASK_STATUS, a[p[6]!]),
      result: jsonAt(a[p[7]!], embedded),
      error: errorInfo(jsonAt(a[p[8]!], embedded)),
      deadlineAt: intOrNull(a[p[9]!]),
      stopRequested: flag(a[p[10]!]),
      createdAt: int(a[p[11]!]),
      endedAt: intOrNull(a[p[12]!]),
    };
  } catch (error) {
    if (error === MISS) return null;
    throw error;
  }
}

/**
 * An embedded row in row order, with its JSON columns written back as text (for the zod parser).
 * A row of the wrong length is handed over as it is (the parser names that).
 */
function asText(row: unknown, order: readonly number[], at: readonly number[]): unknown {
  if (!Array.isArray(row) || row.length !== order.length) return row;
  const out: unknown[] = [];
  order.forEach((column, i) => (out[column] = (row as unknown[])[i]));
  for (const i of at) out[i] = out[i] === null ? null : JSON.stringify(out[i]);
  return out;
}

/** Parses a `commands` row: the fast path, else the zod parser (which names the problem). */
export function parseCommandRowFast(row: unknown, embedded = false): Parsed<CommandRecord> {
  const value = fastCommandRow(row, embedded);
  if (value) return { ok: true, value };
  return parseDeclinedCommandRow(row, embedded);
}

/**
 * The zod parser for a `commands` row {@link fastCommandRow} declined (it names the problem), for
 * callers that tried the fast path themselves.
 */
export function parseDeclinedCommandRow(row: unknown, embedded = false): Parsed<CommandRecord> {
  return parseCommandRow(embedded ? asText(row, COMMAND_EMBEDDED_ORDER, COMMAND_JSON_AT) : row);
}

/** Parses a `tasks` row: the fast path, else the zod parser (which names the problem). */
export function parseTaskRowFast(row: unknown, embedded = false): Parsed<TaskRecord> {
  const value = fastTaskRow(row, embedded);
  if (value) return { ok: true, value };
  return parseDeclinedTaskRow(row, embedded);
}

/** The zod parser for a `tasks` row {@link fastTaskRow} declined (see {@link parseDeclinedCommandRow}). */
export function parseDeclinedTaskRow(row: unknown, embedded = false): Parsed<TaskRecord> {
  return parseTaskRow(embedded ? asText(row, TASK_EMBEDDED_ORDER, TASK_JSON_AT) : row);
}
