/**
 * Rows of the job tables and their parsers. A row is `unknown` until a zod parser has decoded
 * its SQL representation (JSON text, 0/1 flags) and validated the record; a row that does not
 * parse fails the read with `CORRUPT_ROW`, naming the table and key, and never becomes a
 * half-valid record.
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, ErrorCode, type ErrorInfo } from '../../core/errors.js';
import { COMMAND_STATUSES, COMPENSATION_STATUSES, TASK_STATUSES } from '../../core/states.js';
import { errorColumn, percentColumn } from '../columns.js';
import { JOB_STATUSES, STEP_KINDS, type Job, type Step } from '../port.js';

/** `job_jobs` columns, in the order of the upsert's parameters. */
export const JOB_COLUMNS = [
  'id', 'type', 'status', 'compensation', 'progress', 'error', 'started_at', 'updated_at', 'ended_at',
] as const; // prettier-ignore

/** `job_steps` columns, in the order of the upsert's parameters. */
export const STEP_COLUMNS = [
  'job_id', 'key', 'parent_key', 'kind', 'name', 'command_id', 'task_ordinal', 'status',
  'compensation', 'progress', 'expected_tasks', 'expected_children', 'undo', 'error', 'started_at',
  'ended_at', 'updated_at',
] as const; // prettier-ignore

const int = z.number().int();

const jobRow = z
  .object({
    id: int,
    type: z.string(),
    status: z.enum(JOB_STATUSES),
    compensation: z.enum(COMPENSATION_STATUSES),
    progress: percentColumn,
    error: errorColumn,
    started_at: int,
    updated_at: int,
    ended_at: int.nullable(),
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
    job_id: int,
    key: z.string().regex(/^(c\d+|t\d+\.\d+)$/),
    parent_key: z.string().nullable(),
    kind: z.enum(STEP_KINDS),
    name: z.string(),
    command_id: int,
    task_ordinal: int.nullable(),
    status: z.string(),
    compensation: z.enum(COMPENSATION_STATUSES),
    progress: percentColumn,
    expected_tasks: int.nonnegative(),
    expected_children: int.nonnegative(),
    undo: z.union([z.literal(0), z.literal(1)]),
    error: errorColumn,
    started_at: int,
    ended_at: int.nullable(),
    updated_at: int,
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
    undo: r.undo === 1,
    error: r.error,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    updatedAt: r.updated_at,
  }));

function corrupt(
  table: string,
  row: unknown,
  key: (r: Record<string, unknown>) => string,
  error: z.ZodError,
): CocoError {
  const fields = typeof row === 'object' && row !== null ? (row as Record<string, unknown>) : {};
  const name = key(fields);
  const issues = error.issues.map((i) => ({
    path: i.path.map(String).join('.'),
    message: i.message,
  }));
  const list = issues.map((i) => `${i.path === '' ? '(row)' : i.path}: ${i.message}`).join('; ');
  return new CocoError(ErrorCode.CorruptRow, `${table} row ${name} cannot be read: ${list}`, {
    details: { table, key: name, issues },
  });
}

/** Parses a `job_jobs` row (an object keyed by column); throws `CORRUPT_ROW`. */
export function parseJobRow(row: unknown): Job {
  const parsed = jobRow.safeParse(row);
  if (parsed.success) return parsed.data;
  throw corrupt('job_jobs', row, (r) => String(r.id), parsed.error);
}

/** Parses a `job_steps` row (an object keyed by column); throws `CORRUPT_ROW`. */
export function parseStepRow(row: unknown): Step {
  const parsed = stepRow.safeParse(row);
  if (parsed.success) return parsed.data;
  throw corrupt('job_steps', row, (r) => `${String(r.job_id)}/${String(r.key)}`, parsed.error);
}

/** The upsert parameters of a job, in {@link JOB_COLUMNS} order. */
export function jobValues(j: Job): unknown[] {
  return [
    j.id,
    j.type,
    j.status,
    j.compensation,
    j.progress,
    errorText(j.error),
    j.startedAt,
    j.updatedAt,
    j.endedAt,
  ];
}

/** The upsert parameters of a step, in {@link STEP_COLUMNS} order. */
export function stepValues(s: Step): unknown[] {
  return [
    s.jobId, s.key, s.parentKey, s.kind, s.name, s.commandId, s.taskOrdinal, s.status, s.compensation,
    s.progress, s.expectedTasks, s.expectedChildren, s.undo ? 1 : 0, errorText(s.error), s.startedAt,
    s.endedAt, s.updatedAt,
  ]; // prettier-ignore
}

function errorText(error: ErrorInfo | null): string | null {
  return error === null ? null : JSON.stringify(error);
}
