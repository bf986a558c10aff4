/**
 * Rows of the job tables (`job_jobs`, `job_steps`), the same on every job store: their columns,
 * their parsers and the values an upsert writes. A row is `unknown` until a zod parser has
 * decoded its SQL representation and validated the record; a row that does not parse fails the
 * read with `CORRUPT_ROW`, naming the table and key, and never becomes a half-valid record.
 *
 * The dialects differ only in how integers and flags arrive ({@link RowDialect}): SQLite gives
 * numbers and 0/1, PostgreSQL's `bigint` arrives as decimal text and flags as booleans. Each job
 * store passes its own to {@link jobRows}.
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';
import { COMMAND_STATUSES, COMPENSATION_STATUSES, TASK_STATUSES } from '../core/states.js';
import { JOB_STATUSES, STEP_KINDS, type Job, type Step } from './port.js';

/** What a column holds; a store maps it to its own SQL type. */
export type ColumnKind = 'int' | 'text' | 'real' | 'flag';

/** A column of a job table. */
export interface Column {
  readonly name: string;
  readonly kind: ColumnKind;
}

/** `job_jobs` columns, in the order of {@link JobRows.jobValues}. */
export const JOB_COLUMNS: readonly Column[] = [
  { name: 'id', kind: 'int' },
  { name: 'type', kind: 'text' },
  { name: 'status', kind: 'text' },
  { name: 'compensation', kind: 'text' },
  { name: 'progress', kind: 'real' },
  { name: 'error', kind: 'text' },
  { name: 'started_at', kind: 'int' },
  { name: 'updated_at', kind: 'int' },
  { name: 'ended_at', kind: 'int' },
];

/** `job_steps` columns, in the order of {@link JobRows.stepValues}. */
export const STEP_COLUMNS: readonly Column[] = [
  { name: 'job_id', kind: 'int' },
  { name: 'key', kind: 'text' },
  { name: 'parent_key', kind: 'text' },
  { name: 'kind', kind: 'text' },
  { name: 'name', kind: 'text' },
  { name: 'command_id', kind: 'int' },
  { name: 'task_ordinal', kind: 'int' },
  { name: 'status', kind: 'text' },
  { name: 'compensation', kind: 'text' },
  { name: 'progress', kind: 'real' },
  { name: 'expected_tasks', kind: 'int' },
  { name: 'expected_children', kind: 'int' },
  { name: 'undo', kind: 'flag' },
  { name: 'error', kind: 'text' },
  { name: 'started_at', kind: 'int' },
  { name: 'ended_at', kind: 'int' },
  { name: 'updated_at', kind: 'int' },
];

/** The column names, comma-separated (for SELECT and INSERT lists). */
export function columnList(columns: readonly Column[]): string {
  return columns.map((c) => c.name).join(', ');
}

/** How one dialect represents integers and flags. */
export interface RowDialect {
  /** An integer column as the driver hands it over, decoded to a number. */
  readonly int: z.ZodType<number>;
  /** A flag column as the driver hands it over, decoded to a boolean. */
  readonly flag: z.ZodType<boolean>;
  /** A flag as the store writes it. */
  readonly flagValue: (value: boolean) => unknown;
}

/** A percentage column, 0..100. */
const percentColumn = z.number().min(0).max(100);

/** An error info stored as JSON text (NULL for none). */
const errorColumn = z
  .string()
  .nullable()
  .transform((text, ctx): unknown => {
    if (text === null) return null;
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `invalid JSON (${(error as Error).message})` });
      return z.NEVER;
    }
  })
  .pipe(
    z
      .looseObject({ code: z.string(), message: z.string(), details: z.unknown().optional() })
      .nullable(),
  );

const commandStatus = new Set<string>(COMMAND_STATUSES);
const taskStatus = new Set<string>(TASK_STATUSES);

/** The parsers and writers of job rows for one dialect. */
export interface JobRows {
  /** Parses a `job_jobs` row (an object keyed by column); throws `CORRUPT_ROW`. */
  readonly parseJobRow: (row: unknown) => Job;
  /** Parses a `job_steps` row (an object keyed by column); throws `CORRUPT_ROW`. */
  readonly parseStepRow: (row: unknown) => Step;
  /** The values of a job, in {@link JOB_COLUMNS} order. */
  readonly jobValues: (job: Job) => unknown[];
  /** The values of a step, in {@link STEP_COLUMNS} order. */
  readonly stepValues: (step: Step) => unknown[];
}

/** The job rows of a dialect. */
export function jobRows(dialect: RowDialect): JobRows {
  const { int, flag } = dialect;
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
      expected_tasks: int.pipe(z.number().nonnegative()),
      expected_children: int.pipe(z.number().nonnegative()),
      undo: flag,
      error: errorColumn,
      started_at: int,
      ended_at: int.nullable(),
      updated_at: int,
    })
    .refine(
      (r) => (r.kind === 'command' ? commandStatus.has(r.status) : taskStatus.has(r.status)),
      { message: 'status does not belong to the step kind', path: ['status'] },
    )
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
  return {
    parseJobRow: (row) => {
      const parsed = jobRow.safeParse(row);
      if (parsed.success) return parsed.data;
      throw corruptRow('job_jobs', String(fields(row).id), parsed.error);
    },
    parseStepRow: (row) => {
      const parsed = stepRow.safeParse(row);
      if (parsed.success) return parsed.data;
      const r = fields(row);
      throw corruptRow('job_steps', `${String(r.job_id)}/${String(r.key)}`, parsed.error);
    },
    jobValues: (j) => [
      j.id, j.type, j.status, j.compensation, j.progress, errorText(j.error), j.startedAt,
      j.updatedAt, j.endedAt,
    ], // prettier-ignore
    stepValues: (s) => [
      s.jobId, s.key, s.parentKey, s.kind, s.name, s.commandId, s.taskOrdinal, s.status,
      s.compensation, s.progress, s.expectedTasks, s.expectedChildren, dialect.flagValue(s.undo),
      errorText(s.error), s.startedAt, s.endedAt, s.updatedAt,
    ], // prettier-ignore
  };
}

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

function errorText(error: ErrorInfo | null): string | null {
  return error === null ? null : JSON.stringify(error);
}

/**
 * The condition under which an upsert may replace a stored job or step row (SQL shared by both
 * job stores): not from ended back to not ended, and not with a compensation that goes back
 * (none → compensating → compensated | failed). `cur` names the stored row, `next` the new one.
 */
export function forwardOnly(cur: string, next: string): string {
  const rank = (row: string): string =>
    `(CASE ${row}.compensation WHEN 'none' THEN 0 WHEN 'compensating' THEN 1 ELSE 2 END)`;
  return `(${next}.ended_at IS NOT NULL OR ${cur}.ended_at IS NULL) AND ${rank(next)} >= ${rank(cur)}`;
}
