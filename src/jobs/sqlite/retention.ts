/**
 * Retention on the SQLite job store: deleting the jobs (and steps) of pruned trees, and listing
 * the oldest jobs for retention's sweep (src/jobs/retention.ts).
 *
 * @module
 */
import type Database from 'better-sqlite3';
import type { JobAge, JobPruneCounts, OldJobQuery } from '../port.js';

type Stmt = Database.Statement<unknown[], unknown>;

/** Before every job, in (at, id) order. */
const START: JobAge = { at: Number.MIN_SAFE_INTEGER, id: 0 };

/** The statements of retention on one connection. */
export interface JobRetentionStatements {
  readonly deleteSteps: Stmt;
  readonly deleteJob: Stmt;
  readonly countSteps: Stmt;
  readonly countJob: Stmt;
  readonly oldJobs: Stmt;
}

/** The age expression of migration 0002's index job_jobs_age (the reads must spell it so). */
const AGE = 'coalesce(ended_at, started_at)';

/** Prepares the statements (after migration). */
export function prepareJobRetention(db: Database.Database): JobRetentionStatements {
  return {
    deleteSteps: db.prepare('DELETE FROM job_steps WHERE job_id = ?'),
    deleteJob: db.prepare('DELETE FROM job_jobs WHERE id = ?'),
    countSteps: db.prepare('SELECT count(*) FROM job_steps WHERE job_id = ?').pluck(),
    countJob: db.prepare('SELECT count(*) FROM job_jobs WHERE id = ?').pluck(),
    oldJobs: db
      .prepare(
        `SELECT id, ${AGE} AS at FROM job_jobs INDEXED BY job_jobs_age ` +
          `WHERE ${AGE} < ? AND (${AGE}, id) > (?, ?) ORDER BY ${AGE}, id LIMIT ?`,
      )
      .raw(true),
  };
}

/** Deletes (or counts) jobs and their steps; run it in one write transaction. */
export function pruneJobRows(
  q: JobRetentionStatements,
  ids: readonly number[],
  dryRun: boolean,
): JobPruneCounts {
  let jobs = 0;
  let steps = 0;
  for (const id of ids) {
    if (dryRun) {
      steps += q.countSteps.get(id) as number;
      jobs += q.countJob.get(id) as number;
    } else {
      steps += q.deleteSteps.run(id).changes;
      jobs += q.deleteJob.run(id).changes;
    }
  }
  return { jobs, steps };
}

/** The oldest jobs after the cursor (see {@link JobStore.listOldJobs}). */
export function oldJobs(q: JobRetentionStatements, query: OldJobQuery): JobAge[] {
  const after = query.after ?? START;
  const rows = q.oldJobs.all(query.before, after.at, after.id, query.limit) as [number, number][];
  return rows.map(([id, at]) => ({ id, at }));
}
