/**
 * The job monitor: follows the engine's committed batches and keeps the user's view — jobs and
 * their steps — in the job store. The engine does not know it exists: it only listens to the
 * engine's `committed` and `progress` events and reads the engine's public queries.
 *
 * Writes are off the engine's hot path: the event listeners only queue; a single worker folds
 * every queued batch into an in-memory cache of the running jobs' trees (which computes progress
 * without reads) and writes what changed in one job-store transaction (group commit). Batches
 * are applied in order, so the job tables hold a prefix of the engine's history, and the
 * watermark stored with them tells a restart where that prefix ends.
 *
 * @example
 * ```ts
 * const engine = createEngine({ store: sqliteStore({ path }), ... });
 * const monitor = createJobMonitor({ engine, store: sqliteJobStore({ path }) }); // subscribes now
 * await engine.start();
 * await monitor.start(); // reconciles, then follows
 * monitor.on('job', (job) => console.log(job.id, job.status, job.progress));
 * ```
 * @module
 */
import { raceUntil, systemClock, timeLimit, type Clock, type TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/command-type.js';
import { CocoError, ErrorCode, toErrorInfo } from '../core/errors.js';
import type { ChangeBatch } from '../store/port.js';
import type { MonitoredEngine } from './engine-reads.js';
import { taskStepKey, type Job, type JobChanges, type JobQuery, type JobStore } from './port.js';
import { Follower, isEmpty, type ProgressReport } from './follower.js';
import {
  JobMonitorEvents,
  buildTree,
  type JobMonitorEventMap,
  type JobMonitorEventName,
  type JobTree,
} from './view.js';

/**
 * Agent progress is written at most this often. Agents report on every poll of every running
 * task; one job-store transaction per report would compete with the engine for the write lock
 * for a value nobody reads faster than a screen refresh, and 250 ms still looks live.
 */
export const DEFAULT_PROGRESS_FLUSH_MS = 250;
/**
 * First delay before retrying a failed job-store write (doubling up to the maximum). Failures are
 * mostly the engine holding the write lock past the busy timeout, so a short first retry usually
 * succeeds; 5 s caps the lag of the view behind a store that stays unwritable.
 */
const RETRY_BASE_MS = 50;
const RETRY_MAX_MS = 5_000;
/** On stop, how many times a failing write is tried before the rest is left to the next start's reconcile. */
const STOP_ATTEMPTS = 3;
/**
 * On stop, how long the last writes and the store's close are waited for before the monitor lets
 * go of a job store that does not answer (a database down or gone silent): what it did not write,
 * the next start reconciles. A healthy store takes them in milliseconds; 5 s, with the engine's
 * own bounds after it (a node stops its monitor first), makes `coco serve`'s 25 s on the defaults
 * (`jobs.stopTimeout` in the configuration).
 */
export const DEFAULT_MONITOR_STOP_TIMEOUT_MS = 5_000;

/** The error code of a monitor used in the wrong state (started twice, queried before start). */
export const JOB_MONITOR_STATE = ErrorCode.JobMonitorState;

/** What {@link createJobMonitor} takes. */
export interface JobMonitorOptions {
  /** The engine to follow (its events and queries). */
  readonly engine: MonitoredEngine;
  /** Where jobs and steps are kept (for example `sqliteJobStore({ path })`). */
  readonly store: JobStore;
  /** @default the system clock */
  readonly clock?: Clock;
  /** pino-compatible logger. @default silent */
  readonly logger?: Logger;
  /** See {@link DEFAULT_PROGRESS_FLUSH_MS}. @default 250 */
  readonly progressFlushMs?: number;
  /** See {@link DEFAULT_MONITOR_STOP_TIMEOUT_MS}. @default 5000 */
  readonly stopTimeoutMs?: number;
}

/** What {@link JobMonitor.start} found and did. */
export interface MonitorStartReport {
  /** Jobs rebuilt from the engine's stored state (not those of trees other nodes run). */
  readonly reconciled: number;
  /** Of those, jobs still running (followed from now on). */
  readonly running: number;
  readonly durationMs: number;
}

type State = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** The job/step progress monitor. Create with {@link createJobMonitor}, then {@link JobMonitor.start}. */
export class JobMonitor {
  /** Change notifications, sent after the monitor's own commit. */
  readonly events = new JobMonitorEvents();
  readonly #engine: MonitoredEngine;
  readonly #store: JobStore;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #progressMs: number;
  readonly #stopTimeoutMs: number;
  readonly #follower: Follower;
  #state: State = 'new';
  #batches: ChangeBatch[] = [];
  /** `performance.now()` when the oldest queued batch arrived (-1: none queued). */
  #queuedAt = -1;
  /** Same, for the batches being written (or kept after a failed write; -1: none). */
  #writingAt = -1;
  #progress = new Map<string, ProgressReport>();
  #progressDue = false;
  #progressTimer: TimerHandle | null = null;
  #failures = 0;
  #retryTimer: TimerHandle | null = null;
  #scheduled = false;
  #working: Promise<void> | null = null;
  #idleWaiters: (() => void)[] = [];
  #starting: Promise<MonitorStartReport> | null = null;
  #stopping: Promise<void> | null = null;
  readonly #unsubscribe: (() => void)[];

  /**
   * Subscribes to the engine's events at once, so that nothing committed after this is missed.
   * Until {@link JobMonitor.start}, committed batches are only queued (in memory): start the
   * monitor right after the engine.
   */
  constructor(options: JobMonitorOptions) {
    if (!options || typeof options !== 'object' || !options.engine || !options.store) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        'createJobMonitor: engine and store are required',
      );
    }
    const progressMs = options.progressFlushMs ?? DEFAULT_PROGRESS_FLUSH_MS;
    if (!Number.isSafeInteger(progressMs) || progressMs < 0) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `createJobMonitor: progressFlushMs must be a non-negative integer, not ${String(progressMs)}`,
      );
    }
    const stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_MONITOR_STOP_TIMEOUT_MS;
    if (!Number.isSafeInteger(stopTimeoutMs) || stopTimeoutMs <= 0) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `createJobMonitor: stopTimeoutMs must be a positive integer, not ${String(stopTimeoutMs)}`,
      );
    }
    this.#stopTimeoutMs = stopTimeoutMs;
    this.#engine = options.engine;
    this.#store = options.store;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silent;
    this.#progressMs = progressMs;
    this.#follower = new Follower(this.#engine, this.#store, this.#logger, (error, context) =>
      this.#report(error, context),
    );
    this.#unsubscribe = [
      this.#engine.on('committed', (batch) => this.#onCommitted(batch)),
      this.#engine.on('progress', (report) => this.#onProgress(report)),
      this.#engine.on('claimed', ({ rootIds }) => this.#onClaimed(rootIds)),
    ];
  }

  /** Subscribes to a notification; returns the unsubscribe function. */
  on<K extends JobMonitorEventName>(
    event: K,
    listener: (payload: JobMonitorEventMap[K]) => void,
  ): () => void {
    return this.events.on(event, listener);
  }

  /**
   * Opens the job store, then makes the view truthful again: every job the store says is running,
   * every root command the engine has not ended, and every root newer than the stored watermark
   * (its changes may have been committed by the engine but not yet by the monitor before a crash)
   * is rebuilt from the engine's stored state, one transaction per job — except, on a shared
   * store, the running jobs of trees another node runs (its monitor writes them; the trees this
   * node takes over later are rebuilt when it claims them). Then follows the engine, starting
   * with the batches committed since the monitor was created. Call after `engine.start()`.
   *
   * Engine rows that cannot be read do not stop the start: a job whose root row cannot be read
   * is left as stored, and a command or task list that cannot be read leaves its step as stored;
   * each is reported (log and `error` event) naming the row and why.
   */
  async start(): Promise<MonitorStartReport> {
    if (this.#state !== 'new')
      throw new CocoError(JOB_MONITOR_STATE, `the job monitor cannot start: it is ${this.#state}`);
    this.#state = 'starting';
    this.#starting = this.#start();
    try {
      return await this.#starting;
    } catch (error) {
      this.#state = 'new';
      throw error;
    } finally {
      this.#starting = null;
    }
  }

  async #start(): Promise<MonitorStartReport> {
    const began = performance.now();
    await this.#store.open();
    const f = this.#follower;
    const ids = await f.startTargets(this.#batches);
    let reconciled = 0;
    for (const id of ids) {
      try {
        if (await f.reconcile(id, true)) reconciled++;
      } catch (error) {
        // A job whose root row cannot be read stays as stored; the others are rebuilt.
        if (!(error instanceof CocoError && error.code === ErrorCode.CorruptRow)) throw error;
        this.#report(error, `job ${id} cannot be rebuilt at start; it is left as stored`);
      }
      // Ended jobs stay cached until the queued batches (older than the snapshot) are folded
      // onto them, so that those batches find their commands instead of looking unknown.
      await this.#applyNow(f.collect(this.#clock.now(), true));
    }
    await this.#applyNow(f.collect(this.#clock.now(), true));
    this.#state = 'running';
    const report = { reconciled, running: f.runningJobs, durationMs: performance.now() - began };
    this.#logger.info(report, 'job monitor started');
    this.#schedule();
    if (this.#progress.size > 0) this.#armProgress();
    return report;
  }

  /** The longest {@link stop} waits for the last writes and the store's close (`stopTimeoutMs`). */
  get stopBoundMs(): number {
    return this.#stopTimeoutMs;
  }

  /** The job store the view is kept in (retention prunes it beside the engine's rows: retention.ts). */
  get jobStore(): JobStore {
    return this.#store;
  }

  /** A job, as stored. */
  async getJob(id: number): Promise<Job | null> {
    return this.#store.getJob(id);
  }

  /** Jobs matching the filters, newest first (keyset pagination with `beforeId`). */
  async listJobs(query: JobQuery = {}): Promise<Job[]> {
    return this.#store.listJobs(query);
  }

  /** A job with its steps nested (children in creation order, tasks under their command); null if unknown. */
  async getTree(jobId: number): Promise<JobTree | null> {
    const job = await this.#store.getJob(jobId);
    if (!job) return null;
    return buildTree(job, await this.#store.getSteps(jobId));
  }

  /** Resolves once everything received so far (batches and progress) is written. */
  async flush(): Promise<void> {
    if (this.#state !== 'running') return;
    this.#progressTimer?.cancel();
    this.#progressTimer = null;
    if (this.#progress.size > 0) this.#progressDue = true;
    if (!this.#working && !this.#scheduled && !this.#retryTimer && !this.#hasWork()) return;
    const idle = new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    this.#schedule();
    await idle;
  }

  /**
   * How far the job view is behind the engine: milliseconds since the oldest committed batch
   * that is not written to the job tables yet arrived (0 when the view is caught up).
   */
  lagMs(): number {
    const oldest =
      this.#writingAt < 0
        ? this.#queuedAt
        : this.#queuedAt < 0
          ? this.#writingAt
          : Math.min(this.#writingAt, this.#queuedAt);
    return oldest < 0 ? 0 : performance.now() - oldest;
  }

  /** Counters for monitoring and tests. */
  stats(): { runningJobs: number; queuedBatches: number } {
    return { runningJobs: this.#follower.cache.size, queuedBatches: this.#batches.length };
  }

  /**
   * Stops following the engine, writes what was received (call it after `engine.stop()` to keep
   * the engine's last batches), and closes the job store. Anything left unwritten is rebuilt by
   * the next start's reconcile.
   */
  async stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    if (this.#starting) await this.#starting.catch(() => undefined);
    const wasRunning = this.#state === 'running';
    this.#state = 'stopping';
    for (const off of this.#unsubscribe) off();
    this.#progressTimer?.cancel();
    this.#progressTimer = null;
    this.#progressDue = true;
    // The store's part is bounded: past it, the signal lets go of a store that does not answer.
    const limit = timeLimit(this.#clock, this.#stopTimeoutMs);
    try {
      if (wasRunning) {
        const lastWrites = async (): Promise<void> => {
          for (let attempt = 0; attempt < STOP_ATTEMPTS && !limit.signal.aborted; attempt++) {
            this.#retryTimer?.cancel();
            this.#retryTimer = null;
            await this.#work();
            if (!this.#follower.hasFailed && !this.#hasWork()) break;
          }
        };
        await raceUntil(lastWrites(), limit.passed);
        this.#retryTimer?.cancel();
        this.#retryTimer = null;
        if (this.#follower.hasFailed || this.#hasWork() || this.#working !== null)
          this.#logger.warn(
            { stopTimeoutMs: this.#stopTimeoutMs, timedOut: limit.signal.aborted },
            'job monitor stopped with unwritten changes; the next start reconciles them',
          );
      }
      await this.#store.close({ signal: limit.signal });
    } finally {
      limit.cancel();
    }
    this.#state = 'stopped';
    this.#notifyIdle();
  }

  #onCommitted(batch: ChangeBatch): void {
    if (this.#state === 'stopping' || this.#state === 'stopped') return;
    this.#batches.push(batch);
    if (this.#queuedAt < 0) this.#queuedAt = performance.now();
    this.#schedule();
  }

  #onClaimed(rootIds: readonly number[]): void {
    if (this.#state === 'stopping' || this.#state === 'stopped') return;
    this.#follower.claimed(rootIds);
    this.#schedule();
  }

  #onProgress(report: ProgressReport): void {
    if (this.#state === 'stopping' || this.#state === 'stopped') return;
    this.#progress.set(taskStepKey(report.commandId, report.ordinal), report);
    if (this.#state === 'running') this.#armProgress();
  }

  #armProgress(): void {
    if (this.#progressDue) {
      this.#schedule(); // due already: the write to come takes this report too
      return;
    }
    if (this.#progressTimer) return;
    this.#progressTimer = this.#clock.setTimer(this.#progressMs, () => {
      this.#progressTimer = null;
      this.#progressDue = true;
      this.#schedule();
    });
  }

  #hasWork(): boolean {
    return (
      this.#batches.length > 0 ||
      this.#follower.hasFailed ||
      this.#follower.needsRepair ||
      (this.#progressDue && this.#progress.size > 0)
    );
  }

  /** Runs the worker on a later macrotask, so that batches committed meanwhile join one write. */
  #schedule(): void {
    if (this.#scheduled || this.#working || this.#retryTimer) return;
    if (this.#state !== 'running' && this.#state !== 'stopping') return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#work();
    });
  }

  #work(): Promise<void> {
    if (this.#working) return this.#working;
    const working = this.#loop()
      .catch((error: unknown) => {
        // Not expected (failures are handled inside): back off rather than spin on a bug.
        this.#report(error, 'job monitor worker');
        this.#retryTimer ??= this.#clock.setTimer(RETRY_MAX_MS, () => {
          this.#retryTimer = null;
          this.#schedule();
        });
      })
      .finally(() => {
        this.#working = null;
        if (this.#retryTimer) return;
        if (this.#hasWork()) this.#schedule();
        else this.#notifyIdle();
      });
    this.#working = working;
    return working;
  }

  /** The single writer: repairs, then folds queued batches and progress into one write, until idle. */
  async #loop(): Promise<void> {
    const f = this.#follower;
    while (this.#retryTimer === null && (this.#state === 'running' || this.#state === 'stopping')) {
      if (f.needsRepair) {
        for (const id of await f.repairTargets()) await f.repair(id);
        if (!(await this.#write(f.collect(this.#clock.now())))) return;
        continue;
      }
      const batches = this.#batches;
      const progress = batches.length > 0 || this.#progressDue;
      if (batches.length === 0 && !(progress && this.#progress.size > 0) && !f.hasFailed) return;
      this.#batches = [];
      if (this.#writingAt < 0) this.#writingAt = this.#queuedAt;
      this.#queuedAt = -1;
      for (const batch of batches) f.fold(batch);
      if (progress) {
        f.foldProgress(this.#progress.values());
        this.#progress.clear();
        // A batch took the reports along before their timer fired: that timer has nothing left
        // to write. Left armed, it would set #progressDue with no report pending, and the
        // reports that follow (#armProgress returns while #progressDue is set) would wait for
        // the next batch — for a long task, its end.
        this.#progressTimer?.cancel();
        this.#progressTimer = null;
        this.#progressDue = false;
      }
      f.afterFold();
      const changes = f.collect(this.#clock.now());
      f.releaseEndedAtStart();
      if (!(await this.#write(changes))) return;
    }
  }

  /** Writes changes (throwing on failure: used by start) and notifies. */
  async #applyNow(changes: JobChanges): Promise<void> {
    if (isEmpty(changes)) return;
    await this.#store.apply(changes);
    this.#afterWrite(changes);
  }

  /** Writes changes; on failure keeps them for the next write and arms a retry. */
  async #write(changes: JobChanges): Promise<boolean> {
    if (isEmpty(changes)) {
      this.#writingAt = -1;
      return true;
    }
    try {
      await this.#store.apply(changes);
    } catch (error) {
      this.#follower.retain(changes);
      this.#failures++;
      this.#report(error, `writing the job tables (attempt ${this.#failures})`);
      const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(this.#failures - 1, 16));
      this.#retryTimer = this.#clock.setTimer(delay, () => {
        this.#retryTimer = null;
        this.#schedule();
      });
      return false;
    }
    this.#failures = 0;
    this.#writingAt = -1;
    this.#afterWrite(changes);
    return true;
  }

  /** Bookkeeping and notifications after a successful write. */
  #afterWrite(changes: JobChanges): void {
    this.#follower.written(changes);
    if (this.events.has('step')) for (const s of changes.steps) this.events.emit('step', s);
    if (this.events.has('job')) for (const j of changes.jobs) this.events.emit('job', j);
  }

  #report(error: unknown, context: string): void {
    const info = toErrorInfo(error, ErrorCode.StoreFailed);
    this.#logger.error({ error: info }, context);
    this.events.emit('error', { error: info, context });
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** Creates a job monitor; it subscribes to the engine's events at once (start it after the engine). */
export function createJobMonitor(options: JobMonitorOptions): JobMonitor {
  return new JobMonitor(options);
}
