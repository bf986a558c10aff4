/**
 * Retention of a node's rows: the engine's ended trees and the job view's rows of them, in one
 * pass. The engine's rows go first, batch by batch ({@link Engine.prune}); after each batch the
 * job view deletes the jobs of the same roots ({@link JobStore.pruneJobs}), so a tree's job never
 * outlives the tree by more than a batch.
 *
 * The two are not one transaction (the job tables are a derived view, possibly on another
 * connection). What a prune can leave in the view — a pass that stopped between a batch and its
 * jobs (a crash, a failed write), or a job the view wrote after its tree was pruned (its last
 * batch was still in the monitor's queue) — is found by the **sweep** at the end of each pass:
 * the view's jobs older than the cutoff ({@link JobStore.listOldJobs}: ended before it, or shown
 * running though started before it) whose root the engine's store no longer has are deleted. A
 * job whose root exists is never touched, whatever the view says of it.
 *
 * @module
 */
import { CocoError, ErrorCode } from '../core/errors.js';
import type { CommandRecord } from '../core/records.js';
import type { OnPruned, PruneRequest, PruneTotals } from '../engine/retention.js';
import type { JobAge, JobStore } from './port.js';

/** Trees per batch when the request does not say (engine/retention.ts DEFAULT_PRUNE_BATCH). */
const SWEEP_PAGE = 100;
/** The budget when the request does not say (engine/retention.ts DEFAULT_PRUNE_BUDGET_MS). */
const DEFAULT_BUDGET_MS = 10_000;

/** What a retention pass works on: the engine's trees, its reads, and the job view. */
export interface RetentionTarget {
  /** Prunes the engine's trees: `engine.prune`, or `pruneTrees` on a store no node holds. */
  prune(request: PruneRequest, onBatch: OnPruned): Promise<PruneTotals>;
  /** A stored command (`engine.get`): null once its tree is pruned. */
  get(id: number): Promise<CommandRecord | null>;
  /** The job view's store, or null when the node keeps no job view. */
  readonly jobs: JobStore | null;
}

/** What a retention pass deleted (or, dry, would delete). */
export interface RetentionReport extends PruneTotals {
  /** Jobs and steps of the job view: those of the trees pruned, and those the sweep found. */
  readonly jobs: number;
  readonly steps: number;
}

/** Whether the engine's store no longer has this root (an unreadable row still exists). */
async function rootGone(target: RetentionTarget, id: number): Promise<boolean> {
  try {
    return (await target.get(id)) === null;
  } catch (error) {
    if (error instanceof CocoError && error.code === ErrorCode.CorruptRow) return false;
    throw error;
  }
}

/**
 * One retention pass: the engine's trees that ended at least `olderThanMs` ago, with their jobs,
 * batch by batch until none remain or the budget is spent; then, if the budget allows, the sweep
 * of jobs whose tree is gone. `more` says whether anything was left for the next pass.
 */
export async function runRetention(
  target: RetentionTarget,
  request: PruneRequest,
): Promise<RetentionReport> {
  const began = performance.now();
  const jobs = target.jobs;
  const dryRun = request.dryRun === true;
  const counts = { jobs: 0, steps: 0 };
  const add = (c: { jobs: number; steps: number }): void => {
    counts.jobs += c.jobs;
    counts.steps += c.steps;
  };
  const trees = await target.prune(request, async (batch) => {
    if (jobs) add(await jobs.pruneJobs(batch.rootIds, dryRun));
  });
  let more = trees.more;
  const stopped = (): boolean => request.signal?.aborted === true;
  if (jobs && !more && stopped()) more = true;
  if (jobs && !more) {
    const budget = request.budgetMs ?? DEFAULT_BUDGET_MS;
    const limit = request.batch ?? SWEEP_PAGE;
    let after: JobAge | null = null;
    for (;;) {
      const old = await jobs.listOldJobs({ before: trees.endedBefore, after, limit });
      const gone: number[] = [];
      for (const job of old) if (await rootGone(target, job.id)) gone.push(job.id);
      if (gone.length > 0) add(await jobs.pruneJobs(gone, dryRun));
      if (old.length < limit) break;
      after = old.at(-1) ?? null;
      if (stopped() || performance.now() - began >= budget) {
        more = true;
        break;
      }
    }
  }
  return { ...trees, ...counts, more, durationMs: performance.now() - began };
}
