/**
 * Retention of the engine's rows ({@link Engine.prune}): the trees that ended at least an age
 * ago, deleted from the store in bounded batches ({@link Store.prune}: one short transaction
 * each) until none remain or a time budget is spent.
 *
 * It goes through the running engine's own store instance. On SQLite that is required: the file
 * has one writer, the node's, and the store queues a prune's deletes in its writer thread behind
 * the batches already sent (see store/sqlite/retention.ts); another process would have to wait
 * for SQLite's write lock and could not open the store while the node holds it. On PostgreSQL any
 * store instance may prune (the statement is safe beside every node), so a tool can prune a
 * shared store directly with {@link pruneTrees}.
 *
 * The engine never writes a tree again once no command of it is active (each command leaves
 * memory when it settles), so pruning needs nothing from the engine's memory. What goes with the
 * rows: the commands can no longer be read (`get` answers null), and their idempotency keys are
 * forgotten (a submit with such a key starts a new command).
 *
 * @module
 */
import { ErrorCode, ValidationError, type ValidationIssue } from '../core/errors.js';
import { MAX_PRUNE_LIMIT, type PruneBatch, type PruneCursor, type Store } from '../store/port.js';

/**
 * Trees per store call. Each call is one transaction that holds SQLite's write lock (the
 * engine's batches wait behind it) or PostgreSQL row locks while it runs; a hundred trees of a
 * few rows each take a few milliseconds, so the engine barely notices, and a pass still deletes
 * thousands of trees a second.
 */
export const DEFAULT_PRUNE_BATCH = 100;

/**
 * How long one prune goes on starting batches: bounded, so that a call through the API answers
 * and a scheduled pass ends; what remains (`more`) is for the next call or pass.
 */
export const DEFAULT_PRUNE_BUDGET_MS = 10_000;

/** What {@link Engine.prune} deletes. */
export interface PruneRequest {
  /** Trees whose root ended at least this long ago (ms, on the engine's clock). */
  readonly olderThanMs: number;
  /** Count what would be deleted, delete nothing. @default false */
  readonly dryRun?: boolean;
  /** Trees per store call (1 to 10,000). @default 100 ({@link DEFAULT_PRUNE_BATCH}) */
  readonly batch?: number;
  /** No batch starts after this long (ms); `more` then says trees remain. @default 10,000 */
  readonly budgetMs?: number;
  /**
   * Once aborted, no batch starts (the one under way ends); `more` then says trees remain. A
   * stopping node ends its retention pass so, instead of waiting out the budget.
   */
  readonly signal?: AbortSignal;
}

/** What a prune deleted (or, dry, would delete). */
export interface PruneTotals {
  /** The cutoff: trees whose root ended before this time (ms since the epoch). */
  readonly endedBefore: number;
  readonly trees: number;
  readonly commands: number;
  readonly tasks: number;
  readonly undo: number;
  /** Store calls made. */
  readonly batches: number;
  /** Whether prunable trees remain (the budget ran out): prune again. */
  readonly more: boolean;
  readonly durationMs: number;
}

/** Told of each batch as soon as it is deleted (or counted), before the next one starts. */
export type OnPruned = (batch: PruneBatch) => Promise<void> | void;

/** A request with its defaults, checked. */
export interface CompiledPruneRequest {
  readonly olderThanMs: number;
  readonly dryRun: boolean;
  readonly batch: number;
  readonly budgetMs: number;
}

/** Checks a request and fills in its defaults; `INVALID_OPTIONS` naming each bad field. */
export function compilePruneRequest(request: PruneRequest): CompiledPruneRequest {
  const issues: ValidationIssue[] = [];
  const r = (typeof request === 'object' && request !== null ? request : {}) as PruneRequest;
  const whole = (path: string, value: unknown, min: number, max: number): void => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
      issues.push({
        path,
        message: `must be an integer from ${min} to ${max}, not ${String(value)}`,
      });
  };
  whole('olderThanMs', r.olderThanMs, 0, Number.MAX_SAFE_INTEGER);
  if (r.dryRun !== undefined && typeof r.dryRun !== 'boolean')
    issues.push({ path: 'dryRun', message: `must be a boolean, not ${String(r.dryRun)}` });
  if (r.batch !== undefined) whole('batch', r.batch, 1, MAX_PRUNE_LIMIT);
  if (r.budgetMs !== undefined) whole('budgetMs', r.budgetMs, 1, Number.MAX_SAFE_INTEGER);
  if (issues.length > 0)
    throw new ValidationError('invalid prune request', issues, ErrorCode.InvalidOptions);
  return {
    olderThanMs: r.olderThanMs,
    dryRun: r.dryRun ?? false,
    batch: r.batch ?? DEFAULT_PRUNE_BATCH,
    budgetMs: r.budgetMs ?? DEFAULT_PRUNE_BUDGET_MS,
  };
}

/**
 * Prunes a store: the trees whose root ended before `now - olderThanMs`, oldest first, batch
 * after batch until none remain or the budget is spent. `onBatch` hears of each batch before
 * the next starts (the job view prunes the same roots: jobs/retention.ts). On a single-writer
 * store, give the store instance the running engine opened ({@link Engine.prune} does).
 */
export async function pruneTrees(
  store: Pick<Store, 'prune'>,
  request: PruneRequest,
  now: number,
  onBatch?: OnPruned,
): Promise<PruneTotals> {
  const r = compilePruneRequest(request);
  const began = performance.now();
  const endedBefore = now - r.olderThanMs;
  const totals = { trees: 0, commands: 0, tasks: 0, undo: 0, batches: 0 };
  let after: PruneCursor | null = null;
  let more = false;
  for (;;) {
    const b = await store.prune({ endedBefore, limit: r.batch, dryRun: r.dryRun, after });
    totals.batches++;
    totals.trees += b.trees;
    totals.commands += b.commands;
    totals.tasks += b.tasks;
    totals.undo += b.undo;
    if (b.rootIds.length > 0) await onBatch?.(b);
    if (!b.more) break;
    after = b.next;
    if (request.signal?.aborted === true || performance.now() - began >= r.budgetMs) {
      more = true;
      break;
    }
  }
  return { endedBefore, ...totals, more, durationMs: performance.now() - began };
}
