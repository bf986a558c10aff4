/**
 * Readiness: whether this node takes work now, and why not — the engine starting, halted or
 * fenced, the node rejoining its cluster, its store taking no write (the engine's
 * `storeOutage`: a disk full, a database down), or its store unreachable. The store is probed
 * with one keyed read, at most once per {@link STORE_CHECK_MS} whatever the probe rate.
 *
 * @module
 */
import { outageDetail, outageReason, type Engine } from '../engine/engine.js';

/**
 * How long a store probe's answer is reused: readiness probes and dashboards may ask many times
 * a second, and a store that fails is seen within a second — faster than any orchestrator acts.
 */
export const STORE_CHECK_MS = 1_000;

/**
 * Longest a store probe may take before the store counts as unreachable: a keyed read answers in
 * milliseconds, and a probe waiting on a dead connection must not hang the readiness answer
 * (orchestrators time out probes after 1 s by default).
 */
export const STORE_CHECK_TIMEOUT_MS = 800;

/**
 * Why a node is not ready: `reason` for anyone (an orchestrator's probe is public), `detail` the
 * failure behind it in its own words (a store's error can name hosts, paths and users), for
 * callers with a token.
 */
export interface NotReady {
  readonly reason: string;
  readonly detail: string | null;
}

/** Probes a node's readiness; see the module's documentation. */
export class Readiness {
  readonly #engine: () => Engine;
  readonly #rejoining: () => boolean;
  #checked: { at: number; notReady: NotReady | null; engine: Engine } | null = null;
  /**
   * The store read of the last probe while it has not answered: probes at the same time share
   * it, and a probe that gave up on it (`STORE_CHECK_TIMEOUT_MS`) leaves it running (a PostgreSQL
   * store tries a read again for 30 s), so the next probes wait for it rather than start reads of
   * their own — else a database away for a while gathered one read per second in the pool's
   * queue, ahead of the engine's own.
   */
  #reading: { readonly engine: Engine; readonly answer: Promise<NotReady | null> } | null = null;

  constructor(engine: () => Engine, rejoining: () => boolean) {
    this.#engine = engine;
    this.#rejoining = rejoining;
  }

  /** Null when ready, else why not. */
  async check(): Promise<NotReady | null> {
    const e = this.#engine();
    if (e.state !== 'running')
      return {
        reason: `the engine is ${e.state}`,
        detail: e.haltError ? `${e.haltError.code}: ${e.haltError.message}` : null,
      };
    if (this.#rejoining())
      return { reason: 'the node is rejoining its cluster after losing its lease', detail: null };
    const out = e.storeOutage;
    if (out) return { reason: outageReason(out.forMs), detail: outageDetail(out.last) };
    const c = this.#checked;
    if (c && c.engine === e && Date.now() - c.at < STORE_CHECK_MS) return c.notReady;
    return this.#check(e);
  }

  async #check(e: Engine): Promise<NotReady | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<NotReady>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            reason: `the store did not answer within ${STORE_CHECK_TIMEOUT_MS} ms`,
            detail: null,
          }),
        STORE_CHECK_TIMEOUT_MS,
      );
    });
    // A keyed read of an id no command has: one index probe, through the engine's own store.
    if (this.#reading?.engine !== e) {
      const reading = {
        engine: e,
        answer: e.get(Number.MAX_SAFE_INTEGER).then(
          () => null,
          (error: unknown): NotReady => ({
            reason: 'the store is unreachable',
            detail: error instanceof Error ? error.message : String(error),
          }),
        ),
      };
      this.#reading = reading;
      void reading.answer.finally(() => {
        if (this.#reading === reading) this.#reading = null;
      });
    }
    const read = this.#reading.answer;
    const notReady = await Promise.race([read, timeout]).finally(() => clearTimeout(timer));
    this.#checked = { at: Date.now(), notReady, engine: e };
    return notReady;
  }
}
