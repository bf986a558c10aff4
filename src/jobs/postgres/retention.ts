/**
 * Retention on the PostgreSQL job store: deleting the jobs (and steps) of pruned trees in one
 * statement, and listing the oldest jobs for retention's sweep (src/jobs/retention.ts).
 *
 * @module
 */
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { JobAge, OldJobQuery } from '../port.js';
import { int8 } from './rows.js';

/** Before every job, in (at, id) order. */
const START: JobAge = { at: Number.MIN_SAFE_INTEGER, id: 0 };

/** The age expression of migration 0002's index job_jobs_age (the reads must spell it so). */
const AGE = 'coalesce(ended_at, started_at)';

/** The statements of retention, on the tables given (qualified names). */
export function jobRetentionSql(t: { jobs: string; steps: string }) {
  return {
    // $1: the job ids. Both deletes run, to completion, in the statement's one transaction.
    prune:
      `WITH s AS (DELETE FROM ${t.steps} WHERE job_id = ANY($1::bigint[]) RETURNING 1), ` +
      `j AS (DELETE FROM ${t.jobs} WHERE id = ANY($1::bigint[]) RETURNING 1) ` +
      'SELECT (SELECT count(*) FROM j)::int AS jobs, (SELECT count(*) FROM s)::int AS steps',
    count:
      `SELECT (SELECT count(*) FROM ${t.jobs} WHERE id = ANY($1::bigint[]))::int AS jobs, ` +
      `(SELECT count(*) FROM ${t.steps} WHERE job_id = ANY($1::bigint[]))::int AS steps`,
    // $1: before, $2 and $3: the cursor, $4: the limit.
    old:
      `SELECT id, ${AGE} AS at FROM ${t.jobs} WHERE ${AGE} < $1 ` +
      `AND (${AGE}, id) > ($2::bigint, $3::bigint) ORDER BY ${AGE}, id LIMIT $4`,
  };
}

/** Parameters of the `old` statement. */
export function oldJobValues(query: OldJobQuery): unknown[] {
  const after = query.after ?? START;
  return [query.before, after.at, after.id, query.limit];
}

/** The rows of the `old` statement as job ages (bigint columns arrive as text). */
export function oldJobRows(rows: readonly Record<string, unknown>[]): JobAge[] {
  return rows.map((r) => {
    const id = int8.safeParse(r.id);
    const at = int8.safeParse(r.at);
    if (!id.success || !at.success)
      throw new CocoError(
        ErrorCode.CorruptRow,
        `job_jobs row ${String(r.id)} has a non-integer id or time (${String(r.at)})`,
      );
    return { id: id.data, at: at.data };
  });
}
