/**
 * The rendered details of ended commands (`GET /v1/commands/:id`), kept for the next reader.
 *
 * A command that has ended, settled and finished compensating, in a tree whose root has too,
 * never changes again: its row, tasks, undo steps, status history and children are final until
 * retention deletes its tree (an ended command of a running tree may still be compensated, and
 * its tasks are cleared after its end: the route keeps only final ones, command-routes.ts). So
 * the API renders its detail once, keeps the JSON text and answers later reads with it (and
 * `304 Not Modified` to a client that sends the `ETag` back) without five store reads, row
 * parsing and serialisation each time: that is most of a detail's cost, and dashboards, CLIs
 * and scripts poll the same commands over and over.
 * Live commands are never kept: their detail changes with every batch.
 *
 * What could make an entry wrong is its tree being deleted. This node's own retention says which
 * trees it deleted (the engine's `pruned` event: their entries go at once); a pass by another
 * node of a shared store is not heard of, so entries also expire ({@link DETAIL_CACHE_TTL_MS}).
 * A new engine generation (a node that lost its lease rejoins) starts with an empty cache.
 *
 * @module
 */
import type { Engine } from '../engine/engine.js';

/**
 * How long an entry is served: bounds how long a command that another node's retention deleted
 * from a shared store is still shown here. Retention deletes trees that ended days ago, so a
 * minute of it is harmless, while a dashboard polling every second or two still hits.
 */
export const DETAIL_CACHE_TTL_MS = 60_000;

/**
 * Entries kept by default: a few thousand details are what a busy operator's screens and tools
 * read in a minute; at a few KiB each, 10,000 stay well under the byte cap.
 */
export const DEFAULT_DETAIL_CACHE_ENTRIES = 10_000;

/**
 * Characters of JSON kept at most, all entries together (UTF-16 units, about bytes of the
 * mostly ASCII text): bounds the cache's memory whatever the details hold.
 */
const MAX_BYTES = 64 * 1024 * 1024;

/** A detail larger than this is not kept (a command with a huge result or thousands of children). */
const MAX_ENTRY_BYTES = 1024 * 1024;

/** A kept detail. */
export interface CachedDetail {
  /** The JSON text of the answer. */
  readonly body: string;
  /** Its entity tag (quoted, strong). */
  readonly etag: string;
}

interface Entry extends CachedDetail {
  readonly rootId: number;
  readonly expiresAt: number;
}

/**
 * A bounded, least-recently-used map from command id to its rendered detail, for ended commands
 * only, dropped with their trees. Time is `performance.now()`-like milliseconds given by the
 * caller (monotonic).
 */
export class DetailCache {
  readonly #max: number;
  readonly #entries = new Map<number, Entry>();
  #bytes = 0;
  #engine: Engine | null = null;
  #unsubscribe: (() => void) | null = null;

  /** @param maxEntries entries kept at most; 0 keeps none. */
  constructor(maxEntries: number = DEFAULT_DETAIL_CACHE_ENTRIES) {
    this.#max = maxEntries;
  }

  /** Entries held now. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Follows `engine`'s retention: called with the node's current engine before each use; on a
   * new generation the cache empties and listens to the new engine's `pruned` event instead.
   */
  follow(engine: Engine): void {
    if (engine === this.#engine) return;
    this.#unsubscribe?.();
    this.clear();
    this.#engine = engine;
    this.#unsubscribe = engine.events.on('pruned', ({ rootIds }) => this.dropTrees(rootIds));
  }

  /** The detail of command `id` if kept and not expired. */
  get(id: number, now: number): CachedDetail | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined) return undefined;
    this.#entries.delete(id);
    if (entry.expiresAt <= now) {
      this.#bytes -= entry.body.length;
      return undefined;
    }
    this.#entries.set(id, entry); // most recently used: last in the map's order
    return entry;
  }

  /** Keeps the detail of ended command `id` (of tree `rootId`); returns its entity tag. */
  put(id: number, rootId: number, body: string, now: number): string {
    const etag = `"${id}-${body.length}-${fnv1a(body)}"`;
    if (this.#max === 0 || body.length > MAX_ENTRY_BYTES) return etag;
    this.#remove(id);
    this.#entries.set(id, { body, etag, rootId, expiresAt: now + DETAIL_CACHE_TTL_MS });
    this.#bytes += body.length;
    for (const [oldest, entry] of this.#entries) {
      if (this.#entries.size <= this.#max && this.#bytes <= MAX_BYTES) break;
      this.#entries.delete(oldest);
      this.#bytes -= entry.body.length;
    }
    return etag;
  }

  /** Drops the entries of the trees of these roots (their rows were deleted). */
  dropTrees(rootIds: readonly number[]): void {
    if (this.#entries.size === 0 || rootIds.length === 0) return;
    const roots = new Set(rootIds);
    for (const [id, entry] of this.#entries) if (roots.has(entry.rootId)) this.#remove(id);
  }

  /** Drops every entry. */
  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #remove(id: number): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    this.#entries.delete(id);
    this.#bytes -= entry.body.length;
  }
}

/** 32-bit FNV-1a of a string's UTF-16 code units, in base 36: the entity tag's content part. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(36);
}
