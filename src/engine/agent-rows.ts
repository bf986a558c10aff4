/**
 * The agents' rows (what the engine last knew of each agent, for the dashboard and the CLI),
 * written in batches: the latest state of each agent wins, and one write is in flight at a time
 * — like the group commit, what arrives while a write runs goes into the next. 10,000 agents
 * coming up (or flapping) cost a few `Store.saveAgents` transactions, not one each, and the
 * SQLite store runs them in its writer thread, off the event loop.
 *
 * @module
 */
import type { AgentRecord } from '../core/records.js';
import type { Logger } from '../core/command-type.js';
import type { Store } from '../store/port.js';

/** Coalesces agents' rows and writes them in batches (see the module). */
export class AgentRows {
  readonly #store: Store;
  readonly #logger: Logger;
  /** The latest record of each agent not yet sent to the store. */
  readonly #pending = new Map<string, AgentRecord>();
  /** The write in flight, if any. */
  #writing: Promise<void> | null = null;
  /** A write is due at the next turn of the event loop. */
  #scheduled = false;
  /** Writes sent so far (metrics, tests). */
  #writes = 0;

  constructor(store: Store, logger: Logger) {
    this.#store = store;
    this.#logger = logger;
  }

  /** Keeps `record` as its agent's latest state; written with the others at the next write. */
  save(record: AgentRecord): void {
    this.#pending.set(record.id, record);
    this.#schedule();
  }

  /**
   * Deletes an agent's row (the agent is forgotten): what is pending of it is dropped, and the
   * row is deleted after the write in flight, which may hold it. Resolves with whether there was
   * a row.
   */
  async delete(id: string): Promise<boolean> {
    this.#pending.delete(id);
    await this.#writing;
    return this.#store.deleteAgent(id);
  }

  /** Writes sent to the store so far (each one transaction of any number of agents). */
  get writes(): number {
    return this.#writes;
  }

  /**
   * Sends what is pending (the engine stops): after the write in flight, if any. Resolves once
   * written (or the failure logged).
   */
  flush(): Promise<void> {
    return (this.#writing ?? Promise.resolve()).then(() => this.#write());
  }

  #schedule(): void {
    if (this.#scheduled || this.#writing) return;
    this.#scheduled = true;
    // The infos of one turn (a broker telling of every agent it knows) go in one write.
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#writing) void this.#write();
    });
  }

  #write(): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve();
    const records = [...this.#pending.values()];
    this.#pending.clear();
    this.#writes++;
    const writing = this.#store
      .saveAgents(records)
      .catch((error: unknown) =>
        this.#logger.warn(
          { agents: records.length, agentId: records[0]?.id, error },
          'could not save agent state',
        ),
      )
      .finally(() => {
        if (this.#writing === writing) this.#writing = null;
        if (this.#pending.size > 0) this.#schedule();
      });
    this.#writing = writing;
    return writing;
  }
}
