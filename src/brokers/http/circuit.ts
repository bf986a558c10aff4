/**
 * A per-agent circuit breaker. Closed, calls go through; after `failureThreshold` consecutive
 * failed requests it opens, and calls fail fast (no request) until a cool-down with jitter has
 * passed; then it is half-open, and exactly one call (the probe) goes through: its success
 * closes the circuit, its failure opens it again for a doubled cool-down.
 *
 * The engine's dispatcher already backs off per agent; the breaker adds what it cannot: one
 * shared view of the agent for every caller of the broker (long-poll, health checks, several
 * dispatchers), so a dead agent costs one probe per cool-down rather than one request (and its
 * retries) per caller per back-off step.
 *
 * @module
 */
import type { Clock } from '../../core/clock.js';

/** The breaker's state. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** Settings of a {@link CircuitBreaker}. */
export interface CircuitSettings {
  readonly failureThreshold: number;
  readonly coolDownMs: number;
  readonly maxCoolDownMs: number;
}

/** Whether a call may go: as a normal call, as the half-open probe, or not until `until`. */
export type CircuitPermit =
  | { readonly allowed: true; readonly probe: boolean }
  | { readonly allowed: false; readonly until: number; readonly state: 'open' | 'half-open' };

/**
 * Jitter added to each cool-down, as a fraction of it: engines whose circuits opened together
 * (one agent outage seen by all) then probe it at different moments, not in one burst.
 */
const COOL_DOWN_JITTER = 0.5;

/** One agent's circuit breaker. Not thread-safe (nothing in Node needs it to be). */
export class CircuitBreaker {
  readonly #settings: CircuitSettings;
  readonly #clock: Clock;
  readonly #random: () => number;
  #state: CircuitState = 'closed';
  #failures = 0;
  /** Opens since the circuit was last closed (the cool-down doubles with each). */
  #opens = 0;
  #openUntil = 0;
  #probing = false;

  constructor(settings: CircuitSettings, clock: Clock, random: () => number = Math.random) {
    this.#settings = settings;
    this.#clock = clock;
    this.#random = random;
  }

  /** The state now (an open circuit whose cool-down has passed reads as half-open). */
  get state(): CircuitState {
    if (this.#state === 'open' && this.#clock.now() >= this.#openUntil) return 'half-open';
    return this.#state;
  }

  /** When an open circuit lets its probe through (ms since the epoch); 0 when closed. */
  get openUntil(): number {
    return this.#state === 'closed' ? 0 : this.#openUntil;
  }

  /** Consecutive failures counted while closed. */
  get failures(): number {
    return this.#failures;
  }

  /** Asks for a call. A permit with `probe` must be followed by success, failure or release. */
  acquire(): CircuitPermit {
    if (this.#state === 'closed') return { allowed: true, probe: false };
    if (this.#state === 'open' && this.#clock.now() < this.#openUntil)
      return { allowed: false, until: this.#openUntil, state: 'open' };
    // The cool-down has passed: half-open, one probe at a time.
    this.#state = 'half-open';
    if (this.#probing) return { allowed: false, until: this.#clock.now(), state: 'half-open' };
    this.#probing = true;
    return { allowed: true, probe: true };
  }

  /** A request got an answer from the agent. Returns true when this closed the circuit. */
  success(probe: boolean): boolean {
    if (probe) this.#probing = false;
    this.#failures = 0;
    if (this.#state === 'closed') return false;
    // Any answer proves the agent reachable, even one of a call that was in flight before the
    // circuit opened: close at once rather than wait for the probe.
    this.#state = 'closed';
    this.#opens = 0;
    this.#probing = false;
    return true;
  }

  /** A request failed (network, timeout, 5xx, garbage). Returns true when this opened the circuit. */
  failure(probe: boolean): boolean {
    if (probe) this.#probing = false;
    if (this.#state === 'closed') {
      this.#failures++;
      if (this.#failures < this.#settings.failureThreshold) return false;
    } else if (!probe) {
      // A call that was in flight when the circuit opened: the circuit knows already.
      return false;
    }
    this.#open();
    return true;
  }

  /** A probe ended without telling anything (it was aborted): let the next call probe. */
  release(probe: boolean): void {
    if (probe) this.#probing = false;
  }

  #open(): void {
    const { coolDownMs, maxCoolDownMs } = this.#settings;
    const base = Math.min(maxCoolDownMs, coolDownMs * 2 ** Math.min(this.#opens, 20));
    this.#opens++;
    this.#state = 'open';
    this.#failures = 0;
    this.#openUntil = this.#clock.now() + base * (1 + this.#random() * COOL_DOWN_JITTER);
  }
}
