/**
 * The job/step progress monitor: the user's view of what the engine does. One **job** per root
 * command, made of **steps** (each command of the tree and each task), with statuses, times and
 * progress rolled up the tree — kept in its own tables, truthful across restarts, and unknown to
 * the engine (which never imports this module).
 *
 * @example
 * ```ts
 * import { createJobMonitor, sqliteJobStore } from 'coco-engine/jobs';
 *
 * const monitor = createJobMonitor({ engine, store: sqliteJobStore({ path: 'coco.db' }) });
 * await engine.start();
 * await monitor.start();
 * const tree = await monitor.getTree(jobId);
 * ```
 * @module
 */
export {
  createJobMonitor,
  JobMonitor,
  DEFAULT_PROGRESS_FLUSH_MS,
  JOB_MONITOR_STATE,
  type JobMonitorOptions,
  type MonitorStartReport,
} from './monitor.js';
export type { MonitoredEngine } from './engine-reads.js';
export {
  buildTree,
  type JobTree,
  type StepNode,
  type JobMonitorEventMap,
  type JobMonitorEventName,
} from './view.js';
export {
  JOB_STATUSES,
  STEP_KINDS,
  commandStepKey,
  taskStepKey,
  jobStatusOf,
  type Job,
  type JobChanges,
  type JobQuery,
  type JobStatus,
  type JobStore,
  type JobStoreOpenReport,
  type JobAge,
  type JobPruneCounts,
  type OldJobQuery,
  MAX_JOB_PRUNE,
  type Step,
  type StepKind,
  type StepStatus,
} from './port.js';
export {
  MAX_UNFINISHED,
  commandProgress,
  rollUp,
  taskProgress,
  toPercent,
  weightedProgress,
  type RollUpInput,
  type TaskPart,
} from './progress.js';
export { runRetention, type RetentionReport, type RetentionTarget } from './retention.js';
export { jobStoreFromUrl } from '../config/store-url.js';
export { sqliteJobStore, SqliteJobStore, type SqliteJobStoreOptions } from './sqlite/job-store.js';
export {
  postgresJobStore,
  PostgresJobStore,
  type PostgresJobStoreOptions,
} from './postgres/job-store.js';
