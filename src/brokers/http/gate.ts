/**
 * The broker's bound on its own requests: at most `maxConcurrentCalls` calls in flight over all
 * agents (a long-poll's held requests excepted: one per agent is what a long-poll is), the
 * others waiting in line, first come first served. A node with 10,000 agents then brings them
 * up as a stream — health checks, task lists and each long-poll's first request take turns —
 * instead of opening tens of thousands of connections at once (measured: `EMFILE` at a 20,000
 * descriptor limit, then a node that spent its time reconnecting; BENCHMARKS.md, "One node, many
 * HTTP agents").
 *
 * Waiting in line counts towards the call's budget: a call that waited its whole budget fails
 * with `BROKER_SATURATED` without a request, and the agent is neither blamed (no circuit
 * failure) nor reported down — the node, not the agent, is behind. Under overload (more calls
 * waiting than there are slots) the newest are served first, see `#next`.
 *
 * @module
 */
import { CocoError, ErrorCode } from '../../core/errors.js';

/** Frees the slot a call held. Idempotent. */
export type Release = () => void;

interface Waiter {
  /** Granted, refused or gone: skipped when its turn comes. */
  done: boolean;
  readonly grant: (release: Release) => void;
}

/** A FIFO counting semaphore over the broker's calls. */
export class CallGate {
  readonly limit: number;
  #inFlight = 0;
  #peak = 0;
  #waited = 0;
  #refused = 0;
  #waiting = 0;
  readonly #queue: Waiter[] = [];
  /** Index of the queue's head (the queue is compacted when it is half consumed). */
  #head = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Calls holding a slot now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Calls waiting for a slot now. */
  get waiting(): number {
    return this.#waiting;
  }

  /** What the gate has seen: peak slots held, calls that had to wait, calls refused. */
  stats(): { readonly peak: number; readonly waited: number; readonly refused: number } {
    return { peak: this.#peak, waited: this.#waited, refused: this.#refused };
  }

  /**
   * A slot, at once when one is free, else when an earlier caller releases one. Rejects with
   * `BROKER_SATURATED` when `waitMs` passes first, or with `aborted()` when `signal` aborts.
   */
  acquire(
    waitMs: number,
    signal: AbortSignal,
    what: { readonly agentId: string; readonly op: string },
    aborted: () => CocoError,
  ): Promise<Release> {
    if (signal.aborted) return Promise.reject(aborted());
    if (this.#inFlight < this.limit && this.#waiting === 0) return Promise.resolve(this.#take());
    this.#waited++;
    this.#waiting++;
    return new Promise<Release>((resolve, reject) => {
      const finish = (): void => {
        waiter.done = true;
        this.#waiting--;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        done: false,
        grant: (release) => {
          finish();
          resolve(release);
        },
      };
      // Marked done, not spliced out: thousands of waiters timing out together stay O(n).
      const leave = (error: CocoError): void => {
        if (waiter.done) return;
        finish();
        reject(error);
      };
      const onAbort = (): void => leave(aborted());
      const timer = setTimeout(() => {
        this.#refused++;
        leave(
          new CocoError(
            ErrorCode.BrokerSaturated,
            `agent ${what.agentId}: ${what.op} not sent: it waited ${waitMs} ms (its whole budget) ` +
              `for one of the broker's ${this.limit} call slots (maxConcurrentCalls); this node ` +
              `is behind, the agent was not asked`,
            {
              retryable: true,
              details: { agentId: what.agentId, op: what.op, maxConcurrentCalls: this.limit },
            },
          ),
        );
      }, waitMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  #take(): Release {
    this.#inFlight++;
    if (this.#inFlight > this.#peak) this.#peak = this.#inFlight;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inFlight--;
      this.#next();
    };
  }

  #next(): void {
    while (this.#inFlight < this.limit && this.#waiting > 0) {
      // First come first served, unless more wait than a round of slots serves: then the
      // newest first. Under overload the oldest are about to run out of budget anyway; served
      // first, every call would get its slot just before its deadline and time out on the wire
      // (FIFO with deadlines collapses: nothing succeeds), whereas served newest first most
      // calls that get a slot still have their budget.
      const waiter = this.#waiting > this.limit ? this.#queue.pop()! : this.#queue[this.#head++]!;
      if (!waiter.done) waiter.grant(this.#take());
    }
    if (this.#head >= this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
  }
}
