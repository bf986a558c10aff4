/**
 * Rows of the stores (dialect-neutral) and their parsers. A row is read as a positional array (its columns
 * in the order of the `*_COLUMNS` lists of columns.ts, re-exported here) and is `unknown` until a
 * zod parser has turned it into a record of the store port: the parser first decodes the SQL
 * representation (JSON text, 0/1 booleans), then validates the record (statuses, integers, error
 * infos).
 *
 * A row that does not parse becomes a {@link CorruptRow} (loads) or a `CORRUPT_ROW` error (reads
 * of one record); it never becomes a half-valid record.
 *
 * @module
 */
import { z } from 'zod';
import type { Json } from '../../core/command-type.js';
import { CocoError, ErrorCode, type ErrorInfo } from '../../core/errors.js';
import {
  COMMAND_STATUSES,
  COMPENSATION_STATUSES,
  TASK_STATUSES,
  UNDO_STATUSES,
} from '../../core/states.js';
import type { CommandRecord, EntityRecord, TaskRecord, UndoRecord } from '../../core/records.js';
import type { CommandPage, CorruptRow, HeldTree, PausedType, StatusChange } from '../port.js';
import {
  COMMAND_COLUMNS,
  COMMAND_STATE_FIELDS,
  COMMAND_STATE_FIELDS_V1,
  ENTITY_COLUMNS,
  TASK_COLUMNS,
  UNDO_COLUMNS,
} from './columns.js';

export {
  COMMAND_COLUMNS,
  COMMAND_EMBEDDED_ORDER,
  COMMAND_JSON_AT,
  COMMAND_STATE_FIELDS,
  COMMAND_STATE_FIELDS_V1,
  ENTITY_COLUMNS,
  TASK_COLUMNS,
  TASK_EMBEDDED_ORDER,
  TASK_JSON_AT,
  UNDO_COLUMNS,
  commandState,
  isActive,
  jsonText,
} from './columns.js';

type Ctx = z.RefinementCtx;

/** Decodes a JSON column: its text, or NULL for null. */
function json(value: unknown, field: string, ctx: Ctx): unknown {
  if (value === null) return null;
  if (typeof value !== 'string') {
    ctx.addIssue({
      code: 'custom',
      path: [field],
      message: `expected JSON text, got ${typeof value}`,
    });
    return null;
  }
  try {
    return JSON.parse(value) as unknown;
  } catch (error) {
    ctx.addIssue({
      code: 'custom',
      path: [field],
      message: `invalid JSON (${(error as Error).message})`,
    });
    return null;
  }
}

/** Decodes a 0/1 column; anything else is left for the schema to refuse. */
function flag(value: unknown): unknown {
  return value === 1 ? true : value === 0 ? false : value;
}

/** The row as an array, or an issue. */
function columns(row: unknown, count: number, ctx: Ctx): readonly unknown[] | null {
  if (Array.isArray(row) && row.length === count) return row as unknown[];
  ctx.addIssue({ code: 'custom', message: `expected a row of ${count} columns` });
  return null;
}

function decodeCommand(row: unknown, ctx: Ctx): unknown {
  const a = columns(row, COMMAND_COLUMNS.length, ctx);
  if (a === null) return row;
  // The bookkeeping fields live in the `state` JSON array (see COMMAND_STATE_FIELDS).
  const state = json(a[14], 'state', ctx);
  const ok =
    Array.isArray(state) &&
    (state.length === COMMAND_STATE_FIELDS.length || state.length === COMMAND_STATE_FIELDS_V1);
  if (!ok)
    ctx.addIssue({
      code: 'custom',
      path: ['state'],
      message: `expected a JSON array of ${COMMAND_STATE_FIELDS.length} values`,
    });
  const st: readonly unknown[] = ok ? state : [];
  return {
    id: a[0],
    type: a[1],
    paramsVersion: a[2],
    params: json(a[3], 'params', ctx),
    status: a[4],
    parentId: a[5],
    rootId: a[6],
    seq: a[7],
    originStage: a[8],
    childMode: a[9],
    failurePolicy: a[10],
    compensation: a[11],
    error: json(a[12], 'error', ctx),
    result: json(a[13], 'result', ctx),
    expectedTasks: st[0],
    expectedChildren: st[1],
    taskCount: st[2],
    childCount: st[3],
    undoCount: st[4],
    journalSeq: st[5],
    stage: st[6],
    stageDone: flag(st[7]),
    chainDone: flag(st[8]),
    cancelRequested: flag(st[9]),
    compensationError: st[10],
    data: st[11],
    attempts: st[12],
    nextAttemptAt: st[13],
    lastError: st[14],
    deadlineAt: st[15],
    priority: st.length > 16 ? st[16] : 0,
    queuedSince: st.length > 17 ? st[17] : null,
    idempotencyKey: a[15],
    createdAt: a[16],
    updatedAt: a[17],
    endedAt: a[18],
    tasksCleared: flag(a[19]),
    owner: a[20],
    leaseUntil: a[21],
    traceContext: a[22],
  };
}

function decodeTask(row: unknown, ctx: Ctx): unknown {
  const a = columns(row, TASK_COLUMNS.length, ctx);
  if (a === null) return row;
  return {
    commandId: a[0],
    ordinal: a[1],
    origin: a[2],
    agentId: a[3],
    verb: a[4],
    args: json(a[5], 'args', ctx),
    status: a[6],
    result: json(a[7], 'result', ctx),
    error: json(a[8], 'error', ctx),
    deadlineAt: a[9],
    stopRequested: flag(a[10]),
    createdAt: a[11],
    endedAt: a[12],
  };
}

function decodeUndo(row: unknown, ctx: Ctx): unknown {
  const a = columns(row, UNDO_COLUMNS.length, ctx);
  if (a === null) return row;
  return {
    commandId: a[0],
    ordinal: a[1],
    seq: a[2],
    stage: a[3],
    name: a[4],
    data: json(a[5], 'data', ctx),
    status: a[6],
    error: json(a[7], 'error', ctx),
  };
}

function decodeEntity(row: unknown, ctx: Ctx): unknown {
  const a = columns(row, ENTITY_COLUMNS.length, ctx);
  if (a === null) return row;
  return {
    kind: a[0],
    id: a[1],
    value: json(a[2], 'value', ctx),
    commandId: a[3],
    updatedAt: a[4],
  };
}

const int = z.number().int();
const intOrNull = int.nullable();
/** JSON values: whatever JSON.parse made of valid text. */
const jsonValue = z.custom<Json>(() => true);
/** Stored error infos keep any extra keys they were written with. */
const errorInfo = z
  .looseObject({ code: z.string(), message: z.string(), details: z.unknown().optional() })
  .nullable();

const commandRecord = z.object({
  id: int,
  type: z.string(),
  paramsVersion: int,
  params: z.unknown(),
  status: z.enum(COMMAND_STATUSES),
  parentId: intOrNull,
  rootId: int,
  seq: intOrNull,
  originStage: intOrNull,
  childMode: z.enum(['concurrent', 'serial']),
  failurePolicy: z.enum(['wait-all', 'fail-fast']),
  expectedTasks: int,
  expectedChildren: int,
  taskCount: int,
  childCount: int,
  undoCount: int,
  journalSeq: int,
  stage: int,
  stageDone: z.boolean(),
  chainDone: z.boolean(),
  cancelRequested: z.boolean(),
  error: errorInfo,
  result: z.unknown(),
  compensation: z.enum(COMPENSATION_STATUSES),
  compensationError: errorInfo,
  data: z.unknown(),
  attempts: int,
  nextAttemptAt: intOrNull,
  lastError: errorInfo,
  deadlineAt: intOrNull,
  priority: int,
  queuedSince: intOrNull,
  idempotencyKey: z.string().nullable(),
  createdAt: int,
  updatedAt: int,
  endedAt: intOrNull,
  tasksCleared: z.boolean(),
  owner: z.string().nullable(),
  leaseUntil: intOrNull,
  traceContext: z.string().nullable(),
});

const taskRecord = z.object({
  commandId: int,
  ordinal: int,
  origin: int,
  agentId: z.string(),
  verb: z.string(),
  args: z.unknown(),
  status: z.enum(TASK_STATUSES),
  result: z.unknown(),
  error: errorInfo,
  deadlineAt: intOrNull,
  stopRequested: z.boolean(),
  createdAt: int,
  endedAt: intOrNull,
});

const undoRecord = z.object({
  commandId: int,
  ordinal: int,
  seq: int,
  stage: int,
  name: z.string(),
  data: jsonValue.nullable(),
  status: z.enum(UNDO_STATUSES),
  error: errorInfo,
});

const entityRecord = z.object({
  kind: z.string(),
  id: z.string(),
  // null would mean "deleted": a stored entity never holds it.
  value: jsonValue.refine((v) => v !== null, 'null value'),
  commandId: int,
  updatedAt: int,
});

/** Tables whose rows are parsed here. */
export type RowTable = CorruptRow['table'] | 'entities';

/** The outcome of parsing one row. */
export type Parsed<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly corrupt: CorruptRow };

/** What names a row in messages: `5` (command), `5/2` (command/ordinal), `kind/id` (entity). */
function rowKey(table: RowTable, row: unknown): string {
  const a: readonly unknown[] = Array.isArray(row) ? (row as unknown[]) : [];
  return table === 'commands' ? String(a[0]) : `${String(a[0])}/${String(a[1])}`;
}

/** The command a raw row belongs to, when it can be read. */
function rowCommandId(table: RowTable, row: unknown): number | null {
  const value: unknown = Array.isArray(row)
    ? (row as unknown[])[table === 'entities' ? 3 : 0]
    : undefined;
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : null;
}

/** The parent of a raw `commands` row, when it can be read (null otherwise). */
function rowParentId(table: RowTable, row: unknown): number | null {
  if (table !== 'commands' || !Array.isArray(row)) return null;
  const value: unknown = (row as unknown[])[5];
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : null;
}

function corruptInfo(table: RowTable, row: unknown, error: z.ZodError): ErrorInfo {
  const issues = error.issues.map((i) => ({
    path: i.path.map(String).join('.'),
    message: i.message,
  }));
  const key = rowKey(table, row);
  const list = issues.map((i) => `${i.path === '' ? '(row)' : i.path}: ${i.message}`).join('; ');
  return {
    code: ErrorCode.CorruptRow,
    message: `${table} row ${key} cannot be read: ${list}`,
    details: { table, key, issues },
  };
}

function parser<T>(table: RowTable, schema: z.ZodType<T>): (row: unknown) => Parsed<T> {
  return (row) => {
    const result = schema.safeParse(row);
    if (result.success) return { ok: true, value: result.data };
    // Entity rows never appear in a load; they only reach parseOrThrow, which keeps `table`.
    const reported: CorruptRow['table'] = table === 'entities' ? 'commands' : table;
    return {
      ok: false,
      corrupt: {
        table: reported,
        commandId: rowCommandId(table, row),
        parentId: rowParentId(table, row),
        error: corruptInfo(table, row, result.error),
      },
    };
  };
}

/** Parses a `commands` row. */
export const parseCommandRow: (row: unknown) => Parsed<CommandRecord> = parser<CommandRecord>(
  'commands',
  z.preprocess(decodeCommand, commandRecord),
);
/** Parses a `tasks` row. */
export const parseTaskRow: (row: unknown) => Parsed<TaskRecord> = parser<TaskRecord>(
  'tasks',
  z.preprocess(decodeTask, taskRecord),
);
/** Parses an `undo_steps` row. */
export const parseUndoRow: (row: unknown) => Parsed<UndoRecord> = parser<UndoRecord>(
  'undo',
  z.preprocess(decodeUndo, undoRecord),
);
/** Parses an `entities` row. */
export const parseEntityRow: (row: unknown) => Parsed<EntityRecord> = parser<EntityRecord>(
  'entities',
  z.preprocess(decodeEntity, entityRecord),
);

/** Parses one row for a `get*` read: a row that does not parse throws `CORRUPT_ROW`, naming its table and key. */
export function parseOrThrow<T>(parse: (row: unknown) => Parsed<T>, row: unknown): T {
  const parsed = parse(row);
  if (parsed.ok) return parsed.value;
  throw new CocoError(ErrorCode.CorruptRow, parsed.corrupt.error.message, {
    details: parsed.corrupt.error.details,
  });
}

/**
 * A page of `listCommands` from its rows (newest first, at most `limit`): rows that do not parse
 * are reported beside the commands, and the next page starts below the oldest row read.
 */
export function commandPage(rows: readonly unknown[], limit: number): CommandPage {
  const commands: CommandRecord[] = [];
  const unreadable: CorruptRow[] = [];
  let oldest: number | null = null;
  for (const row of rows) {
    const parsed = parseCommandRow(row);
    if (parsed.ok) commands.push(parsed.value);
    else unreadable.push(parsed.corrupt);
    const id = parsed.ok ? parsed.value.id : parsed.corrupt.commandId;
    if (id !== null && (oldest === null || id < oldest)) oldest = id;
  }
  return { commands, unreadable, nextBeforeId: rows.length < limit ? null : oldest };
}

const statusChange = z.tuple([z.enum(COMMAND_STATUSES), z.coerce.number().int()]);
const STATUS_RANK = new Map<string, number>(COMMAND_STATUSES.map((s, i) => [s, i]));

/**
 * A command's status history from its rows (`[status, at]`), oldest first; statuses stored at
 * the same millisecond follow the state machine's order. A row that does not parse throws
 * `CORRUPT_ROW` naming the command.
 */
export function statusHistory(rows: readonly unknown[], commandId: number): StatusChange[] {
  const changes = rows.map((row) => {
    const parsed = statusChange.safeParse(Array.isArray(row) ? row : Object.values(row as object));
    if (!parsed.success)
      throw new CocoError(
        ErrorCode.CorruptRow,
        `command_status_history of command ${commandId}: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
        { details: { table: 'command_status_history', commandId } },
      );
    const [status, at] = parsed.data;
    return { status, at };
  });
  return changes.sort(
    (a, b) => a.at - b.at || (STATUS_RANK.get(a.status) ?? 0) - (STATUS_RANK.get(b.status) ?? 0),
  );
}

const heldTreeRow = z.tuple([int, z.string(), int, int]);

/**
 * The rows of `held_trees` (root id, error as JSON text, refusals, held at), in their order. A
 * row whose error cannot be read keeps its tree held, with a `CORRUPT_ROW` error saying so.
 */
export function heldTrees(rows: readonly unknown[]): HeldTree[] {
  const out: HeldTree[] = [];
  for (const row of rows) {
    const parsed = heldTreeRow.safeParse(row);
    if (!parsed.success) {
      const rootId: unknown = Array.isArray(row) ? (row as unknown[])[0] : undefined;
      if (typeof rootId !== 'number' || !Number.isSafeInteger(rootId)) continue;
      out.push({ rootId, error: unreadableHold(rootId), refusals: 1, heldAt: 0 });
      continue;
    }
    const [rootId, text, refusals, heldAt] = parsed.data;
    let error: ErrorInfo;
    try {
      error = errorInfo.unwrap().parse(JSON.parse(text));
    } catch {
      error = unreadableHold(rootId);
    }
    out.push({ rootId, error, refusals, heldAt });
  }
  return out;
}

function unreadableHold(rootId: number): ErrorInfo {
  return {
    code: ErrorCode.CorruptRow,
    message: `held_trees row ${rootId} cannot be read: the tree stays held`,
  };
}

const pausedTypeRow = z.tuple([z.string(), int, z.string().nullable(), z.string().nullable()]);

/**
 * The rows of `paused_types` (type, paused at, by, reason), in their order. A row that cannot be
 * read still pauses its type (a pause errs on the side of running nothing new), with what could
 * not be read left out.
 */
export function pausedTypes(rows: readonly unknown[]): PausedType[] {
  const out: PausedType[] = [];
  for (const row of rows) {
    const parsed = pausedTypeRow.safeParse(row);
    if (parsed.success) {
      const [type, pausedAt, by, reason] = parsed.data;
      out.push({ type, pausedAt, by, reason });
      continue;
    }
    const type: unknown = Array.isArray(row) ? (row as unknown[])[0] : undefined;
    if (typeof type === 'string') out.push({ type, pausedAt: 0, by: null, reason: null });
  }
  return out;
}
