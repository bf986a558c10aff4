/**
 * Group commit. Live objects changed by the engine are marked dirty; one flush at a time
 * snapshots every dirty object into a single {@link ChangeBatch} and applies it atomically.
 * Effects that must follow durability (agent calls, acknowledgements, events) are registered
 * with {@link Committer.afterCommit} and run once the batch holding their cause has committed.
 *
 * Because live objects only ever hold the effects of completed engine steps, and batches are
 * applied in order, the store always holds a consistent prefix of the engine's history.
 *
 * @module
 */
import type { Clock } from '../core/clock.js';
import { CocoError, ErrorCode, toErrorInfo } from '../core/errors.js';
import type {
  ChangeBatch,
  CommandRecord,
  CommandUpdate,
  EntityWrite,
  Store,
  TaskRecord,
  TaskUpdate,
  UndoRecord,
  UndoUpdate,
} from '../store/port.js';
import type { LiveCommand, LiveTask, LiveUndo } from './live.js';

/** Settings of the committer. */
export interface CommitterOptions {
  /** First delay before retrying a failed flush; doubles up to `retryMaxMs`. */
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
}

/** Listener called after each committed batch, with the batch. */
export type CommitListener = (batch: ChangeBatch) => void;

/** Collects dirty live objects and flushes them in ordered, atomic batches. */
export class Committer {
  #commands: LiveCommand[] = [];
  #settled: LiveCommand[] = [];
  #tasks: LiveTask[] = [];
  #undo: LiveUndo[] = [];
  #entities: EntityWrite[] = [];
  #after: (() => void)[] = [];
  #scheduled = false;
  #flushing: Promise<void> | null = null;
  #failures = 0;
  #stopped = false;
  #retryTimer: { cancel(): void } | null = null;
  readonly #listeners: CommitListener[] = [];
  /** Counters for monitoring: batches committed, rows written, time spent applying. */
  readonly stats = { batches: 0, commands: 0, tasks: 0, applyMs: 0 };

  private readonly store: Store;
  private readonly clock: Clock;
  private readonly options: CommitterOptions;
  private readonly onError: (error: unknown, attempt: number) => void;
  constructor(
    store: Store,
    clock: Clock,
    options: CommitterOptions,
    onError: (error: unknown, attempt: number) => void,
  ) {
    this.store = store;
    this.clock = clock;
    this.options = options;
    this.onError = onError;
  }

  /** Marks a command changed (new or updated). */
  command(c: LiveCommand): void {
    if (c.dirty) {
      if (c.settledOnly) {
        // Queued for the narrow write only: now it needs the full one.
        c.settledOnly = false;
        this.#commands.push(c);
      }
      return;
    }
    c.dirty = true;
    this.#commands.push(c);
    this.#schedule();
  }

  /**
   * Marks a stored, ended command whose tasks were all cleared: only `tasksCleared` changed, so
   * it gets a narrow write (unless a full one is queued anyway).
   */
  settled(c: LiveCommand): void {
    if (!c.persisted) return this.command(c);
    if (c.dirty) return;
    c.dirty = true;
    c.settledOnly = true;
    this.#settled.push(c);
    this.#schedule();
  }

  /** Marks a task changed (new or updated). */
  task(t: LiveTask): void {
    if (!t.dirty) {
      t.dirty = true;
      this.#tasks.push(t);
      this.#schedule();
    }
  }

  /** Marks an undo step changed (new or updated). */
  undo(u: LiveUndo): void {
    if (!u.dirty) {
      u.dirty = true;
      this.#undo.push(u);
      this.#schedule();
    }
  }

  /** Queues entity writes; they commit in the next batch. */
  entities(writes: readonly EntityWrite[]): void {
    if (writes.length === 0) return;
    for (const w of writes) this.#entities.push(w);
    this.#schedule();
  }

  /** Runs `fn` after the batch holding every change marked so far has committed. */
  afterCommit(fn: () => void): void {
    this.#after.push(fn);
    this.#schedule();
  }

  /** Resolves once every change marked so far is durable. */
  durable(): Promise<void> {
    return new Promise((resolve) => this.afterCommit(resolve));
  }

  /** Subscribes to committed batches. */
  onCommit(listener: CommitListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  /** Whether anything is waiting to be flushed. */
  get pending(): boolean {
    const queued = this.#commands.length + this.#settled.length + this.#tasks.length + this.#undo.length;
    return queued + this.#entities.length + this.#after.length > 0;
  }

  /** Flushes everything now and waits (used when stopping). */
  async drain(): Promise<void> {
    for (let i = 0; i < 1000 && (this.pending || this.#flushing); i++) {
      if (this.#flushing) await this.#flushing;
      else await this.#flush();
    }
  }

  /** Stops scheduling flushes (pending changes are dropped; the engine is stopping). */
  stop(): void {
    this.#stopped = true;
    this.#retryTimer?.cancel();
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing || this.#stopped) return;
    this.#scheduled = true;
    // setImmediate runs after the microtasks of handlers that finished in this turn, so their
    // changes join the same batch.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  #flush(): Promise<void> {
    if (this.#flushing || this.#stopped) return this.#flushing ?? Promise.resolve();
    const commands = this.#commands;
    const settled = this.#settled;
    const tasks = this.#tasks;
    const undo = this.#undo;
    const entities = this.#entities;
    const after = this.#after;
    this.#commands = [];
    this.#settled = [];
    this.#tasks = [];
    this.#undo = [];
    this.#entities = [];
    this.#after = [];
    const batch = snapshot(commands, settled, tasks, undo, entities);
    // Dirty flags are cleared before applying, so changes made while an (async) apply runs
    // re-mark their objects for the next batch.
    for (const c of commands) c.dirty = false;
    for (const c of settled) {
      c.dirty = false;
      c.settledOnly = false;
    }
    for (const t of tasks) t.dirty = false;
    for (const u of undo) u.dirty = false;
    const run = async (): Promise<void> => {
      const began = performance.now();
      try {
        await this.store.apply(batch);
      } catch (error) {
        this.#failures++;
        this.onError(error, this.#failures);
        // Put everything back in front of newer changes (objects re-marked meanwhile are
        // already queued once).
        this.#commands = requeue(commands, this.#commands);
        for (const c of settled) if (!c.dirty) this.settled(c);
        this.#tasks = requeue(tasks, this.#tasks);
        this.#undo = requeue(undo, this.#undo);
        this.#entities = entities.concat(this.#entities);
        this.#after = after.concat(this.#after);
        const delay = Math.min(this.options.retryMaxMs, this.options.retryBaseMs * 2 ** Math.min(this.#failures - 1, 16));
        this.#flushing = null;
        if (!this.#stopped) {
          this.#retryTimer = this.clock.setTimer(delay, () => {
            this.#retryTimer = null;
            void this.#flush();
          });
        }
        return;
      }
      this.#failures = 0;
      this.stats.batches++;
      this.stats.commands += commands.length + settled.length;
      this.stats.tasks += tasks.length;
      this.stats.applyMs += performance.now() - began;
      for (const c of commands) {
        c.persisted = true;
        c.paramsDirty = false;
      }
      for (const t of tasks) t.persisted = true;
      for (const u of undo) u.persisted = true;
      this.#flushing = null;
      for (const listener of this.#listeners) {
        try {
          listener(batch);
        } catch (error) {
          this.onError(new CocoError(ErrorCode.HandlerFailed, `a commit listener threw: ${toErrorInfo(error).message}`, { cause: error }), 0);
        }
      }
      for (const fn of after) fn();
      if (this.pending) this.#schedule();
    };
    this.#flushing = run();
    return this.#flushing;
  }
}

function requeue<T extends { dirty: boolean }>(failed: T[], newer: T[]): T[] {
  const back: T[] = [];
  for (const item of failed) {
    if (!item.dirty) {
      item.dirty = true;
      back.push(item);
    }
  }
  return back.concat(newer);
}

function snapshot(commands: LiveCommand[], settled: LiveCommand[], tasks: LiveTask[], undo: LiveUndo[], entities: EntityWrite[]): ChangeBatch {
  const commandInserts: CommandRecord[] = [];
  const commandUpdates: CommandUpdate[] = [];
  const paramsUpgrades: { id: number; paramsVersion: number; params: unknown }[] = [];
  for (const c of commands) {
    if (c.persisted) {
      commandUpdates.push(c.toUpdate());
      if (c.paramsDirty) paramsUpgrades.push({ id: c.id, paramsVersion: c.paramsVersion, params: c.rawParams });
    } else commandInserts.push(c.toRecord());
  }
  const commandsSettled: number[] = [];
  // Those upgraded to a full write since are in `commands` (their flag was reset).
  for (const c of settled) if (c.settledOnly) commandsSettled.push(c.id);
  const taskInserts: TaskRecord[] = [];
  const taskUpdates: TaskUpdate[] = [];
  for (const t of tasks) {
    if (t.persisted) taskUpdates.push(t.toUpdate());
    else taskInserts.push(t.toRecord());
  }
  const undoInserts: UndoRecord[] = [];
  const undoUpdates: UndoUpdate[] = [];
  for (const u of undo) {
    if (u.persisted) undoUpdates.push(u.toUpdate());
    else undoInserts.push(u.toRecord());
  }
  return { commandInserts, commandUpdates, paramsUpgrades, taskInserts, taskUpdates, undoInserts, undoUpdates, commandsSettled, entityWrites: entities };
}
