/**
 * The clock port: the engine reads time and sets timers only through it, so tests can
 * drive time by hand. And time limits built on it, as abort signals.
 *
 * @module
 */

/** A cancellable timer handle. */
export interface TimerHandle {
  cancel(): void;
}

/** Time source and timers. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds. The timer must not keep the process alive. */
  setTimer(ms: number, fn: () => void): TimerHandle;
}

/** A time limit: see {@link timeLimit}. */
export interface TimeLimit {
  /** Aborts once the time has passed. */
  readonly signal: AbortSignal;
  /** Resolves once the time has passed (never, once cancelled). */
  readonly passed: Promise<void>;
  /** Cancels the timer: the signal does not abort after this. */
  cancel(): void;
}

/** A limit `ms` from now on `clock`: a signal that aborts then, and a promise that resolves then. */
export function timeLimit(clock: Clock, ms: number): TimeLimit {
  const controller = new AbortController();
  const timer = clock.setTimer(ms, () => controller.abort());
  return {
    signal: controller.signal,
    passed: whenAborted(controller.signal),
    cancel: () => timer.cancel(),
  };
}

/**
 * Waits for `p`, or only until `until` resolves (a limit passed, a signal aborted), whichever
 * comes first. What `p` stands for goes on alone then, and a failure it meets later is not
 * reported: nothing waits for it any more.
 */
export function raceUntil<T>(p: Promise<T>, until: Promise<void>): Promise<T | void> {
  p.catch(() => undefined);
  return Promise.race([p, until]);
}

/** Resolves once `signal` aborts (at once if it has; never without a signal). */
export function whenAborted(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal === undefined) return;
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/**
 * The longest delay Node's timers keep: one past 2^31 − 1 ms (about 24.8 days) fires at once
 * (with a warning). The system clock waits a longer delay in steps of this.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    if (ms <= MAX_TIMER_MS) {
      const t = setTimeout(fn, Math.max(0, ms));
      t.unref();
      return { cancel: () => clearTimeout(t) };
    }
    // A task deadline or a command timeout of a month: before, it fired at once.
    let t: NodeJS.Timeout;
    const wait = (left: number): void => {
      t =
        left > MAX_TIMER_MS
          ? setTimeout(() => wait(left - MAX_TIMER_MS), MAX_TIMER_MS)
          : setTimeout(fn, left);
      t.unref();
    };
    wait(ms);
    return { cancel: () => clearTimeout(t) };
  },
};

/** A clock that only moves when told to, for tests. */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return { cancel: () => this.#timers.delete(id) };
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      let nextId = -1;
      let nextAt = Infinity;
      for (const [id, t] of this.#timers) {
        if (t.at <= until && t.at < nextAt) {
          nextAt = t.at;
          nextId = id;
        }
      }
      if (nextId < 0) break;
      const timer = this.#timers.get(nextId)!;
      this.#timers.delete(nextId);
      this.#now = Math.max(this.#now, timer.at);
      timer.fn();
    }
    this.#now = until;
  }

  /** Number of timers not yet fired. */
  get pendingTimers(): number {
    return this.#timers.size;
  }
}
