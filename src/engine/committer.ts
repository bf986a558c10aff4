/**
 * Group commit. Live objects changed by the engine are marked dirty; a flush snapshots every
 * dirty object into one {@link ChangeBatch} and hands it to the store, which applies it
 * atomically. Effects that must follow durability (agent calls, acknowledgements, events) are
 * registered with {@link Committer.afterCommit} and run once the batch holding their cause has
 * committed.
 *
 * Flushes are pipelined: up to `maxInFlight` batches may be with the store at once (it applies
 * them in order), so the engine builds the next batch while the store writes this one. If a
 * batch fails, the store refuses the later ones it already had; once all have settled, every
 * object of the failed batches is marked dirty again (rows they inserted count as not stored)
 * and their callbacks are kept, in order, for the retry.
 *
 * Because live objects only ever hold the effects of completed engine steps, and batches are
 * applied in order, the store always holds a consistent prefix of the engine's history.
 *
 * @module
 */
import type { Clock, TimerHandle } from '../core/clock.js';
import { CocoError, ErrorCode, toErrorInfo } from '../core/errors.js';
import {
  emptyBatch,
  type ChangeBatch,
  type CommandRecord,
  type CommandUpdate,
  type EntityWrite,
  type Store,
  type TaskRecord,
  type TaskUpdate,
  type UndoRecord,
  type UndoUpdate,
} from '../store/port.js';
import type { LiveCommand, LiveTask, LiveUndo } from './live.js';

/** Settings of the committer. */
export interface CommitterOptions {
  /** First delay before retrying a failed flush; doubles up to `retryMaxMs`. */
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  /** Batches that may be with the store at once. */
  readonly maxInFlight: number;
}

/** Listener called after each committed batch, with the batch. */
export type CommitListener = (batch: ChangeBatch) => void;

/** What one flush sent, kept until it settles. */
interface Flight {
  batch: ChangeBatch;
  readonly commands: LiveCommand[];
  readonly settled: LiveCommand[];
  readonly tasks: LiveTask[];
  readonly undo: LiveUndo[];
  readonly entities: EntityWrite[];
  readonly after: (() => void)[];
  /** Objects this batch inserts (they count as stored from the snapshot on). */
  readonly inserted: { persisted: boolean }[];
  /** Commands whose upgraded parameters this batch rewrites. */
  readonly upgraded: LiveCommand[];
  readonly began: number;
  failed: boolean;
}

/** Collects dirty live objects and flushes them in ordered, atomic, pipelined batches. */
export class Committer {
  #commands: LiveCommand[] = [];
  #settled: LiveCommand[] = [];
  #tasks: LiveTask[] = [];
  #undo: LiveUndo[] = [];
  #entities: EntityWrite[] = [];
  #after: (() => void)[] = [];
  #scheduled = false;
  /** Batches with the store, oldest first. */
  readonly #flights: Flight[] = [];
  /** A batch failed: no new flush until every flight has settled and the failures are requeued. */
  #recovering = false;
  #failedFlights: Flight[] = [];
  #failures = 0;
  #stopped = false;
  #retryTimer: TimerHandle | null = null;
  #idle: (() => void)[] = [];
  readonly #listeners: CommitListener[] = [];
  /** Counters for monitoring: batches committed, rows written, time spent applying. */
  readonly stats = { batches: 0, commands: 0, tasks: 0, applyMs: 0 };
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #options: CommitterOptions;
  readonly #onError: (error: unknown, attempt: number) => void;

  constructor(store: Store, clock: Clock, options: CommitterOptions, onError: (error: unknown, attempt: number) => void) {
    this.#store = store;
    this.#clock = clock;
    this.#options = options;
    this.#onError = onError;
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
    for (let i = 0; i < 1000 && !this.#stopped && (this.pending || this.#flights.length > 0); i++) {
      if (this.#flights.length > 0 || this.#recovering) await new Promise<void>((resolve) => this.#idle.push(resolve));
      else this.#flush();
    }
  }

  /** Stops scheduling flushes (pending changes are dropped; the engine is stopping). */
  stop(): void {
    this.#stopped = true;
    this.#retryTimer?.cancel();
    for (const fn of this.#idle.splice(0)) fn();
  }

  #schedule(): void {
    if (this.#scheduled || this.#stopped || this.#recovering || this.#flights.length >= this.#options.maxInFlight) return;
    this.#scheduled = true;
    // setImmediate runs after the microtasks of handlers that finished in this turn, so their
    // changes join the same batch.
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#stopped || this.#recovering || this.#flights.length >= this.#options.maxInFlight || !this.pending) return;
    const flight: Flight = {
      batch: EMPTY,
      commands: this.#commands,
      settled: this.#settled,
      tasks: this.#tasks,
      undo: this.#undo,
      entities: this.#entities,
      after: this.#after,
      inserted: [],
      upgraded: [],
      began: performance.now(),
      failed: false,
    };
    this.#commands = [];
    this.#settled = [];
    this.#tasks = [];
    this.#undo = [];
    this.#entities = [];
    this.#after = [];
    flight.batch = snapshot(flight);
    // Dirty flags are cleared now, so changes made while the store writes re-mark their objects
    // for a later batch; rows inserted by this batch count as stored for the batches after it.
    for (const c of flight.commands) {
      c.dirty = false;
      c.paramsDirty = false;
    }
    for (const c of flight.settled) {
      c.dirty = false;
      c.settledOnly = false;
    }
    for (const t of flight.tasks) t.dirty = false;
    for (const u of flight.undo) u.dirty = false;
    for (const o of flight.inserted) o.persisted = true;
    this.#flights.push(flight);
    this.#store.apply(flight.batch).then(
      () => this.#settle(flight, null),
      (error: unknown) => this.#settle(flight, error),
    );
    if (this.pending) this.#schedule();
  }

  #settle(flight: Flight, error: unknown): void {
    if (error !== null) {
      flight.failed = true;
      this.#failedFlights.push(flight);
      if (!this.#recovering) {
        this.#failures++;
        this.#onError(error, this.#failures);
      }
      this.#recovering = true;
    } else {
      // (The store refuses the batches after a failed one, so none commits during recovery.)
      this.#committed(flight);
    }
    // Flights settle in order; drop the settled ones from the front.
    if (this.#flights[0] === flight) this.#flights.shift();
    else this.#flights.splice(this.#flights.indexOf(flight), 1);
    if (this.#flights.length === 0) {
      if (this.#recovering) this.#requeueFailed();
      for (const fn of this.#idle.splice(0)) fn();
    }
    if (!this.#recovering && this.pending) this.#schedule();
  }

  #committed(flight: Flight): void {
    this.#failures = 0;
    this.stats.batches++;
    this.stats.commands += flight.commands.length + flight.settled.length;
    this.stats.tasks += flight.tasks.length;
    this.stats.applyMs += performance.now() - flight.began;
    for (const listener of this.#listeners) {
      try {
        listener(flight.batch);
      } catch (error) {
        this.#onError(new CocoError(ErrorCode.HandlerFailed, `a commit listener threw: ${toErrorInfo(error).message}`, { cause: error }), 0);
      }
    }
    for (const fn of flight.after) fn();
  }

  /** Every flight has settled after a failure: put the failed batches back, in order, and retry. */
  #requeueFailed(): void {
    const failed = this.#failedFlights;
    this.#failedFlights = [];
    const commands: LiveCommand[] = [];
    const tasks: LiveTask[] = [];
    const undo: LiveUndo[] = [];
    const entities: EntityWrite[] = [];
    const after: (() => void)[] = [];
    for (const f of failed) {
      for (const o of f.inserted) o.persisted = false;
      for (const c of f.upgraded) c.paramsDirty = true;
      for (const c of f.commands) if (!c.dirty) commands.push(mark(c));
      for (const c of f.settled) if (!c.dirty) commands.push(mark(c));
      for (const t of f.tasks) if (!t.dirty) tasks.push(mark(t));
      for (const u of f.undo) if (!u.dirty) undo.push(mark(u));
      entities.push(...f.entities);
      after.push(...f.after);
    }
    // Objects re-marked since are already queued once, behind these.
    this.#commands = commands.concat(this.#commands);
    this.#tasks = tasks.concat(this.#tasks);
    this.#undo = undo.concat(this.#undo);
    this.#entities = entities.concat(this.#entities);
    this.#after = after.concat(this.#after);
    const delay = Math.min(this.#options.retryMaxMs, this.#options.retryBaseMs * 2 ** Math.min(this.#failures - 1, 16));
    this.#retryTimer = this.#clock.setTimer(delay, () => {
      this.#retryTimer = null;
      this.#recovering = false;
      this.#flush();
    });
  }
}

const EMPTY = emptyBatch();

function mark<T extends { dirty: boolean }>(o: T): T {
  o.dirty = true;
  return o;
}

function snapshot(f: Flight): ChangeBatch {
  const commandInserts: CommandRecord[] = [];
  const commandUpdates: CommandUpdate[] = [];
  const paramsUpgrades: { id: number; paramsVersion: number; params: unknown }[] = [];
  for (const c of f.commands) {
    if (c.persisted) {
      commandUpdates.push(c.toUpdate());
      if (c.paramsDirty) {
        paramsUpgrades.push({ id: c.id, paramsVersion: c.paramsVersion, params: c.rawParams });
        f.upgraded.push(c);
      }
    } else {
      commandInserts.push(c.toRecord());
      f.inserted.push(c);
    }
  }
  const commandsSettled: number[] = [];
  // Those upgraded to a full write since are in `commands` (their flag was reset).
  for (const c of f.settled) if (c.settledOnly) commandsSettled.push(c.id);
  const taskInserts: TaskRecord[] = [];
  const taskUpdates: TaskUpdate[] = [];
  for (const t of f.tasks) {
    if (t.persisted) taskUpdates.push(t.toUpdate());
    else {
      taskInserts.push(t.toRecord());
      f.inserted.push(t);
    }
  }
  const undoInserts: UndoRecord[] = [];
  const undoUpdates: UndoUpdate[] = [];
  for (const u of f.undo) {
    if (u.persisted) undoUpdates.push(u.toUpdate());
    else {
      undoInserts.push(u.toRecord());
      f.inserted.push(u);
    }
  }
  return { commandInserts, commandUpdates, paramsUpgrades, taskInserts, taskUpdates, undoInserts, undoUpdates, commandsSettled, entityWrites: f.entities };
}
