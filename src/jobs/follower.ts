/**
 * The monitor's model side: turns the engine's batches, progress reports and stored state into
 * job-store changes, through the cache of running jobs. It does no scheduling and no writing
 * (see monitor.ts); it only says what to write.
 *
 * @module
 */
import type { Logger } from '../core/command-type.js';
import { fromErrorInfo } from '../core/errors.js';
import { isTaskEnded, isTerminal } from '../core/states.js';
import type { EngineEventMap } from '../engine/events.js';
import type { ChangeBatch } from '../store/port.js';
import {
  activeRootIds,
  newestCommandId,
  readJob,
  rootIdsAbove,
  runElsewhere,
  type MonitoredEngine,
} from './engine-reads.js';
import { commandStepKey, taskStepKey, type JobChanges, type JobStore } from './port.js';
import { JobCache } from './tree.js';

/** An agent's progress report, as the engine emits it. */
export type ProgressReport = EngineEventMap['progress'];

/** Reports a failure that is handled (logged and notified), never thrown. */
export type ReportFailure = (error: unknown, context: string) => void;

/** Folds engine history into the cache and collects what changed. */
export class Follower {
  readonly cache = new JobCache();
  /** Records the cache could not place: their commands' roots are reconciled. */
  readonly #unknownCommands = new Set<number>();
  readonly #reconcileRoots = new Set<number>();
  /** Roots queued for rebuilding because the engine took their trees over (see claimed). */
  readonly #claimed = new Set<number>();
  /** Jobs that stayed incomplete after a reconcile (not retried, to avoid a loop). */
  readonly #unrepairable = new Set<number>();
  /** Jobs found ended by the start's reconcile, cached until the first fold (see the monitor's start). */
  #endedAtStart: number[] = [];
  /** Highest command id folded (or covered by the start's reconcile), and highest watermark written. */
  #seen = 0;
  #watermark = 0;
  /** A write that failed, merged under the next one. */
  #failed: JobChanges | null = null;

  readonly #engine: MonitoredEngine;
  readonly #store: JobStore;
  readonly #logger: Logger;
  readonly #report: ReportFailure;
  constructor(engine: MonitoredEngine, store: JobStore, logger: Logger, report: ReportFailure) {
    this.#engine = engine;
    this.#store = store;
    this.#logger = logger;
    this.#report = report;
  }

  /**
   * Jobs of trees this node's engine took over from a node that left: rebuilt from the engine,
   * since the departed node's monitor may not have written its last changes.
   */
  claimed(rootIds: readonly number[]): void {
    for (const id of rootIds) {
      this.#reconcileRoots.add(id);
      this.#claimed.add(id);
    }
  }

  /** Whether records could not be placed (their jobs must be rebuilt). */
  get needsRepair(): boolean {
    return this.#unknownCommands.size > 0 || this.#reconcileRoots.size > 0;
  }

  /** Whether a failed write waits to be merged into the next one. */
  get hasFailed(): boolean {
    return this.#failed !== null;
  }

  /** Jobs still running once the start's ended jobs are set aside. */
  get runningJobs(): number {
    return this.cache.size - this.#endedAtStart.length;
  }

  /** Records that every command up to `id` is covered (the watermark may rise to it). */
  cover(id: number): void {
    if (id > this.#seen) this.#seen = id;
  }

  /**
   * The roots a start must rebuild, ascending: every job the store says is running, every root
   * the engine has not ended, every root above the stored watermark (the engine may have
   * committed it before a crash while the view had not), and every root in the batches queued
   * since the monitor subscribed — so that the watermark written at start never covers a root
   * whose job exists only in the queue. Raises the watermark to cover them.
   */
  async startTargets(queued: readonly ChangeBatch[]): Promise<number[]> {
    const watermark = await this.#store.getWatermark();
    const ids = new Set<number>(await this.#store.listRunningJobIds());
    for (const id of await activeRootIds(this.#engine)) ids.add(id);
    if (watermark !== null)
      for (const id of await rootIdsAbove(this.#engine, watermark)) ids.add(id);
    for (const batch of queued)
      for (const r of batch.commandInserts) if (r.parentId === null) ids.add(r.id);
    // The first start covers the engine's history so far: roots that ended before any monitor
    // ran get no job (there is nothing to follow), later ones are rebuilt by the rules above.
    this.cover(watermark ?? (await newestCommandId(this.#engine)));
    for (const id of ids) this.cover(id);
    return [...ids].sort((a, b) => a - b);
  }

  /** Folds one engine batch into the cache; records it cannot place are queued for repair. */
  fold(batch: ChangeBatch): void {
    const inserts =
      batch.commandInserts.length > 1
        ? [...batch.commandInserts].sort((a, b) => a.id - b.id)
        : batch.commandInserts;
    const cache = this.cache;
    for (const r of inserts) {
      if (r.id > this.#seen) this.#seen = r.id;
      if (!cache.mergeCommand(r) && !isTerminal(r.status)) this.#reconcileRoots.add(r.rootId);
    }
    for (const t of batch.taskInserts) {
      if (!cache.mergeTask(t) && !isTaskEnded(t.status)) this.#unknownCommands.add(t.commandId);
    }
    for (const u of batch.commandUpdates) {
      if (!cache.updateCommand(u) && !isTerminal(u.status)) this.#unknownCommands.add(u.id);
    }
    for (const u of batch.taskUpdates) {
      if (!cache.updateTask(u) && !isTaskEnded(u.status)) this.#unknownCommands.add(u.commandId);
    }
  }

  /** Folds agent progress reports (the latest per task). */
  foldProgress(reports: Iterable<ProgressReport>): void {
    for (const p of reports) this.cache.reportProgress(p.commandId, p.ordinal, p.progress);
  }

  /** After a fold: queues incomplete jobs for repair, and releases the start's ended jobs. */
  afterFold(): void {
    for (const id of this.cache.incomplete()) {
      if (!this.#unrepairable.has(id)) this.#reconcileRoots.add(id);
    }
  }

  /** Forgets the jobs the start's reconcile found ended (call once their queued batches are folded). */
  releaseEndedAtStart(): void {
    for (const id of this.#endedAtStart) this.cache.forget(id);
    this.#endedAtStart = [];
  }

  /** The roots to rebuild for the records that could not be placed (clears the queue). */
  async repairTargets(): Promise<number[]> {
    const commands = [...this.#unknownCommands];
    this.#unknownCommands.clear();
    for (const id of commands) {
      try {
        const c = await this.#engine.get(id);
        if (c) this.#reconcileRoots.add(c.rootId);
      } catch (error) {
        this.#report(error, `reading command ${id}`);
      }
    }
    const roots = [...this.#reconcileRoots].sort((a, b) => a - b);
    this.#reconcileRoots.clear();
    return roots;
  }

  /** Rebuilds a job the view missed changes of; a job still incomplete afterwards is not retried. */
  async repair(rootId: number): Promise<void> {
    if (this.#claimed.delete(rootId))
      this.#logger.info(
        { jobId: rootId },
        'job of a tree taken over; rebuilding it from the engine',
      );
    else
      this.#logger.warn(
        { jobId: rootId },
        'job view missed changes of a running job; rebuilding it from the engine',
      );
    try {
      await this.reconcile(rootId);
    } catch (error) {
      this.#report(error, `reconciling job ${rootId}`);
    }
    if (this.cache.incomplete().includes(rootId)) this.#unrepairable.add(rootId);
  }

  /**
   * Merges a job's stored engine state into the cache and marks the whole job for writing.
   * Progress already shown (stored steps) is kept as a floor. False if the root does not exist,
   * or (`mineOnly`, at start) if another node runs its tree: that node's monitor writes its job.
   */
  async reconcile(rootId: number, mineOnly = false): Promise<boolean> {
    const root = await this.#engine.get(rootId);
    if (mineOnly && root && runElsewhere(root, this.#engine.nodeId)) return false;
    const snapshot = await readJob(this.#engine, rootId, root);
    if (!snapshot) {
      this.#logger.warn({ jobId: rootId }, 'job has no root command in the engine; left as stored');
      return false;
    }
    for (const bad of snapshot.unreadable)
      this.#report(
        fromErrorInfo(bad.error),
        `job ${rootId}: command ${bad.commandId ?? '?'} cannot be read; its step is left as stored`,
      );
    let floors: Map<string, number> | null = null;
    if (!this.cache.has(rootId)) {
      let stored: { key: string; progress: number }[] = [];
      try {
        stored = await this.#store.getSteps(rootId);
      } catch (error) {
        this.#report(error, `reading the steps of job ${rootId} (rewritten from the engine)`);
      }
      floors = new Map(stored.map((s) => [s.key, s.progress]));
    }
    for (const c of snapshot.commands)
      this.cache.mergeCommand(c, floors?.get(commandStepKey(c.id)));
    for (const t of snapshot.tasks)
      this.cache.mergeTask(t, floors?.get(taskStepKey(t.commandId, t.ordinal)));
    this.cache.markAll(rootId);
    return true;
  }

  /**
   * What changed since the last write (with the watermark if it rose), under a failed write's
   * changes (newer records win). `keepEnded`: ended jobs stay cached until
   * {@link Follower.releaseEndedAtStart}.
   */
  collect(now: number, keepEnded = false): JobChanges {
    const { jobs, steps, ended } = this.cache.collect(now, keepEnded);
    if (keepEnded) this.#endedAtStart.push(...ended);
    const watermark = this.#seen > this.#watermark ? this.#seen : undefined;
    const failed = this.#failed;
    this.#failed = null;
    if (!failed) return { jobs, steps, ...(watermark === undefined ? {} : { watermark }) };
    const jobMap = new Map(failed.jobs.map((j) => [j.id, j]));
    for (const j of jobs) jobMap.set(j.id, j);
    const stepMap = new Map(failed.steps.map((s) => [`${s.jobId}/${s.key}`, s]));
    for (const s of steps) stepMap.set(`${s.jobId}/${s.key}`, s);
    const mark = Math.max(watermark ?? 0, failed.watermark ?? 0);
    return {
      jobs: [...jobMap.values()],
      steps: [...stepMap.values()],
      ...(mark > 0 ? { watermark: mark } : {}),
    };
  }

  /** Keeps changes whose write failed, to merge them under the next collect. */
  retain(changes: JobChanges): void {
    this.#failed = changes;
  }

  /** Records a successful write. */
  written(changes: JobChanges): void {
    if (changes.watermark !== undefined)
      this.#watermark = Math.max(this.#watermark, changes.watermark);
  }
}

/** Whether a change set holds anything to write. */
export function isEmpty(changes: JobChanges): boolean {
  return changes.jobs.length === 0 && changes.steps.length === 0 && changes.watermark === undefined;
}
