/**
 * Keeping a node in its cluster after it lost its lease. On a shared store, a node whose lease
 * expired (the database was unreachable longer than the lease, the process stalled) is fenced by
 * another node: its engine halts, since its memory is no longer the truth. A halted engine never
 * runs again; the node either **rejoins** — builds a fresh generation (a new store instance, a new
 * engine, a new node id so that its old trees are claimed like any others, through the claims'
 * locks) — or **exits** with {@link EXIT_LEASE_LOST} for its supervisor to restart it.
 *
 * @module
 */
import type { Logger } from '../core/command-type.js';
import { ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { Engine } from '../engine/engine.js';
import { HALTING_CODES } from '../engine/wiring.js';

/**
 * The exit code of a node that lost its lease with `onLeaseLost: 'exit'`: EX_TEMPFAIL of
 * sysexits.h, "try again later", which process supervisors read as a reason to restart.
 */
export const EXIT_LEASE_LOST = 75;

/**
 * First pause before building a generation again when building one failed (the database is
 * still unreachable, typically): doubling up to {@link REJOIN_RETRY_MAX_MS}, so a node comes back
 * within seconds of its database without flooding the log meanwhile.
 */
const REJOIN_RETRY_BASE_MS = 250;
const REJOIN_RETRY_MAX_MS = 10_000;

/** What a node does when its lease is lost: rejoin as a fresh node, or exit for a supervisor. */
export type OnLeaseLost = 'rejoin' | 'exit';

/** One generation of a node: a started engine and what was built with it. */
export interface Generation {
  readonly engine: Engine;
  /** Stops what the generation started (the engine, if it did not halt, and the rest). */
  close(): Promise<void>;
}

/** Options of {@link Rejoiner}. */
export interface RejoinOptions<G extends Generation> {
  /** The node id of the first generation; later ones are `<base>-r<n>`. */
  readonly nodeId: string;
  /** Builds and starts one generation under a node id (throws when it cannot start). */
  build(nodeId: string): Promise<G>;
  /** @default 'rejoin' */
  readonly onLeaseLost?: OnLeaseLost;
  /** Ends the process (`onLeaseLost: 'exit'`). @default process.exit */
  exit?(code: number): void;
  readonly logger: Logger;
  /** Told of each generation that starts after a rejoin. */
  rejoined?(generation: G): void;
}

/** Runs a node's generations: the first at {@link Rejoiner.start}, a new one after each lost lease. */
export class Rejoiner<G extends Generation> {
  readonly #o: RejoinOptions<G>;
  #current: G | null = null;
  #generation = 0;
  #closed = false;
  #rejoining: Promise<void> | null = null;

  constructor(options: RejoinOptions<G>) {
    this.#o = options;
  }

  /** The running generation (the last one started). */
  get current(): G {
    if (this.#current === null) throw new Error('the node has not started');
    return this.#current;
  }

  /** Whether the node is between generations (a rejoin in progress). */
  get rejoining(): boolean {
    return this.#rejoining !== null;
  }

  /** Builds and starts the first generation. */
  async start(): Promise<G> {
    return this.#begin(await this.#o.build(this.#o.nodeId));
  }

  /** Resolves once no rejoin is in progress (at once if none is). */
  async settled(): Promise<void> {
    while (this.#rejoining) await this.#rejoining;
  }

  /** Stops the running generation; no rejoin happens after this. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#rejoining;
    await this.#current?.close();
  }

  #begin(g: G): G {
    this.#current = g;
    g.engine.on('halted', ({ error }) => this.#halted(g, error));
    return g;
  }

  /**
   * The engine halted: its lease was lost, or a batch was refused for an idempotency key another
   * node took meanwhile (`IDEMPOTENCY_KEY_TAKEN`) — either way its memory is no longer the truth,
   * and the node goes on as a fresh one (or exits, `onLeaseLost`).
   */
  #halted(g: G, error: ErrorInfo): void {
    if (this.#closed || !HALTING_CODES.has(error.code) || this.#current !== g) return;
    const { logger } = this.#o;
    if ((this.#o.onLeaseLost ?? 'rejoin') === 'exit') {
      logger.error(
        { nodeId: g.engine.nodeId, error, exitCode: EXIT_LEASE_LOST },
        `${error.code === ErrorCode.LeaseLost ? 'lease lost' : 'halted'}: this node exits for its ` +
          'supervisor to restart it',
      );
      void g
        .close()
        .finally(() => (this.#o.exit ?? ((code) => process.exit(code)))(EXIT_LEASE_LOST));
      return;
    }
    this.#rejoining = this.#rejoin(g).finally(() => (this.#rejoining = null));
  }

  async #rejoin(old: G): Promise<void> {
    const { logger } = this.#o;
    await old
      .close()
      .catch((error: unknown) => logger.warn({ error }, 'closing the halted generation failed'));
    for (let attempt = 0; !this.#closed; attempt++) {
      const nodeId = `${this.#o.nodeId}-r${++this.#generation}`;
      try {
        logger.warn(
          { previous: old.engine.nodeId, nodeId, why: old.engine.haltError?.code },
          'halted: rejoining as a fresh node (its trees are claimed like any others)',
        );
        const g = await this.#o.build(nodeId);
        if (this.#closed) {
          await g.close();
          return;
        }
        this.#begin(g);
        logger.info({ nodeId }, 'rejoined');
        this.#o.rejoined?.(g);
        return;
      } catch (error) {
        const delay = Math.min(
          REJOIN_RETRY_MAX_MS,
          REJOIN_RETRY_BASE_MS * 2 ** Math.min(attempt, 16),
        );
        logger.warn({ nodeId, error, retryInMs: delay }, 'could not rejoin yet; trying again');
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}
