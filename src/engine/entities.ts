/**
 * Entity writes of handlers, as the rest of the engine sees them: queued for the next batch,
 * and visible to reads from memory until that batch commits (so a handler never reads a value
 * older than one the engine has already decided on).
 *
 * @module
 */
import type { Json } from '../core/command-type.js';
import type { EntityWrite } from '../core/records.js';
import type { Store } from '../store/port.js';
import type { Committer } from './committer.js';

/** Uncommitted entity writes over the store's committed ones. */
export class EntityOverlay {
  readonly #pending = new Map<string, Json | null>();
  readonly #store: Store;
  readonly #committer: Committer;

  constructor(store: Store, committer: Committer) {
    this.#store = store;
    this.#committer = committer;
  }

  /** The latest value of a record: uncommitted writes first, then the store. */
  async read(kind: string, id: string): Promise<Json | undefined> {
    const key = `${kind}\u0000${id}`;
    if (this.#pending.has(key)) return this.#pending.get(key) ?? undefined;
    const record = await this.#store.getEntity(kind, id);
    return record?.value;
  }

  /** Queues writes for the next batch. */
  write(writes: readonly EntityWrite[]): void {
    if (writes.length === 0) return;
    for (const w of writes) this.#pending.set(`${w.kind}\u0000${w.id}`, w.value);
    this.#committer.entities(writes);
    this.#committer.afterCommit(() => {
      for (const w of writes) {
        const key = `${w.kind}\u0000${w.id}`;
        // A later write of the same record keeps its own entry until its own commit.
        if (this.#pending.get(key) === w.value) this.#pending.delete(key);
      }
    });
  }
}
