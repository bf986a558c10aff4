/**
 * The failure protocol of an in-memory store under test: it fails the batches whose numbers it
 * is given, and refuses every batch sent behind a failed one until that failure has been seen —
 * as every real store does (the stored state stays a prefix of the batches).
 */
import { CocoError } from '../../src/core/errors.js';

/** Counts a store's batches and decides which it refuses. */
export class BatchFaults {
  /** Batches offered so far. */
  applies = 0;
  #poisoned = false;
  readonly fails: ReadonlySet<number>;

  /** @param fails the numbers (from 0) of the batches that fail. */
  constructor(fails: ReadonlySet<number>) {
    this.fails = fails;
  }

  /** The refusal of the next batch, or null when the store is to apply it. */
  next(): Promise<void> | null {
    const n = this.applies++;
    if (this.#poisoned) return Promise.reject(new CocoError('STORE_FAILED', 'skipped'));
    if (!this.fails.has(n)) return null;
    this.#poisoned = true;
    const p = Promise.reject(new CocoError('STORE_FAILED', `batch ${n} failed`));
    p.catch(() => (this.#poisoned = false));
    return p;
  }
}
