/**
 * The agent's memory of the nonces it accepted: a request is used once.
 *
 * A signed request stays acceptable while its timestamp is within `MAX_CLOCK_SKEW_MS` of the
 * agent's clock, so its nonce is remembered until then (its timestamp plus the window) and
 * forgotten after: by that time the timestamp alone refuses the request. The memory is bounded
 * ({@link MAX_REMEMBERED_NONCES}); at the bound it refuses to remember more — the request is
 * answered 503 and tried again later — and never forgets a nonce early, which would reopen the
 * replay it exists to close.
 *
 * @module
 */
import { MAX_CLOCK_SKEW_MS } from './signature.js';

/**
 * Most nonces an agent remembers at once. A nonce costs about 100 bytes (measured: a Map entry
 * with a 22-character key plus its place in a time bucket), so the bound holds the memory to
 * ~100 MB. Only requests that passed the signature check are remembered, so only holders of the
 * secret can come near it: an engine's traffic to one agent is a long-poll (one request per
 * change batch, ~1,000/s at most on a LAN) plus a few dispatch calls per second, which over
 * the 5-minute window stays under a third of the bound.
 */
export const MAX_REMEMBERED_NONCES = 1_000_000;

/**
 * Nonces are forgotten by the second: a sweep drops the seconds that ended, so forgetting costs
 * one pass over at most ~600 buckets (the 10-minute span of possible expiries) per second.
 */
const BUCKET_MS = 1_000;

/** What {@link NonceMemory.remember} made of a nonce. */
export type NonceOutcome =
  /** First seen: remembered until its request's timestamp is no longer acceptable. */
  | 'fresh'
  /** Seen before while its request was acceptable: a replay. */
  | 'replayed'
  /** Not seen, but the memory is full: refuse the request for now (503), remember nothing. */
  | 'full'
  /** Its timestamp is already out of the window (the caller should have refused it). */
  | 'stale';

/** Options of a {@link NonceMemory}. */
export interface NonceMemoryOptions {
  /** @default {@link MAX_REMEMBERED_NONCES} */
  readonly capacity?: number;
  /** How long after its timestamp a request stays acceptable. @default MAX_CLOCK_SKEW_MS */
  readonly windowMs?: number;
}

/** The nonces of accepted requests, each kept while its request could still be accepted. */
export class NonceMemory {
  readonly capacity: number;
  readonly #windowMs: number;
  /** Nonce → when it may be forgotten (ms since the epoch). */
  readonly #until = new Map<string, number>();
  /** Second (of `#until`) → the nonces to forget once it has passed. */
  readonly #buckets = new Map<number, string[]>();
  /** The second up to which buckets were swept. */
  #sweptTo = -Infinity;

  constructor(options: NonceMemoryOptions = {}) {
    this.capacity = options.capacity ?? MAX_REMEMBERED_NONCES;
    this.#windowMs = options.windowMs ?? MAX_CLOCK_SKEW_MS;
  }

  /** Nonces remembered now. */
  get size(): number {
    return this.#until.size;
  }

  /**
   * Remembers the nonce of a request signed at `timestamp`, unless it was seen before or the
   * memory is full. `now` must not go backwards (see `monotonic` in the agent's admission): a
   * clock set back would make forgotten nonces' requests acceptable again.
   */
  remember(nonce: string, timestamp: number, now: number): NonceOutcome {
    this.#forgetPassed(now);
    const until = timestamp + this.#windowMs;
    if (until < now) return 'stale';
    if (this.#until.has(nonce)) return 'replayed';
    if (this.#until.size >= this.capacity) return 'full';
    this.#until.set(nonce, until);
    const second = Math.floor(until / BUCKET_MS);
    const bucket = this.#buckets.get(second);
    if (bucket) bucket.push(nonce);
    else this.#buckets.set(second, [nonce]);
    return 'fresh';
  }

  /** Forgets the nonces of every second that has passed (their requests are stale now). */
  #forgetPassed(now: number): void {
    const current = Math.floor(now / BUCKET_MS);
    if (current <= this.#sweptTo) return;
    this.#sweptTo = current;
    // A bucket of an earlier second holds times < current * BUCKET_MS <= now: all passed.
    for (const [second, nonces] of this.#buckets) {
      if (second >= current) continue;
      for (const nonce of nonces) this.#until.delete(nonce);
      this.#buckets.delete(second);
    }
  }
}
