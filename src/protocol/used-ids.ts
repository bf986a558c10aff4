/**
 * Single-use task ids: the rule every agent coco ships applies (the reference agent, the
 * in-process agents, the test suite's fake agent), and the bounded memory of used ids behind it.
 *
 * A task id names one run, ever. An agent told to **stop** an id it does not hold (the start may
 * still be on its way), or to **clear** an id, remembers the id as *used* and refuses a later
 * start of it (`accepted: false`, code `TASK_ID_USED`). Without that, a start that arrives late
 * — the engine's start call timed out, then the engine stopped or cleared the task — would run
 * a verb nobody supervises. A stop of a task the agent holds needs no memory of its own: the
 * task stays held (cancelled) until it is cleared, and the clear then marks the id used.
 *
 * What a status call reports for a used id: `cancelled` (code `CANCELLED`) for an id stopped
 * before its start arrived, which is the truth (it was stopped and never runs) and ends the
 * engine's task at its next poll; `unknown` for a cleared id, as for any id the agent does not
 * hold. A start of an id the agent holds stays idempotent: accepted, nothing changes.
 *
 * @module
 */
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';
import { MAX_CLOCK_SKEW_MS } from './signature.js';

/**
 * How long a used id is remembered. A late start was signed by the engine before the stop or
 * clear that made the id used, and an agent admits a request only while its timestamp is within
 * {@link MAX_CLOCK_SKEW_MS} of the agent's clock. The stop itself was admitted, so it was signed
 * at most that far ahead of its arrival; a start signed no later than the stop is therefore
 * admitted at most 2 × {@link MAX_CLOCK_SKEW_MS} after the stop arrived, however the two clocks
 * differ within the tolerance. One more minute covers a clock stepped (NTP) in between. The
 * engine's own call budget (10 s by default, retries included) is far inside this.
 */
export const USED_ID_RETENTION_MS = 2 * MAX_CLOCK_SKEW_MS + 60_000;

/**
 * How many used ids an agent remembers at most; past it the oldest are forgotten first. At about
 * 100 bytes each that is ~10 MB of memory (and a table of that size in the reference agent's
 * file). It covers 100,000 stops and clears within the retention above (150 per second for the
 * whole 11 minutes), and 10,000 per second for the span a late start really lives (the engine's
 * call budget): far more than an agent running real work ends.
 */
export const MAX_USED_IDS = 100_000;

/** How an id was used: stopped before its start arrived (never held), or cleared. */
export type UsedHow = 'stopped' | 'cleared';

/** Bounds of {@link UsedTaskIds}. */
export interface UsedIdsOptions {
  /** Most ids remembered. @default MAX_USED_IDS */
  readonly maxIds?: number;
  /** How long an id is remembered, in ms. @default USED_ID_RETENTION_MS */
  readonly retentionMs?: number;
}

/** Ring size of a new memory; it doubles as ids come, up to what the bounds need. */
const INITIAL_CAPACITY = 8;

/** Codes of {@link UsedHow} in the ring (a byte per slot rather than a pointer). */
const STOPPED = 0;
const CLEARED = 1;

/**
 * The used ids an agent remembers, oldest first, bounded in count and age.
 *
 * Kept without an object per id (an in-process agent clears one id per task, so it holds up to
 * {@link MAX_USED_IDS} of them): a ring of parallel arrays in age order (ids, times, how), and a
 * map from id to its index in the ring. An id used again moves to the end: its old slot is left
 * empty and skipped. Dropping reads the ring's front, so it costs O(1) per id dropped, whatever
 * was deleted before (a `Map` iterated from its start would first skip every entry ever deleted
 * from it since its last rehash). At the count bound the ring stops growing: a new id takes the
 * slot the oldest leaves, with no copy of the queue and no garbage per id.
 */
export class UsedTaskIds {
  /** Most ids remembered. */
  readonly maxIds: number;
  /** How long an id is remembered, in ms. */
  readonly retentionMs: number;
  /** Index of each remembered id's slot in the ring. */
  readonly #slot = new Map<string, number>();
  // The ring: #length slots from index #head on, oldest first, wrapping at its size (a power of
  // two, #mask + 1). An id of null is an empty slot (the id moved on, or was dropped).
  #ids: (string | null)[] = [];
  #at = new Float64Array(0);
  #how = new Uint8Array(0);
  #mask = 0;
  #head = 0;
  #length = 0;

  /** @throws CocoError `INVALID_OPTIONS` for a bound that is not a positive integer. */
  constructor(options: UsedIdsOptions = {}) {
    this.maxIds = options.maxIds ?? MAX_USED_IDS;
    this.retentionMs = options.retentionMs ?? USED_ID_RETENTION_MS;
    const problems: string[] = [];
    if (!Number.isSafeInteger(this.maxIds) || this.maxIds < 1)
      problems.push(`maxIds must be a positive integer, not ${String(this.maxIds)}`);
    if (!Number.isSafeInteger(this.retentionMs) || this.retentionMs < 1)
      problems.push(`retentionMs must be a positive integer, not ${String(this.retentionMs)}`);
    if (problems.length > 0)
      throw new CocoError(ErrorCode.InvalidOptions, `used task ids: ${problems.join('; ')}`);
    this.clear();
  }

  /** Number of ids remembered (expired ones included until they are dropped). */
  get size(): number {
    return this.#slot.size;
  }

  /**
   * Remembers `taskId` as used at `at` (a cleared id stays `cleared` when stopped again), then
   * drops expired ids and the oldest beyond the count. Returns how the id is now remembered and
   * the ids dropped, so that their owner can forget them too (the reference agent's file, its
   * change feed).
   */
  add(taskId: string, how: UsedHow, at: number): { how: UsedHow; dropped: string[] } {
    const now = this.#put(taskId, how === 'cleared' ? CLEARED : STOPPED, at);
    const dropped: string[] = [];
    this.#drop(at, dropped);
    return { how: now === CLEARED ? 'cleared' : 'stopped', dropped };
  }

  /**
   * {@link add} for an owner that keeps no copy of the ids (the in-process agent): the same
   * memory and drops, with nothing to report (no allocation per id).
   */
  mark(taskId: string, how: UsedHow, at: number): void {
    this.#put(taskId, how === 'cleared' ? CLEARED : STOPPED, at);
    this.#drop(at, null);
  }

  /**
   * {@link mark} of an id its caller knows to be new here, with one map lookup fewer: the
   * in-process agent clearing a task it holds, whose start found the id not remembered (nothing
   * marks a held id). Should the id be remembered after all (an expired id not yet dropped when
   * the start came), its older slot is found by a scan of the ring, O(ring): the outcome is
   * {@link mark}'s either way.
   */
  markNew(taskId: string, how: UsedHow, at: number): void {
    const size = this.#slot.size;
    const i = this.#append(taskId, how === 'cleared' ? CLEARED : STOPPED, at);
    this.#slot.set(taskId, i);
    if (this.#slot.size === size) {
      // Remembered after all: empty its older slot (one before the new), as #put does.
      for (let k = 0; k < this.#length - 1; k++) {
        const j = (this.#head + k) & this.#mask;
        if (this.#ids[j] !== taskId) continue;
        if (this.#how[j] === CLEARED) this.#how[i] = CLEARED;
        this.#ids[j] = null;
        break;
      }
    }
    this.#drop(at, null);
  }

  /** How `taskId` was used, if it is remembered and not expired at `now`. */
  get(taskId: string, now: number): UsedHow | undefined {
    const i = this.#slot.get(taskId);
    if (i === undefined || this.#at[i]! + this.retentionMs <= now) return undefined;
    return this.#how[i] === CLEARED ? 'cleared' : 'stopped';
  }

  /** Drops the ids expired at `now` and the oldest beyond the count; returns them. */
  expire(now: number): string[] {
    const dropped: string[] = [];
    this.#drop(now, dropped);
    return dropped;
  }

  /** Every id remembered, oldest first. */
  *entries(): IterableIterator<[string, { readonly how: UsedHow; readonly at: number }]> {
    for (let k = 0; k < this.#length; k++) {
      const i = (this.#head + k) & this.#mask;
      const taskId = this.#ids[i];
      if (taskId != null)
        yield [taskId, { how: this.#how[i] === CLEARED ? 'cleared' : 'stopped', at: this.#at[i]! }];
    }
  }

  /** Forgets every id (an agent that loses its memory, as an in-memory agent at a restart). */
  clear(): void {
    this.#slot.clear();
    this.#alloc(INITIAL_CAPACITY);
    this.#head = 0;
    this.#length = 0;
  }

  /** Appends `taskId` to the ring (emptying its older slot); returns how it is now used. */
  #put(taskId: string, how: number, at: number): number {
    let now = how;
    const previous = this.#slot.get(taskId);
    if (previous !== undefined) {
      if (this.#how[previous] === CLEARED) now = CLEARED;
      this.#ids[previous] = null;
    }
    this.#slot.set(taskId, this.#append(taskId, now, at));
    return now;
  }

  /** Writes `taskId` into the ring's next slot, making room first if it is full; returns its index. */
  #append(taskId: string, how: number, at: number): number {
    if (this.#length > this.#mask) this.#makeRoom();
    const i = (this.#head + this.#length++) & this.#mask;
    this.#ids[i] = taskId;
    this.#at[i] = at;
    this.#how[i] = how;
    return i;
  }

  /** Drops from the front what {@link expire} drops, into `dropped` unless it is null. */
  #drop(now: number, dropped: string[] | null): void {
    const ids = this.#ids;
    const mask = this.#mask;
    const slot = this.#slot;
    let head = this.#head;
    let length = this.#length;
    for (; length > 0; head = (head + 1) & mask, length--) {
      const taskId = ids[head];
      if (taskId === null) continue;
      if (slot.size <= this.maxIds && this.#at[head]! + this.retentionMs > now) break;
      slot.delete(taskId!);
      ids[head] = null;
      dropped?.push(taskId!);
    }
    this.#head = head;
    this.#length = length;
  }

  /**
   * Makes room in a full ring: copies the remembered ids in order, without the empty slots, into
   * a ring as large if at least half of its slots are empty (many ids used again within the
   * retention), else twice as large. Either costs O(ring), paid for by as many slots filled
   * before: the ring grows only while the memory does, and at the count bound stays put.
   */
  #makeRoom(): void {
    const ids = this.#ids;
    const at = this.#at;
    const how = this.#how;
    const mask = this.#mask;
    const head = this.#head;
    const length = this.#length;
    // Every id in the map has one slot: the others are empty.
    this.#alloc(length >= 2 * this.#slot.size ? mask + 1 : 2 * (mask + 1));
    let j = 0;
    for (let k = 0; k < length; k++) {
      const i = (head + k) & mask;
      const taskId = ids[i];
      if (taskId == null) continue;
      this.#ids[j] = taskId;
      this.#at[j] = at[i]!;
      this.#how[j] = how[i]!;
      this.#slot.set(taskId, j++);
    }
    this.#head = 0;
    this.#length = j;
  }

  /** Replaces the ring with an empty one of `capacity` slots (a power of two). */
  #alloc(capacity: number): void {
    this.#ids = new Array<string | null>(capacity).fill(null);
    this.#at = new Float64Array(capacity);
    this.#how = new Uint8Array(capacity);
    this.#mask = capacity - 1;
  }
}

/** The refusal of a start of a used id. */
export function usedIdError(taskId: string, how: UsedHow): ErrorInfo {
  return {
    code: ErrorCode.TaskIdUsed,
    message: `task id ${taskId} was ${how} before; task ids are single-use, so this start is refused`,
    details: { taskId, how },
  };
}

/** The error a status reports for an id stopped before its start arrived. */
export const STOPPED_BEFORE_START: ErrorInfo = Object.freeze({
  code: ErrorCode.Cancelled,
  message: 'task stopped before its start arrived; it never ran',
});
