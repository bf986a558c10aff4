/**
 * The agent's change feed, behind `POST /v2/tasks/changes`: every task change (start, progress,
 * end, and every task loaded at boot) gets the next sequence number of this boot. A caller
 * holding a cursor asks for the tasks that changed after it and gets each such task once (the
 * feed keeps only a task's latest change: it coalesces), plus the new cursor. When nothing
 * changed it may wait (long-poll) on a waiter list that changes wake: no polling.
 *
 * The entries form a list ordered by sequence number (a change moves its task to the end), so
 * reading "after cursor" walks only the entries that changed since, not every task held.
 *
 * @module
 */
import { MAX_BATCH } from '../protocol/agent-v2.js';
import type { TaskChangeListener } from './task-table.js';

interface Entry {
  readonly taskId: string;
  seq: number;
  prev: Entry | undefined;
  next: Entry | undefined;
}

interface Waiter {
  readonly prefix: string;
  readonly wake: () => void;
}

/** A page of the feed: the ids of tasks that changed (oldest change first) and the new cursor. */
export interface ChangesPage {
  readonly cursor: number;
  readonly taskIds: readonly string[];
}

/** The change feed of one boot of the agent (see the module comment). */
export class ChangeFeed implements TaskChangeListener {
  /** The boot whose sequence numbers this feed hands out. */
  readonly bootId: string;
  readonly #entries = new Map<string, Entry>();
  readonly #waiters = new Set<Waiter>();
  #newest: Entry | undefined;
  #seq = 0;
  #closed = false;

  constructor(bootId: string) {
    this.bootId = bootId;
  }

  /** The latest sequence number handed out (0 before any change). */
  get cursor(): number {
    return this.#seq;
  }

  /** Number of waiting long-polls. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /** Records a change of `taskId` and wakes the waiters whose prefix it matches. */
  changed(taskId: string): void {
    const seq = ++this.#seq;
    let entry = this.#entries.get(taskId);
    if (entry === undefined) {
      entry = { taskId, seq, prev: undefined, next: undefined };
      this.#entries.set(taskId, entry);
    } else {
      this.#unlink(entry);
      entry.seq = seq;
    }
    entry.prev = this.#newest;
    if (this.#newest !== undefined) this.#newest.next = entry;
    this.#newest = entry;
    for (const waiter of this.#waiters) if (taskId.startsWith(waiter.prefix)) waiter.wake();
  }

  /** Drops a cleared task from the feed. */
  forgotten(taskId: string): void {
    const entry = this.#entries.get(taskId);
    if (entry === undefined) return;
    this.#unlink(entry);
    this.#entries.delete(taskId);
  }

  /**
   * Where a request's cursor reads from: 0 for a cursor of another boot (the sequence restarted
   * with this process) or one ahead of this boot (the caller cannot hold it; this happens when
   * it omits `bootId` after a restart).
   */
  from(cursor: number, bootId: string | undefined): number {
    if (bootId !== undefined && bootId !== this.bootId) return 0;
    return cursor > this.#seq ? 0 : cursor;
  }

  /**
   * The tasks whose id starts with `prefix` that changed after `cursor`, at most `limit` of them
   * (the cursor then stops at the last one returned, so the next call continues there).
   */
  since(cursor: number, prefix: string, limit: number = MAX_BATCH): ChangesPage {
    let first: Entry | undefined;
    for (let e = this.#newest; e !== undefined && e.seq > cursor; e = e.prev) first = e;
    const taskIds: string[] = [];
    for (let e = first; e !== undefined; e = e.next) {
      if (!e.taskId.startsWith(prefix)) continue;
      if (taskIds.length === limit) return { cursor: Math.max(cursor, e.prev?.seq ?? 0), taskIds };
      taskIds.push(e.taskId);
    }
    return { cursor: Math.max(cursor, this.#seq), taskIds };
  }

  /**
   * Resolves when a task whose id starts with `prefix` changes after `cursor` (at once if one
   * already did), after `waitMs`, when `signal` aborts (the caller hung up) or when the feed
   * closes, whichever comes first. Never rejects.
   */
  wait(cursor: number, prefix: string, waitMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#closed || waitMs <= 0 || signal?.aborted === true) return Promise.resolve();
    if (this.since(cursor, prefix, 1).taskIds.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: Waiter = {
        prefix,
        wake: () => {
          if (!this.#waiters.delete(waiter)) return;
          clearTimeout(timer);
          signal?.removeEventListener('abort', waiter.wake);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, waitMs);
      signal?.addEventListener('abort', waiter.wake, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Wakes every waiter (they answer with what they have) and makes later waits return at once. */
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters) waiter.wake();
  }

  #unlink(entry: Entry): void {
    if (entry.prev !== undefined) entry.prev.next = entry.next;
    if (entry.next === undefined) this.#newest = entry.prev;
    else entry.next.prev = entry.prev;
    entry.prev = undefined;
    entry.next = undefined;
  }
}
