/**
 * The job store port, in the job monitor's terms. The monitor follows the engine's committed
 * batches and keeps the user's view of them — **jobs** (one per root command) made of **steps**
 * (one per command of the tree and one per task) — in its own tables, through this port.
 *
 * The view is derived: the engine's store is the truth, and the monitor can rebuild any job from
 * it (see `JobMonitor.start`). The store therefore only promises what the view needs: each
 * {@link JobStore.apply} is atomic, calls are made one at a time, and reads see every applied
 * change. `apply` writes what it is given, with one exception that several monitors sharing a
 * store (one per coordinator node) need: an ended job or step is never made not-ended again, and
 * a compensation never goes back (none → compensating → compensated or failed). A node
 * rebuilding a job from a snapshot read just before the job's owner wrote its end would
 * otherwise show it running for good.
 *
 * @module
 */
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { CommandStatus, CompensationStatus, TaskStatus } from '../core/states.js';
import type { PoolFigures } from '../store/port.js';

export type { PoolFigures };

/** Statuses of a job: its root command's status, with every not-ended status shown as `running`. */
export const JOB_STATUSES = ['running', 'succeeded', 'failed', 'cancelled'] as const;
/** See {@link JOB_STATUSES}. */
export type JobStatus = (typeof JOB_STATUSES)[number];

/** What a step stands for. */
export const STEP_KINDS = ['command', 'task'] as const;
/** See {@link STEP_KINDS}. */
export type StepKind = (typeof STEP_KINDS)[number];

/** A command step has a command's status, a task step a task's. */
export type StepStatus = CommandStatus | TaskStatus;

/** A job: the user's view of one root command and everything it started. */
export interface Job {
  /** The root command's id. */
  readonly id: number;
  /** The root command's type. */
  readonly type: string;
  readonly status: JobStatus;
  /** Compensation of the root command's own work. */
  readonly compensation: CompensationStatus;
  /** 0..100 with one decimal: the root step's progress. */
  readonly progress: number;
  /** Why the root command failed (or was cancelled). */
  readonly error: ErrorInfo | null;
  /** When the root command was created (ms since the epoch). */
  readonly startedAt: number;
  /** When the monitor last changed this job. */
  readonly updatedAt: number;
  /** When the root command ended; null while it runs. */
  readonly endedAt: number | null;
}

/** A step of a job: one command of the tree, or one task of a command. */
export interface Step {
  /** The job (root command id). */
  readonly jobId: number;
  /** `c<commandId>` for a command, `t<commandId>.<ordinal>` for a task (see {@link commandStepKey}). */
  readonly key: string;
  /** The parent command's step key; null for the root step. A task's parent is its command. */
  readonly parentKey: string | null;
  readonly kind: StepKind;
  /** The command's type, or `verb@agent` for a task. */
  readonly name: string;
  /** The command (for a task: the command that owns it). */
  readonly commandId: number;
  /** The task's ordinal among its command's tasks; null for a command. */
  readonly taskOrdinal: number | null;
  readonly status: StepStatus;
  /** A command's compensation status; always `none` for a task. */
  readonly compensation: CompensationStatus;
  /** 0..100 with one decimal. */
  readonly progress: number;
  /** Declared counts of a command (0 for a task). */
  readonly expectedTasks: number;
  readonly expectedChildren: number;
  /** A task run by an undo step (compensation): it does not count toward progress. */
  readonly undo: boolean;
  readonly error: ErrorInfo | null;
  readonly startedAt: number;
  readonly endedAt: number | null;
  /**
   * The engine's last recorded change of the command (`CommandRecord.updatedAt`); for a task,
   * its end, else its creation. Lets the monitor refuse to replace newer state with older.
   */
  readonly updatedAt: number;
}

/** Upserts applied by {@link JobStore.apply}, atomically. */
export interface JobChanges {
  readonly jobs: readonly Job[];
  readonly steps: readonly Step[];
  /**
   * The highest engine command id whose changes the monitor has applied, stored with the same
   * transaction (the store keeps the greatest value it is given). Omitted: unchanged.
   */
  readonly watermark?: number;
}

/** Filters of {@link JobStore.listJobs}. */
export interface JobQuery {
  readonly status?: readonly JobStatus[];
  readonly type?: string;
  /** Keyset pagination: jobs with an id below this one (newest first). */
  readonly beforeId?: number;
  /** @default 100 (at most 1000) */
  readonly limit?: number;
}

/** Outcome of {@link JobStore.open}. */
export interface JobStoreOpenReport {
  /** Migrations applied by this call. */
  readonly applied: readonly number[];
  /** Schema version after the call. */
  readonly current: number;
}

/**
 * A job by its age, for retention (see {@link JobStore.listOldJobs}): `at` is when it ended, or,
 * for a job still shown running, when it started.
 */
export interface JobAge {
  readonly id: number;
  readonly at: number;
}

/** What {@link JobStore.listOldJobs} looks for. */
export interface OldJobQuery {
  /** Jobs whose age ({@link JobAge.at}) is strictly before this time (ms since the epoch). */
  readonly before: number;
  /** Only jobs after this one in (at, id) order; omitted or null: from the oldest. */
  readonly after?: JobAge | null;
  /** At most this many (1 to {@link MAX_JOB_PRUNE}). */
  readonly limit: number;
}

/** What {@link JobStore.pruneJobs} deleted (or, dry, would delete). */
export interface JobPruneCounts {
  readonly jobs: number;
  readonly steps: number;
}

/** Most ids one {@link JobStore.pruneJobs} or {@link JobStore.listOldJobs} call takes. */
export const MAX_JOB_PRUNE = 10_000;

/**
 * Job persistence.
 *
 * Guarantees:
 * - `apply` is atomic: all of its upserts are stored, or none.
 * - reads see every change whose `apply` has resolved.
 * - rows that cannot be parsed fail the read with a `CORRUPT_ROW` error naming them.
 */
export interface JobStore {
  /** Creates or migrates the tables. Called by the monitor before anything else. */
  open(): Promise<JobStoreOpenReport>;
  /**
   * Upserts jobs and steps (by job id, and by job id + step key) in one transaction; a row that
   * would take a stored row back (ended to not ended, compensation backwards) is skipped.
   */
  apply(changes: JobChanges): Promise<void>;
  getJob(id: number): Promise<Job | null>;
  /** Jobs matching the filters, newest first. */
  listJobs(query?: JobQuery): Promise<Job[]>;
  /** Every step of a job, in no particular order. */
  getSteps(jobId: number): Promise<Step[]>;
  /** Ids of every job stored as `running`, newest first. */
  listRunningJobIds(): Promise<number[]>;
  /**
   * Retention: deletes the jobs with these ids (root command ids) and all their steps, in one
   * transaction, whatever their status — the caller gives the jobs of trees the engine's store
   * no longer has. `dryRun` counts them and deletes nothing. At most {@link MAX_JOB_PRUNE} ids.
   */
  pruneJobs(ids: readonly number[], dryRun?: boolean): Promise<JobPruneCounts>;
  /**
   * Retention: jobs that ended before `before`, or still shown running but started before it,
   * oldest first — the jobs retention checks against the engine's store (a job whose root is
   * gone is left of a pruned tree: a prune that stopped between the engine's rows and the
   * view's, or a view that wrote a tree's last change after the tree was pruned).
   */
  listOldJobs(query: OldJobQuery): Promise<JobAge[]>;
  /** See {@link JobChanges.watermark}; null before the first one is stored. */
  getWatermark(): Promise<number | null>;
  /** The store's connection pool now, for metrics; optional (SQLite has none). */
  connections?(): PoolFigures;
  /**
   * Closes the connection. Once `options.signal` aborts, nothing more is waited for: the
   * connections of a pool the store created are destroyed (what is in flight on them fails), for
   * a database that does not answer.
   */
  close(options?: { readonly signal?: AbortSignal }): Promise<void>;
}

/** The step key of a command. */
export function commandStepKey(commandId: number): string {
  return `c${commandId}`;
}

/** The step key of a task. */
export function taskStepKey(commandId: number, ordinal: number): string {
  return `t${commandId}.${ordinal}`;
}

/** The job status shown for a root command's status. */
export function jobStatusOf(status: CommandStatus): JobStatus {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled'
    ? status
    : 'running';
}

/** Checks the arguments of {@link JobStore.pruneJobs}: `INVALID_OPTIONS` naming what is wrong. */
export function checkJobIds(ids: readonly number[]): void {
  if (!Array.isArray(ids) || ids.length > MAX_JOB_PRUNE || !ids.every(Number.isSafeInteger))
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `pruneJobs: ids must be an array of at most ${MAX_JOB_PRUNE} integers`,
    );
}

/** Checks a {@link OldJobQuery}: `INVALID_OPTIONS` naming the field that is wrong. */
export function checkOldJobQuery(q: OldJobQuery): void {
  const bad = (message: string): CocoError =>
    new CocoError(ErrorCode.InvalidOptions, `listOldJobs: ${message}`);
  if (typeof q !== 'object' || q === null) throw bad('the query must be an object');
  if (!Number.isSafeInteger(q.before))
    throw bad(`before must be a time in ms (an integer), not ${String(q.before)}`);
  if (!Number.isSafeInteger(q.limit) || q.limit < 1 || q.limit > MAX_JOB_PRUNE)
    throw bad(`limit must be an integer from 1 to ${MAX_JOB_PRUNE}, not ${String(q.limit)}`);
  if (q.after != null && (!Number.isSafeInteger(q.after.at) || !Number.isSafeInteger(q.after.id)))
    throw bad('after must be { at, id } (integers), as a JobAge gives it');
}
