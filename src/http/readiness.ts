/**
 * Readiness: whether this node takes work now, and why not — the engine starting, halted or
 * fenced, the node rejoining its cluster, its store taking no write (the engine's
 * `storeOutage`: a disk full, a database down), or its store unreachable. The store is probed
 * with one keyed read, at most once per {@link STORE_CHECK_MS} whatever the probe rate.
 *
 * @module
 */
import { describeOutage, type Engine } from '../engine/engine.js';

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

/** Probes a node's readiness; see the module's documentation. */
export class Readiness {
  readonly #engine: () => Engine;
  readonly #rejoining: () => boolean;
  #checked: { at: number; reason: string | null; engine: Engine } | null = null;
  #probe: Promise<string | null> | null = null;

  constructor(engine: () => Engine, rejoining: () => boolean) {
    this.#engine = engine;
    this.#rejoining = rejoining;
  }

  /** Null when ready, else why not. */
  async reason(): Promise<string | null> {
    const e = this.#engine();
    if (e.state !== 'running')
      return `the engine is ${e.state}${e.haltError ? ` (${e.haltError.code}: ${e.haltError.message})` : ''}`;
    if (this.#rejoining()) return 'the node is rejoining its cluster after losing its lease';
    const out = e.storeOutage;
    if (out) return describeOutage(out);
    const c = this.#checked;
    if (c && c.engine === e && Date.now() - c.at < STORE_CHECK_MS) return c.reason;
    this.#probe ??= this.#check(e).finally(() => (this.#probe = null));
    return this.#probe;
  }

  async #check(e: Engine): Promise<string | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(
        () => resolve(`the store did not answer within ${STORE_CHECK_TIMEOUT_MS} ms`),
        STORE_CHECK_TIMEOUT_MS,
      );
    });
    // A keyed read of an id no command has: one index probe, through the engine's own store.
    const read = e.get(Number.MAX_SAFE_INTEGER).then(
      () => null,
      (error: unknown) =>
        `the store is unreachable (${error instanceof Error ? error.message : String(error)})`,
    );
    const reason = await Promise.race([read, timeout]).finally(() => clearTimeout(timer));
    this.#checked = { at: Date.now(), reason, engine: e };
    return reason;
  }
}
