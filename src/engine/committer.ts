/**
 * Group commit. Live objects changed by the engine are marked dirty; a flush snapshots dirty
 * objects into one {@link ChangeBatch} and hands it to the store, which applies it atomically.
 * Effects that must follow durability (agent calls, acknowledgements, events) are registered
 * with {@link Committer.afterCommit} and run once the batch holding their cause has committed.
 *
 * Dirty objects are queued by **command group** (a command with its tasks and undo steps), in
 * the order the groups first changed. A large flush takes whole groups, oldest first, each with
 * its dirty descendants (so a parent's change never commits before its children's), up to
 * `maxBatchRows`; the rest waits for the next batch. A parent queued behind a child it takes
 * joins it. An idle store's flush may take about half of what is dirty (see
 * {@link SPLIT_MIN_ROWS}). Flushes are pipelined: up to `maxInFlight`
 * batches may be with the store at once (it applies them in order), so the engine works on the
 * next batch while the store writes this one.
 *
 * If a batch fails, the store refuses the later ones it already had; once all have settled,
 * every object of the failed batches is marked dirty again (rows they inserted count as not
 * stored) and their callbacks are kept, in order, for the retry.
 *
 * A batch refused for what it holds (`BATCH_REFUSED`, `ILLEGAL_TRANSITION`) would be refused on
 * every try: the committer then **isolates** the trees whose changes the store refuses. The failed
 * batches, as they were sent, are split by tree of commands and applied again in halves (each
 * tree's part of each batch in order, trees being independent of one another) until every tree is
 * stored but those refused alone; those are handed to `onRefused` (the engine marks them held and
 * halts). If none is refused alone, the failed batches count as committed and the committer goes
 * on.
 *
 * Because live objects only ever hold the effects of completed engine steps, groups carry all
 * of a command's changes, and batches are applied in order, the store always holds a consistent
 * prefix of each command's history, with children never behind their parents.
 *
 * @module
 */
import type { Clock, TimerHandle } from '../core/clock.js';
import { CocoError, ErrorCode, toErrorInfo, type ErrorInfo } from '../core/errors.js';
import type { EntityWrite } from '../core/records.js';
import { emptyBatch, type ChangeBatch, type Store } from '../store/port.js';
import type { LiveCommand, LiveTask, LiveUndo } from './live.js';
import {
  rootsOf,
  runAfter,
  runAfterExcept,
  snapshot,
  treesPart,
  type AfterCommit,
  type Flight,
} from './batch.js';

/** Settings of the committer. */
export interface CommitterOptions {
  /** First delay before retrying a failed flush; doubles up to `retryMaxMs`. */
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  /** Batches that may be with the store at once. */
  readonly maxInFlight: number;
  /** Rows (commands, tasks, undo steps) above which a flush takes only part of what is dirty. */
  readonly maxBatchRows: number;
  /**
   * The smallest part an idle store's flush is split into (see {@link SPLIT_MIN_ROWS}, the
   * default; `0`: never split; tests set it small to exercise the split).
   */
  readonly splitMinRows?: number;
}

/**
 * Listener called after each committed batch, with the batch, its rows (commands, tasks, undo
 * steps) and the milliseconds from its flush to the store's answer.
 */
export type CommitListener = (batch: ChangeBatch, rows: number, applyMs: number) => void;

const EMPTY = emptyBatch();

/**
 * The codes of a batch refused for what it holds: the same batch would be refused on every try
 * (see the module: the committer isolates the trees refused).
 */
export const REFUSAL_CODES: ReadonlySet<string> = new Set([
  ErrorCode.BatchRefused,
  ErrorCode.IllegalTransition,
]);

/** Whether a batch's failure is a refusal for what it holds ({@link REFUSAL_CODES}). */
export function isRefusal(error: unknown): error is CocoError {
  return error instanceof CocoError && REFUSAL_CODES.has(error.code);
}

/** A tree of commands whose changes the store refused on their own (see the module). */
export interface RefusedTree {
  /** The tree's root command. */
  readonly rootId: number;
  /** The store's refusal of the tree's changes alone. */
  readonly error: CocoError;
}

/**
 * How long the write of a task's `running` status may wait for the task's next change. Most
 * tasks of a busy engine end within a few poll rounds; a task that ends within this delay goes
 * from `created` to ended in one row write instead of two (fan-out and chains write a sixth fewer
 * rows). The row saying `created` a little longer only matters after a crash, when the task's
 * start is sent again — harmless, starts are idempotent by task id — so the delay is bounded by
 * what an operator reading the store would still call current: a fifth of a second.
 */
export const STARTED_WRITE_DELAY_MS = 200;

/**
 * When the store is idle (no batch in flight) and at least twice this many rows are dirty, a
 * flush sends half of them (at a stored command's group, see `#take`) and the rest right behind:
 * the store starts on the first half at once, and the work that waited for it (a chain's next
 * child, a fan-out's task starts) is done while the second half is written, instead of the store
 * and the engine taking turns over one big batch. Below this, a batch's fixed cost (one fsync,
 * 4–5 ms on the machines measured, against 5–10 µs per row on SQLite) would outweigh the
 * overlap: 500 rows are about as long to write as the commit that ends them. The engine turns
 * the split with the tuning `idleSplitRows` (this value by default; 0 turns it off); a committer
 * built without `splitMinRows` uses this value.
 */
export const SPLIT_MIN_ROWS = 500;

function stoppedBeforeStored(): CocoError {
  return new CocoError(ErrorCode.EngineStopped, 'the engine stopped before this change was stored');
}

/** How long a store has taken no write, for messages (readiness's public reason). */
export function outageReason(forMs: number): string {
  return `the store has taken no write for ${(forMs / 1000).toFixed(1)} s`;
}

/** What a store that takes no write last said: its latest failure, or that it did not answer. */
export function outageDetail(last: ErrorInfo | null): string {
  return last ? `${last.code}: ${last.message}` : 'no answer';
}

/** Why a store owes a batch, for messages: how long, and its latest failure or no answer. */
export function outageText(forMs: number, last: ErrorInfo | null): string {
  return `${outageReason(forMs)} (${last ? 'last failure: ' : ''}${outageDetail(last)})`;
}

/** What {@link Committer.watchOutages} calls. */
interface OutageWatch {
  readonly limitMs: number;
  readonly onOut: (forMs: number) => void;
  readonly onBack: (lastedMs: number) => void;
}

/** Collects dirty live objects and flushes them in ordered, atomic, pipelined batches. */
export class Committer {
  /**
   * Command groups with dirty objects, in order of first change (taken ones are skipped): the
   * entries from `#head` to `#tail`. The array is kept and refilled from the start once emptied
   * (taken slots are set to null, so it holds no command it no longer queues): a new array per
   * batch grew again from empty, copying itself each time (~1 KB per fan-out parent).
   */
  readonly #groups: (LiveCommand | null)[] = [];
  #head = 0;
  #tail = 0;
  /** Rows waiting, over all groups. */
  #rows = 0;
  #entities: EntityWrite[] = [];
  /** Tasks whose `running` write is deferred (see {@link Committer.taskStarted}). */
  #started: LiveTask[] = [];
  #startedTimer: TimerHandle | null = null;
  /**
   * Callbacks waiting for their cause's queued changes, in the order they were registered: three
   * entries each (the cause, the function, its argument), the first `#afterEnd` entries of the
   * array. A batch takes those whose cause it took (`#takeAfter`); the others move to the front.
   * One array kept and refilled, not one per command: every command queues a callback in
   * most batches (a chain: 11 per chain), and a list of its own cost it ~64 bytes each time.
   */
  readonly #after: unknown[] = [];
  #afterEnd = 0;
  /** Callbacks whose cause is already durable or in flight: they go with the next batch. */
  #ready: AfterCommit[] = [];
  /** Callbacks waiting for everything marked before them (a barrier). */
  #barriers = 0;
  #scheduled = false;
  /** Batches with the store, oldest first. */
  readonly #flights: Flight[] = [];
  /** A batch failed: no new flush until every flight has settled and the failures are requeued. */
  #recovering = false;
  #failedFlights: Flight[] = [];
  #failures = 0;
  /**
   * When the oldest batch not yet committed was first sent (clock ms; a failed batch's retries
   * count from its first send), or null while no batch waits for the store.
   */
  #owedSince: number | null = null;
  /** The latest failure since the last commit, or null. */
  #lastFailure: ErrorInfo | null = null;
  /** See {@link Committer.watchOutages}. */
  #outages: OutageWatch | null = null;
  #outageTimer: TimerHandle | null = null;
  /** The `owedSince` of the outage reported by `onOut`, until a commit ends it. */
  #outSince: number | null = null;
  #stopped = false;
  #retryTimer: TimerHandle | null = null;
  #idle: (() => void)[] = [];
  /** Rejecters of `durable()` promises not yet resolved: called if the committer stops first. */
  readonly #abandon = new Set<(error: Error) => void>();
  /** Finds live children, to keep a parent's batch behind its children's. */
  readonly #childOf: (id: number) => LiveCommand | undefined;
  readonly #listeners: CommitListener[] = [];
  /** Counters for monitoring: batches committed, rows written, time spent applying. */
  readonly stats = { batches: 0, commands: 0, tasks: 0, applyMs: 0 };
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #options: CommitterOptions;
  readonly #onError: (error: unknown, attempt: number) => void;
  readonly #onRefused: ((trees: readonly RefusedTree[]) => void) | null;
  /** Whether a failure being recovered from is a refusal ({@link isRefusal}). */
  #refused = false;
  /** The trees of a refused batch are being isolated (see the module): `drain` waits. */
  #isolating = false;
  /** Trees refused alone were handed to `onRefused`: nothing more is sent, `drain` ends. */
  #handedOver = false;

  /**
   * `childOf` finds a live command by id (the command repository), so that a parent's change is
   * never committed before its children's. `onRefused` is told of the trees whose changes the
   * store refuses on their own (see the module); without it, a refused batch is tried again as
   * any failed one.
   */
  constructor(
    store: Store,
    clock: Clock,
    options: CommitterOptions,
    onError: (error: unknown, attempt: number) => void,
    childOf: (id: number) => LiveCommand | undefined = () => undefined,
    onRefused: ((trees: readonly RefusedTree[]) => void) | null = null,
  ) {
    this.#store = store;
    this.#clock = clock;
    this.#options = options;
    this.#onError = onError;
    this.#childOf = childOf;
    this.#onRefused = onRefused;
  }

  #group(c: LiveCommand): void {
    if (!c.queuedGroup) {
      c.queuedGroup = true;
      if (this.#tail < this.#groups.length) this.#groups[this.#tail] = c;
      else this.#groups.push(c);
      this.#tail++;
    }
    this.#schedule();
  }

  /** Marks a command changed (new or updated). */
  command(c: LiveCommand): void {
    if (c.dirty) {
      // Queued for the narrow write only: now it needs the full one.
      if (c.settledOnly) c.settledOnly = false;
      return;
    }
    c.dirty = true;
    this.#rows++;
    this.#group(c);
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
    this.#rows++;
    this.#group(c);
  }

  /** Marks a task changed (new or updated). */
  task(t: LiveTask): void {
    t.lazy = false;
    if (t.dirty) return;
    t.dirty = true;
    // The first one alone, a list from the second on (a chain's or fan-out's command has one
    // dirty task per batch: no array for it); a literal, not `[]` then push: an array grown
    // from empty gets room for 17.
    const c = t.command;
    const dirty = c.dirtyTasks;
    if (dirty === null) c.dirtyTasks = t;
    else if (Array.isArray(dirty)) dirty.push(t);
    else c.dirtyTasks = [dirty, t];
    this.#rows++;
    this.#group(t.command);
  }

  /**
   * Marks a stored task started: its `running` status is written with its next change, or after
   * {@link STARTED_WRITE_DELAY_MS} if none comes first. Only for tasks whose progress this node
   * follows itself (other nodes learn of running tasks from the store).
   */
  taskStarted(t: LiveTask): void {
    if (t.lazy) return;
    if (t.dirty || !t.persisted) return this.task(t);
    t.lazy = true;
    this.#started.push(t);
    this.#startedTimer ??= this.#clock.setTimer(STARTED_WRITE_DELAY_MS, () => this.#writeStarted());
  }

  /** Queues the deferred `running` writes of tasks that have not changed since. */
  #writeStarted(): void {
    this.#startedTimer?.cancel();
    this.#startedTimer = null;
    const tasks = this.#started;
    this.#started = [];
    for (const t of tasks) if (t.lazy) this.task(t);
  }

  /** Marks an undo step changed (new or updated). */
  undo(u: LiveUndo): void {
    if (u.dirty) return;
    u.dirty = true;
    const c = u.command;
    if (c.dirtyUndo === null) c.dirtyUndo = [u];
    else c.dirtyUndo.push(u);
    this.#rows++;
    this.#group(u.command);
  }

  /** Queues entity writes; they commit in the next batch (which then takes everything). */
  entities(writes: readonly EntityWrite[]): void {
    if (writes.length === 0) return;
    for (const w of writes) this.#entities.push(w);
    this.#schedule();
  }

  /**
   * Runs `fn` once the changes it depends on have committed: with a `cause`, every change of that
   * command (its group) marked so far; without, every change marked so far.
   */
  afterCommit(fn: () => void, cause: LiveCommand | null = null): void {
    this.afterCommitWith(fn, undefined, cause);
  }

  /**
   * {@link Committer.afterCommit} for a function made once (a method bound at construction) and
   * its argument: `fn(arg)` runs after the commit. Every command's end and every task's start
   * waits on a commit: a closure for each meant a function and its context per command and task
   * (with the lists they were kept in, ~0.7 KB of the ~36 KB a chain allocated).
   */
  afterCommitWith<T>(fn: (arg: T) => void, arg: T, cause: LiveCommand | null = null): void {
    if (cause === null) {
      this.#barriers++;
      this.#ready.push({ fn, arg, barrier: true, cause: null });
    } else if (cause.queuedGroup) {
      const after = this.#after;
      const end = this.#afterEnd;
      if (end < after.length) {
        after[end] = cause;
        after[end + 1] = fn;
        after[end + 2] = arg;
      } else after.push(cause, fn, arg);
      this.#afterEnd = end + 3;
    } else this.#ready.push({ fn, arg, barrier: false, cause });
    this.#schedule();
  }

  /** Resolves once the changes of `cause` (or all changes, without one) marked so far are durable. */
  durable(cause: LiveCommand | null = null): Promise<void> {
    if (this.#stopped) return Promise.reject(stoppedBeforeStored());
    return new Promise((resolve, reject) => {
      this.#abandon.add(reject);
      this.afterCommit(() => {
        this.#abandon.delete(reject);
        resolve();
      }, cause);
    });
  }

  /** Subscribes to committed batches. */
  onCommit(listener: CommitListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  /** Rows waiting to be flushed. */
  get dirtyRows(): number {
    return this.#rows;
  }

  /**
   * Sends a batch now, rather than at the end of the turn, if a full batch's worth of rows
   * (`maxBatchRows`) was made since `rowsBefore` (a {@link Committer.dirtyRows} reading) and one
   * can go: the coordinator's drain calls it between two trees. Never when the next batch must
   * take everything (entity writes, barrier callbacks): it would take commands not yet stepped.
   */
  flushFullBatch(rowsBefore: number): void {
    if (this.#rows - rowsBefore < this.#options.maxBatchRows) return;
    if (this.#takesAll()) return;
    this.#flush();
  }

  /**
   * Sends a batch now, rather than at the end of the turn, if one is worth sending: a full
   * batch's worth of rows (`maxBatchRows`) is dirty, or the store is idle and at least twice
   * {@link SPLIT_MIN_ROWS} are (as an idle store's flush splits at). Never when the next batch
   * must take everything (entity writes, barrier callbacks). For callers that know every dirty
   * command has been stepped (see `Coordinator.stepReady`).
   */
  flushIfFull(): void {
    if (this.#idleWithParts()) {
      if (!this.#takesAll()) this.#flush();
    } else this.flushFullBatch(0);
  }

  /** The next batch must take everything dirty: entity writes or barrier callbacks are waiting. */
  #takesAll(): boolean {
    return this.#entities.length > 0 || this.#barriers > 0;
  }

  /**
   * No batch in flight and at least twice the idle split's smallest part dirty
   * ({@link SPLIT_MIN_ROWS}; a split of 0 is off): what an idle store's flush is split for.
   */
  #idleWithParts(): boolean {
    const minPart = this.#options.splitMinRows ?? SPLIT_MIN_ROWS;
    return minPart > 0 && this.#flights.length === 0 && this.#rows >= 2 * minPart;
  }

  /** Whether anything is waiting to be flushed. */
  get pending(): boolean {
    return this.#head < this.#tail || this.#entities.length > 0 || this.#ready.length > 0;
  }

  /**
   * Since when the store owes an answer: the first send of the oldest batch not yet committed
   * (clock ms, failed tries included), or null while no batch waits for the store. How long ago
   * that is tells a store that keeps up (a batch's write: milliseconds) from one that is out
   * (failing, or not answering, for seconds).
   */
  get owedSince(): number | null {
    return this.#owedSince;
  }

  /** The latest failure since the last commit, or null. */
  get lastFailure(): ErrorInfo | null {
    return this.#lastFailure;
  }

  /**
   * Calls `onOut` once the store has owed an answer for `limitMs` ({@link Committer.owedSince}),
   * with how long it has, and `onBack` at the commit that ends such an outage, with how long it lasted (from the first
   * send of the batch it owed). One timer at most, re-armed only when it fires.
   */
  watchOutages(
    limitMs: number,
    onOut: (forMs: number) => void,
    onBack: (lastedMs: number) => void,
  ): void {
    this.#outages = { limitMs, onOut, onBack };
    this.#watchOwed();
  }

  /** Arms the outage timer for the batch owed now, unless one is armed or reported. */
  #watchOwed(): void {
    const watch = this.#outages;
    const since = this.#owedSince;
    if (!watch || this.#outageTimer || since === null || this.#outSince !== null || this.#stopped)
      return;
    const due = Math.max(0, since + watch.limitMs - this.#clock.now());
    this.#outageTimer = this.#clock.setTimer(due, () => {
      this.#outageTimer = null;
      const owed = this.#owedSince;
      if (owed === null || this.#stopped) return;
      const forMs = this.#clock.now() - owed;
      if (forMs >= watch.limitMs) {
        this.#outSince = owed;
        watch.onOut(forMs);
      } else this.#watchOwed();
    });
  }

  /** Flushes everything now and waits (used when stopping). */
  async drain(): Promise<void> {
    this.#writeStarted();
    for (let i = 0; i < 1000 && !this.#stopped && (this.pending || this.#flights.length > 0); i++) {
      if (this.#flights.length > 0 || this.#isolating) {
        await new Promise<void>((resolve) => this.#idle.push(resolve));
        continue;
      }
      // Trees refused were handed over: the engine halts, nothing more is stored.
      if (this.#handedOver) break;
      if (this.#recovering) {
        // Waiting out a retry delay: retry now instead (the engine is stopping).
        this.#retryTimer?.cancel();
        this.#retryTimer = null;
        this.#recovering = false;
      }
      this.#flush();
    }
  }

  /**
   * Stops scheduling flushes (pending changes are dropped; the engine is stopping). Whoever
   * still waits on {@link Committer.durable} is rejected with `reason` (default
   * `ENGINE_STOPPED`): what they waited for was not stored.
   */
  stop(reason: Error = stoppedBeforeStored()): void {
    this.#stopped = true;
    this.#retryTimer?.cancel();
    this.#startedTimer?.cancel();
    this.#startedTimer = null;
    this.#outageTimer?.cancel();
    this.#outageTimer = null;
    for (const fn of this.#idle.splice(0)) fn();
    for (const reject of this.#abandon) reject(reason);
    this.#abandon.clear();
  }

  #schedule(): void {
    if (
      this.#scheduled ||
      this.#stopped ||
      this.#recovering ||
      this.#flights.length >= this.#options.maxInFlight
    )
      return;
    this.#scheduled = true;
    // setImmediate runs after the microtasks of handlers that finished in this turn, so their
    // changes join the same batch.
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (
      this.#stopped ||
      this.#recovering ||
      this.#flights.length >= this.#options.maxInFlight ||
      !this.pending
    )
      return;
    const flight = this.#take();
    flight.batch = snapshot(flight);
    // Dirty flags are cleared now, so changes made while the store writes re-mark their objects
    // for a later batch; rows inserted by this batch count as stored for the batches after it.
    const { commands, tasks, undo, inserted } = flight;
    for (let i = 0; i < commands.length; i++) {
      const c = commands[i]!;
      c.dirty = false;
      c.paramsDirty = false;
      c.settledOnly = false;
    }
    for (let i = 0; i < tasks.length; i++) tasks[i]!.dirty = false;
    for (let i = 0; i < undo.length; i++) undo[i]!.dirty = false;
    for (let i = 0; i < inserted.length; i++) inserted[i]!.persisted = true;
    if (this.#owedSince === null) {
      this.#owedSince = flight.sentAt;
      this.#watchOwed();
    }
    this.#flights.push(flight);
    this.#store.apply(flight.batch).then(
      () => this.#settle(flight, null),
      (error: unknown) => this.#settle(flight, error),
    );
    if (this.pending) this.#schedule();
  }

  /**
   * Takes the next batch: whole groups, oldest first, each with its queued descendants, until
   * `maxBatchRows` (everything if entity writes or a barrier callback wait, or little is dirty).
   */
  #take(): Flight {
    const flight: Flight = {
      batch: EMPTY,
      commands: [],
      tasks: [],
      undo: [],
      entities: this.#entities,
      after: [],
      inserted: [],
      upgraded: [],
      began: performance.now(),
      sentAt: this.#clock.now(),
      failed: false,
    };
    const max = this.#options.maxBatchRows;
    // An idle store gets half of what is dirty first (SPLIT_MIN_ROWS): at most `budget` rows,
    // cut only before a stored command's group, so new commands queued together (a submitMany's
    // roots) are never cut apart by it.
    const budget =
      this.#options.maxInFlight > 1 && this.#idleWithParts()
        ? Math.min(max, Math.ceil(this.#rows / 2))
        : max;
    const forced = this.#takesAll();
    const all = forced || this.#rows <= budget;
    this.#entities = [];
    let rows = 0;
    const take = (c: LiveCommand): void => {
      if (!c.queuedGroup) return;
      c.queuedGroup = false;
      if (c.dirty) {
        flight.commands.push(c);
        rows++;
      }
      const tasks = c.dirtyTasks;
      if (tasks !== null) {
        if (Array.isArray(tasks)) {
          for (let i = 0; i < tasks.length; i++) flight.tasks.push(tasks[i]!);
          rows += tasks.length;
        } else {
          flight.tasks.push(tasks);
          rows++;
        }
        c.dirtyTasks = null;
      }
      const undo = c.dirtyUndo;
      if (undo !== null) {
        for (let i = 0; i < undo.length; i++) flight.undo.push(undo[i]!);
        rows += undo.length;
        c.dirtyUndo = null;
      }
      // A parent's change never commits before its children's: they join its batch.
      const children = c.children;
      if (!all && children !== null) {
        for (let i = 0; i < children.length; i++) {
          const child = this.#childOf(children[i]!.id);
          if (child?.queuedGroup) take(child);
        }
      }
      // A parent queued behind its child joins it too (with its other queued children): its
      // reaction to the child (its end, once its last child ended) is stored with the cause
      // instead of batches later, behind the other groups queued in between.
      if (!all && c.parentId !== null) {
        const parent = this.#childOf(c.parentId);
        if (parent?.queuedGroup) take(parent);
      }
    };
    const groups = this.#groups;
    while (this.#head < this.#tail) {
      const head = groups[this.#head]!;
      if (!all && (rows >= max || (rows >= budget && head.persisted))) break;
      // A new command still waiting for its first step (the coordinator's drain sent this batch
      // before reaching it) would be stored `pending` now and again once stepped: it waits.
      if (!forced && rows > 0 && head.queued && !head.persisted && head.status === 'pending') break;
      groups[this.#head++] = null;
      take(head);
    }
    if (this.#head >= this.#tail) {
      this.#head = 0;
      this.#tail = 0;
    } else if (this.#head > 4096 && this.#head * 2 > this.#tail) {
      // Mostly taken: the rest moves to the front (the slots it leaves are set to null).
      groups.copyWithin(0, this.#head, this.#tail);
      const left = this.#tail - this.#head;
      groups.fill(null, left, this.#tail);
      this.#head = 0;
      this.#tail = left;
    }
    this.#rows -= rows;
    this.#takeAfter(flight);
    // Callbacks whose cause was durable (or in flight) already go now, in order.
    for (const a of this.#ready) {
      flight.after.push(a.cause, a.fn, a.arg);
      if (a.barrier) this.#barriers--;
    }
    this.#ready = [];
    return flight;
  }

  /**
   * Moves the waiting callbacks whose cause `flight` took (its group is no longer queued: only
   * `#take` unqueues one) into it, in order; the others move to the front, in order.
   */
  #takeAfter(flight: Flight): void {
    const after = this.#after;
    const end = this.#afterEnd;
    let kept = 0;
    for (let i = 0; i < end; i += 3) {
      if ((after[i] as LiveCommand).queuedGroup) {
        if (kept !== i) {
          after[kept] = after[i];
          after[kept + 1] = after[i + 1];
          after[kept + 2] = after[i + 2];
        }
        kept += 3;
      } else flight.after.push(after[i], after[i + 1], after[i + 2]);
    }
    // The slots left hold nothing (no command or callback kept alive by them).
    after.fill(null, kept, end);
    this.#afterEnd = kept;
  }

  #settle(flight: Flight, error: unknown): void {
    if (error !== null) {
      flight.failed = true;
      this.#failedFlights.push(flight);
      if (!this.#recovering) {
        this.#failures++;
        this.#lastFailure = toErrorInfo(error);
        this.#onError(error, this.#failures);
      }
      if (isRefusal(error)) this.#refused = true;
      this.#recovering = true;
    } else {
      // (The store refuses the batches after a failed one, so none commits during recovery.)
      this.#committed(flight);
    }
    const i = this.#flights.indexOf(flight);
    if (i >= 0) this.#flights.splice(i, 1);
    // Flights settle in order: after a commit, the oldest still owed is the next one.
    if (error === null) this.#owedNext();
    if (this.#flights.length === 0) {
      if (this.#recovering) {
        if (this.#refused && this.#onRefused !== null) void this.#isolate();
        else this.#requeueFailed();
      }
      for (const fn of this.#idle.splice(0)) fn();
    }
    if (!this.#recovering && this.pending) this.#schedule();
  }

  /** After a commit: the store owes the oldest batch still in flight, if any; an outage ended. */
  #owedNext(): void {
    this.#owedSince = this.#flights[0]?.sentAt ?? null;
    if (this.#outSince !== null) {
      const lasted = this.#clock.now() - this.#outSince;
      this.#outSince = null;
      this.#outages?.onBack(lasted);
    }
    this.#watchOwed();
  }

  /**
   * The failed batches hold a refusal (see the module): applies them again split by tree, in
   * halves, until the trees refused alone are known. Each tree's part of each batch goes in the
   * batches' order; a failure that is not a refusal (the store away meanwhile) tries the same part
   * again after the retry delay. No new batch is sent meanwhile (the committer is recovering).
   */
  async #isolate(): Promise<void> {
    this.#isolating = true;
    const failed = this.#failedFlights;
    this.#failedFlights = [];
    this.#refused = false;
    const parts = failed.map((f) => rootsOf(f, this.#childOf));
    const trees = [...new Set(parts.flatMap((p) => [...p.values()]))];
    const refused: RefusedTree[] = [];
    const todo: { trees: number[]; at: number }[] = [{ trees, at: 0 }];
    while (todo.length > 0) {
      if (this.#stopped) return;
      const next = todo.pop()!;
      const { at } = next;
      if (at >= failed.length) continue;
      const batch = treesPart(failed[at]!.batch, parts[at]!, new Set(next.trees));
      if (batch === null) {
        todo.push({ trees: next.trees, at: at + 1 });
        continue;
      }
      try {
        await this.#store.apply(batch);
        todo.push({ trees: next.trees, at: at + 1 });
      } catch (error) {
        if (this.#stopped) return;
        if (isRefusal(error)) {
          if (next.trees.length === 1) refused.push({ rootId: next.trees[0]!, error });
          else {
            const half = Math.ceil(next.trees.length / 2);
            todo.push(
              { trees: next.trees.slice(half), at },
              { trees: next.trees.slice(0, half), at },
            );
          }
          continue;
        }
        this.#failures++;
        this.#lastFailure = toErrorInfo(error);
        this.#onError(error, this.#failures);
        await new Promise<void>((resolve) => {
          this.#retryTimer = this.#clock.setTimer(this.#retryDelay(), () => {
            this.#retryTimer = null;
            resolve();
          });
        });
        todo.push(next);
      }
    }
    if (this.#stopped) return;
    this.#isolating = false;
    for (const fn of this.#idle.splice(0)) fn();
    if (refused.length > 0) {
      // What was stored of the other trees is the truth; the refused ones' memory is not. Whoever
      // waits for a change of another tree is told it is stored (a submission answered, its task
      // starts sent); barrier callbacks wait for the refused trees too, so they never run. Then
      // the engine marks the refused trees held and halts (nothing more is sent: the committer
      // stays recovering).
      this.#handedOver = true;
      const roots = new Set(refused.map((t) => t.rootId));
      for (const f of failed) runAfterExcept(f.after, (cause) => roots.has(cause.rootId));
      this.#onRefused!(refused);
      return;
    }
    // Every tree's changes are stored after all (a refusal between two trees, gone once they
    // were apart): the failed batches count as committed, in order.
    this.#recovering = false;
    for (const f of failed) this.#committed(f);
    this.#owedNext();
    if (this.pending) this.#schedule();
  }

  /** The pause before the next try after a failure: `retryBaseMs`, doubling, up to `retryMaxMs`. */
  #retryDelay(): number {
    return Math.min(
      this.#options.retryMaxMs,
      this.#options.retryBaseMs * 2 ** Math.min(this.#failures - 1, 16),
    );
  }

  #committed(flight: Flight): void {
    this.#failures = 0;
    this.#lastFailure = null;
    this.stats.batches++;
    this.stats.commands += flight.commands.length;
    this.stats.tasks += flight.tasks.length;
    const applyMs = performance.now() - flight.began;
    this.stats.applyMs += applyMs;
    const rows = flight.commands.length + flight.tasks.length + flight.undo.length;
    for (const listener of this.#listeners) {
      try {
        listener(flight.batch, rows, applyMs);
      } catch (error) {
        this.#onError(
          new CocoError(
            ErrorCode.HandlerFailed,
            `a commit listener threw: ${toErrorInfo(error).message}`,
            { cause: error },
          ),
          0,
        );
      }
    }
    runAfter(flight.after);
  }

  /** Every flight has settled after a failure: put the failed batches back, in order, and retry. */
  #requeueFailed(): void {
    const failed = this.#failedFlights;
    this.#failedFlights = [];
    const entities: EntityWrite[] = [];
    const after: AfterCommit[] = [];
    for (const f of failed) {
      for (const o of f.inserted) o.persisted = false;
      for (const c of f.upgraded) c.paramsDirty = true;
      for (const c of f.commands) this.command(c);
      for (const t of f.tasks) this.task(t);
      for (const u of f.undo) this.undo(u);
      entities.push(...f.entities);
      for (let i = 0; i < f.after.length; i += 3)
        after.push({
          fn: f.after[i + 1] as AfterCommit['fn'],
          arg: f.after[i + 2],
          barrier: true,
          cause: null,
        });
    }
    // Failed batches go first again, as one barrier: nothing after them runs before they commit.
    // Callbacks registered while they were in flight (their cause taken, so queued as "ready")
    // become barriers too: their cause is back in the queue, and a partial next batch might not
    // hold it.
    this.#entities = entities.concat(this.#entities);
    const ready = this.#ready.map((a): AfterCommit => {
      if (!a.barrier) this.#barriers++;
      return { fn: a.fn, arg: a.arg, barrier: true, cause: null };
    });
    this.#barriers += after.length;
    this.#ready = after.concat(ready);
    this.#refused = false;
    this.#retryTimer = this.#clock.setTimer(this.#retryDelay(), () => {
      this.#retryTimer = null;
      this.#recovering = false;
      this.#flush();
    });
  }
}
