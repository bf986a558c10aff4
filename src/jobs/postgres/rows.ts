/**
 * Rows of the PostgreSQL job tables: their parsers, and the column arrays that
 * {@link JobStore.apply} sends to `unnest`.
 *
 * A row is `unknown` until a zod parser has decoded its SQL representation and validated the
 * record. `pg` hands `bigint` columns over as decimal text (it does not narrow int8 to a number),
 * so each one is decoded here and must be a safe integer; `error` is JSON text; `undo` a
 * boolean. A row that does not parse fails the read with `CORRUPT_ROW`, naming the table and key,
 * and never becomes a half-valid record.
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, ErrorCode, type ErrorInfo } from '../../core/errors.js';
import { COMMAND_STATUSES, COMPENSATION_STATUSES, TASK_STATUSES } from '../../core/states.js';
import { errorColumn, percentColumn } from '../columns.js';
import { JOB_STATUSES, STEP_KINDS, type Job, type Step } from '../port.js';

/** A column of an upsert: its name and the PostgreSQL type of its `unnest` array. */
export interface Column {
  readonly name: string;
  readonly type: 'bigint' | 'text' | 'float8' | 'boolean';
}

/** `job_jobs` columns, in the order of {@link jobArrays}. */
export const JOB_COLUMNS: readonly Column[] = [
  { name: 'id', type: 'bigint' },
  { name: 'type', type: 'text' },
  { name: 'status', type: 'text' },
  { name: 'compensation', type: 'text' },
  { name: 'progress', type: 'float8' },
  { name: 'error', type: 'text' },
  { name: 'started_at', type: 'bigint' },
  { name: 'updated_at', type: 'bigint' },
  { name: 'ended_at', type: 'bigint' },
];

/** `job_steps` columns, in the order of {@link stepArrays}. */
export const STEP_COLUMNS: readonly Column[] = [
  { name: 'job_id', type: 'bigint' },
  { name: 'key', type: 'text' },
  { name: 'parent_key', type: 'text' },
  { name: 'kind', type: 'text' },
  { name: 'name', type: 'text' },
  { name: 'command_id', type: 'bigint' },
  { name: 'task_ordinal', type: 'bigint' },
  { name: 'status', type: 'text' },
  { name: 'compensation', type: 'text' },
  { name: 'progress', type: 'float8' },
  { name: 'expected_tasks', type: 'bigint' },
  { name: 'expected_children', type: 'bigint' },
  { name: 'undo', type: 'boolean' },
  { name: 'error', type: 'text' },
  { name: 'started_at', type: 'bigint' },
  { name: 'ended_at', type: 'bigint' },
  { name: 'updated_at', type: 'bigint' },
];

/** A `bigint` column: decimal text from `pg` (or a number), decoded to a safe integer. */
export const int8 = z
  .union([z.number(), z.string().regex(/^-?\d+$/, 'not an integer')])
  .transform((value, ctx): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n)) {
      ctx.addIssue({ code: 'custom', message: `${value} is not a safe integer` });
      return z.NEVER;
    }
    return n;
  });

const jobRow = z
  .object({
    id: int8,
    type: z.string(),
    status: z.enum(JOB_STATUSES),
    compensation: z.enum(COMPENSATION_STATUSES),
    progress: percentColumn,
    error: errorColumn,
    started_at: int8,
    updated_at: int8,
    ended_at: int8.nullable(),
  })
  .transform((r): Job => ({
    id: r.id,
    type: r.type,
    status: r.status,
    compensation: r.compensation,
    progress: r.progress,
    error: r.error,
    startedAt: r.started_at,
    updatedAt: r.updated_at,
    endedAt: r.ended_at,
  }));

const commandStatus = new Set<string>(COMMAND_STATUSES);
const taskStatus = new Set<string>(TASK_STATUSES);

const stepRow = z
  .object({
    job_id: int8,
    key: z.string().regex(/^(c\d+|t\d+\.\d+)$/),
    parent_key: z.string().nullable(),
    kind: z.enum(STEP_KINDS),
    name: z.string(),
    command_id: int8,
    task_ordinal: int8.nullable(),
    status: z.string(),
    compensation: z.enum(COMPENSATION_STATUSES),
    progress: percentColumn,
    expected_tasks: int8.pipe(z.number().nonnegative()),
    expected_children: int8.pipe(z.number().nonnegative()),
    undo: z.boolean(),
    error: errorColumn,
    started_at: int8,
    ended_at: int8.nullable(),
    updated_at: int8,
  })
  .refine((r) => (r.kind === 'command' ? commandStatus.has(r.status) : taskStatus.has(r.status)), {
    message: 'status does not belong to the step kind',
    path: ['status'],
  })
  .refine((r) => (r.kind === 'command') === (r.task_ordinal === null), {
    message: 'a task step has an ordinal, a command step none',
    path: ['task_ordinal'],
  })
  .transform((r): Step => ({
    jobId: r.job_id,
    key: r.key,
    parentKey: r.parent_key,
    kind: r.kind,
    name: r.name,
    commandId: r.command_id,
    taskOrdinal: r.task_ordinal,
    status: r.status as Step['status'],
    compensation: r.compensation,
    progress: r.progress,
    expectedTasks: r.expected_tasks,
    expectedChildren: r.expected_children,
    undo: r.undo,
    error: r.error,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    updatedAt: r.updated_at,
  }));

/** A `CORRUPT_ROW` error naming the table, the row's key and every problem found. */
export function corruptRow(table: string, key: string, error: z.ZodError): CocoError {
  const issues = error.issues.map((i) => ({
    path: i.path.map(String).join('.'),
    message: i.message,
  }));
  const list = issues.map((i) => `${i.path === '' ? '(row)' : i.path}: ${i.message}`).join('; ');
  return new CocoError(ErrorCode.CorruptRow, `${table} row ${key} cannot be read: ${list}`, {
    details: { table, key, issues },
  });
}

function fields(row: unknown): Record<string, unknown> {
  return typeof row === 'object' && row !== null ? (row as Record<string, unknown>) : {};
}

/** Parses a `job_jobs` row (an object keyed by column); throws `CORRUPT_ROW`. */
export function parseJobRow(row: unknown): Job {
  const parsed = jobRow.safeParse(row);
  if (parsed.success) return parsed.data;
  throw corruptRow('job_jobs', String(fields(row).id), parsed.error);
}

/** Parses a `job_steps` row (an object keyed by column); throws `CORRUPT_ROW`. */
export function parseStepRow(row: unknown): Step {
  const parsed = stepRow.safeParse(row);
  if (parsed.success) return parsed.data;
  const r = fields(row);
  throw corruptRow('job_steps', `${String(r.job_id)}/${String(r.key)}`, parsed.error);
}

/**
 * The jobs as one array per column of {@link JOB_COLUMNS}, for `unnest`. Jobs with the same id
 * are reduced to the last one: `INSERT ... ON CONFLICT DO UPDATE` cannot touch a row twice in
 * one statement, and the last write is what a row-by-row upsert (the SQLite store) leaves.
 */
export function jobArrays(jobs: readonly Job[]): unknown[][] {
  const last = new Map<number, Job>();
  for (const j of jobs) last.set(j.id, j);
  const cols: unknown[][] = JOB_COLUMNS.map(() => []);
  for (const j of last.values()) {
    push(cols, [
      j.id, j.type, j.status, j.compensation, j.progress, errorText(j.error), j.startedAt,
      j.updatedAt, j.endedAt,
    ]); // prettier-ignore
  }
  return cols;
}

/** The steps as one array per column of {@link STEP_COLUMNS}; the last of a key wins (see {@link jobArrays}). */
export function stepArrays(steps: readonly Step[]): unknown[][] {
  const last = new Map<string, Step>();
  for (const s of steps) last.set(`${s.jobId}/${s.key}`, s);
  const cols: unknown[][] = STEP_COLUMNS.map(() => []);
  for (const s of last.values()) {
    push(cols, [
      s.jobId, s.key, s.parentKey, s.kind, s.name, s.commandId, s.taskOrdinal, s.status,
      s.compensation, s.progress, s.expectedTasks, s.expectedChildren, s.undo, errorText(s.error),
      s.startedAt, s.endedAt, s.updatedAt,
    ]); // prettier-ignore
  }
  return cols;
}

function push(cols: unknown[][], values: readonly unknown[]): void {
  values.forEach((v, i) => cols[i]!.push(v));
}

function errorText(error: ErrorInfo | null): string | null {
  return error === null ? null : JSON.stringify(error);
}
