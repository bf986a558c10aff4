/**
 * Rows of the PostgreSQL job tables: the dialect of the shared job rows (../rows.ts) and the
 * column arrays that {@link JobStore.apply} sends to `unnest`.
 *
 * `pg` hands `bigint` columns over as decimal text (it does not narrow int8 to a number), so each
 * one is decoded here and must be a safe integer; flags are booleans.
 *
 * @module
 */
import { z } from 'zod';
import type { Job, Step } from '../port.js';
import { JOB_COLUMNS, STEP_COLUMNS, jobRows } from '../rows.js';

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

const rows = jobRows({ int: int8, flag: z.boolean(), flagValue: (value) => value });

/** Parses a `job_jobs` row (an object keyed by column); throws `CORRUPT_ROW`. */
export const parseJobRow = rows.parseJobRow;
/** Parses a `job_steps` row (an object keyed by column); throws `CORRUPT_ROW`. */
export const parseStepRow = rows.parseStepRow;

/**
 * The jobs as one array per column of {@link JOB_COLUMNS}, for `unnest`. Jobs with the same id
 * are reduced to the last one: `INSERT ... ON CONFLICT DO UPDATE` cannot touch a row twice in
 * one statement, and the last write is what a row-by-row upsert (the SQLite store) leaves.
 */
export function jobArrays(jobs: readonly Job[]): unknown[][] {
  const last = new Map<number, Job>();
  for (const j of jobs) last.set(j.id, j);
  return columnArrays(JOB_COLUMNS.length, [...last.values()].map(rows.jobValues));
}

/** The steps as one array per column of {@link STEP_COLUMNS}; the last of a key wins (see {@link jobArrays}). */
export function stepArrays(steps: readonly Step[]): unknown[][] {
  const last = new Map<string, Step>();
  for (const s of steps) last.set(`${s.jobId}/${s.key}`, s);
  return columnArrays(STEP_COLUMNS.length, [...last.values()].map(rows.stepValues));
}

function columnArrays(width: number, records: readonly unknown[][]): unknown[][] {
  const cols: unknown[][] = Array.from({ length: width }, () => []);
  for (const values of records) values.forEach((v, i) => cols[i]!.push(v));
  return cols;
}
