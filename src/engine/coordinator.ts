/**
 * The coordinator drives every live command: it asks {@link decide} what to do next, carries
 * it out (running handlers through `handlers.ts`), applies state changes along the transition
 * tables, reacts to task reports from the {@link Dispatcher}, and settles ended commands
 * (clearing their tasks, then letting them go from memory).
 *
 * @module
 */
import type { TimerHandle } from '../core/clock.js';
import type { CommandType, Json, Logger, TaskSpec } from '../core/command-type.js';
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { CommandRegistry } from '../core/registry.js';
import type { CommandStatus } from '../core/states.js';
import type { Store } from '../store/port.js';
import type { Committer } from './committer.js';
import { decide } from './decide.js';
import { childStateOf, newChild, newRoot } from './factory.js';
import { Endings } from './endings.js';
import { EntityOverlay } from './entities.js';
import type { EngineEvents } from './events.js';
import type { ClosedCtx } from './contexts.js';
import {
  runFailure,
  runStage,
  runSuccess,
  runUndo,
  type HandlerHost,
  type Phase,
} from './handlers.js';
import type { IdAllocator } from './ids.js';
import type { ChildState, LiveCommand } from './live.js';
import { LiveUndo, type LiveTask } from './live.js';
import type { CompiledEngineOptions } from './options.js';
import { RootAdmission } from './root-admission.js';
import type { SlotLedger } from './admission.js';
import { TaskTracker, type TaskHost } from './tasks.js';
import { resume } from './adopt.js';
import type { Dispatcher, PollGate } from './dispatcher.js';
import { loadOne } from './recovery.js';
import { unloadableError } from './unloadable.js';
import { Tracing } from './tracing.js';

/** What a coordinator is built with (the store is open; `storeId` is its identity). */
export interface CoordinatorParts {
  readonly options: CompiledEngineOptions;
  readonly store: Store;
  readonly committer: Committer;
  readonly events: EngineEvents;
  readonly ids: IdAllocator;
  readonly registry: CommandRegistry;
  readonly storeId: string;
  /** The command repository (the committer reads it too, to keep parents behind children). */
  readonly live: Map<number, LiveCommand>;
  /** The dispatcher's poll gate on a shared store (its agent leases), or null alone. */
  readonly gate: PollGate | null;
  /** On a shared store, the slot ledger (admission across nodes), or null alone. */
  readonly ledger: SlotLedger | null;
}

/** Drives live commands. */
export class Coordinator implements HandlerHost, TaskHost {
  /** Live commands by id: the command repository. */
  readonly live: Map<number, LiveCommand>;
  /**
   * Commands of this node's trees that could not be loaded, by id, with why: left untouched, and
   * their tasks never stopped or cleared by reconciliation.
   */
  readonly unloaded = new Map<number, ErrorInfo>();
  readonly tasks: TaskTracker;
  /** The root limits (per type, per node) and their queue. */
  readonly roots: RootAdmission;
  /** The agent calls (owned by the task tracker). */
  readonly dispatcher: Dispatcher;
  readonly registry: CommandRegistry;
  readonly storeId: string;
  readonly events: EngineEvents;
  /** The engine's spans (a no-op without an OpenTelemetry SDK). */
  readonly tracing: Tracing;
  #stopped = false;
  readonly log: Logger;
  #ready: LiveCommand[] = [];
  #drainScheduled = false;
  /** True while a drain steps commands (commands created meanwhile are {@link #fresh}). */
  #draining = false;
  /**
   * Commands created by the step being run (a stage's children): stepped right after it, before
   * the next command of the drain, so that a tree's new commands are ready together and a batch
   * taken between two trees holds whole trees (a child stepped later would be stored `pending`,
   * then stored again `waiting`).
   */
  #fresh: LiveCommand[] = [];
  #handlers = 0;
  #idle: (() => void)[] = [];
  readonly #endings: Endings;
  readonly #entities: EntityOverlay;

  private readonly options: CompiledEngineOptions;
  private readonly store: Store;
  private readonly committer: Committer;
  private readonly ids: IdAllocator;
  constructor(parts: CoordinatorParts) {
    const { options, store, committer, events, storeId } = parts;
    this.options = options;
    this.store = store;
    this.committer = committer;
    this.events = events;
    this.ids = parts.ids;
    this.registry = parts.registry;
    this.storeId = storeId;
    this.live = parts.live;
    this.log = options.logger;
    this.tracing = new Tracing(options.tracer);
    this.tasks = new TaskTracker({
      tracing: this.tracing,
      host: this,
      committer,
      clock: options.clock,
      events,
      storeId,
      broker: options.agents,
      gate: parts.gate,
      tuning: options.tuning,
      random: options.random,
      limits: options.limits,
      ledger: parts.ledger,
    });
    this.dispatcher = this.tasks.dispatcher;
    this.roots = new RootAdmission(
      {
        admitted: (c) => {
          // A root admitted as it is created is not live yet: its creation wakes it.
          if (!this.live.has(c.id)) return;
          this.touch(c);
          this.wake(c);
        },
      },
      options.limits,
    );
    this.#entities = new EntityOverlay(store, committer);
    this.#endings = new Endings({
      live: this.live,
      committer,
      events,
      dispatcher: this.dispatcher,
      clock: options.clock,
      tracing: this.tracing,
      wake: (c) => this.wake(c),
    });
  }

  /** Whether the coordinator was stopped (the engine stopped or halted): it acts no more. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Stops the loop: no command is looked at any more, no handler's outcome is applied. */
  stop(): void {
    this.#stopped = true;
  }

  /**
   * Loads one command (with its entries) from the store and resumes it; used for compensating a
   * child that left memory. Null (reported as `load-failed`) if it cannot be loaded.
   */
  async load(id: number): Promise<LiveCommand | null> {
    const { command, failure } = await loadOne(this.store, this.registry, this.storeId, id);
    if (failure) this.events.emit('load-failed', failure);
    if (command) resume(this, command);
    return command;
  }

  /** The live task a relayed report is for, unless its command is held (nothing of it runs). */
  liveTask(commandId: number, ordinal: number): LiveTask | undefined {
    const c = this.live.get(commandId);
    return c?.held ? undefined : c?.tasks[ordinal];
  }

  /**
   * Cancels a command of this node's memory (as `Engine.cancel` does), resolving once the request
   * is durable; false if the command is not in memory.
   */
  async cancelLoaded(id: number): Promise<boolean> {
    const c = this.live.get(id);
    if (!c) return false;
    this.cancel(c);
    await this.committer.durable(c);
    return true;
  }

  now(): number {
    return this.options.clock.now();
  }

  random(): number {
    return this.options.random();
  }

  handlerTimeout(c: LiveCommand, phase: Phase): number | null {
    const own = c.type.handlerTimeoutMs;
    if (own !== undefined) return own;
    const bound = this.options.tuning.handlerTimeoutMs;
    return phase === 'undo' || bound === 0 ? null : bound;
  }

  handlerTimedOut(c: LiveCommand, phase: Phase, limitMs: number): void {
    this.log.warn(
      { commandId: c.id, type: c.type.name, phase, limitMs },
      'a handler did not end in time: its run counts as failed',
    );
    this.events.emit('handler-timeout', { commandId: c.id, type: c.type.name, phase, limitMs });
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    return this.options.clock.setTimer(ms, fn);
  }

  // ---------------------------------------------------------------- the loop

  /** Queues a command to be looked at. */
  wake(c: LiveCommand): void {
    if (c.queued || this.#stopped) return;
    c.queued = true;
    this.#ready.push(c);
    if (!this.#drainScheduled) {
      this.#drainScheduled = true;
      queueMicrotask(this.#drainNow);
    }
  }

  /**
   * Steps the queued commands now rather than in the microtask queued for them (unless a drain is
   * running), then sends a batch at once if one is worth sending (`Committer.flushIfFull`): a
   * submission's new roots. Submissions made in one turn (ten `submitMany` of 1,000, or a
   * thousand `submit`) otherwise all create their roots before the one drain that steps them,
   * and the store gets its first batch only once the whole burst is stepped: stepped as each
   * arrives, the first batch goes after a batch's worth, and the store writes it while the rest
   * of the burst is created.
   */
  stepReady(): void {
    if (this.#draining || this.#stopped || this.#ready.length === 0) return;
    this.#drain();
    this.committer.flushIfFull();
  }

  /** {@link #drain} as a callback, made once (not a closure per drain). */
  readonly #drainNow = (): void => this.#drain();

  #drain(): void {
    this.#drainScheduled = false;
    const ready = this.#ready;
    this.#ready = [];
    this.#draining = true;
    const rows0 = this.committer.dirtyRows;
    try {
      for (let i = 0; i < ready.length; i++) {
        this.#stepQueued(ready[i]!);
        // Depth first: the commands this step created, and theirs, before the next.
        for (let j = 0; j < this.#fresh.length; j++) this.#stepQueued(this.#fresh[j]!);
        // A new array only after a step that created commands (most create none).
        if (this.#fresh.length > 0) this.#fresh = [];
        // This drain made a full batch of rows and the store can take one: send it now, so the
        // store writes it while the rest of the queue is worked out, instead of both waiting for
        // the whole drain (a submitMany of 1,000 fan-out parents: 10,000 children; fan-out +18 %).
        // A full batch, not less: a drain smaller than a batch (a chain's step) stays whole —
        // cut at half a batch, chains ran 15-20 % slower (more batches, more agent calls).
        if (i + 1 < ready.length) this.committer.flushFullBatch(rows0);
      }
    } finally {
      this.#draining = false;
    }
  }

  #stepQueued(c: LiveCommand): void {
    c.queued = false;
    try {
      this.#step(c);
    } catch (error) {
      this.#internalError(c, error);
    }
  }

  #internalError(c: LiveCommand, error: unknown): void {
    const info =
      error instanceof CocoError
        ? error.toInfo()
        : {
            code: ErrorCode.Internal,
            message: String(error instanceof Error ? error.stack : error),
          };
    this.log.error(
      { commandId: c.id, error: info },
      'internal error while advancing a command; it is left as it is',
    );
    this.events.emit('error', { error: info, context: `command ${c.id}` });
  }

  #step(c: LiveCommand): void {
    if (c.queuedSince !== null) {
      // A root waiting for admission runs nothing, unless a cancel or its lifetime ends it
      // (its lifetime counts from its submission): it leaves the queue, holding no slot.
      if (!c.cancelRequested && (c.deadlineAt === null || this.now() < c.deadlineAt)) return;
      this.roots.remove(c);
      this.touch(c);
    }
    // `decide` compares the time only with a deadline or a retry's due time: a step of a command
    // with neither (most steps: a fan-out parent is stepped at each child's end) reads no clock.
    const action = decide(c, c.deadlineAt === null && c.nextAttemptAt === null ? 0 : this.now());
    switch (action.kind) {
      case 'none':
        return;
      case 'wait-until':
        c.timer?.cancel();
        c.timer = this.options.clock.setTimer(action.at - this.now(), () => {
          c.timer = null;
          this.wake(c);
        });
        return;
      case 'run-stage':
        runStage(this, c);
        return;
      case 'next-stage':
        c.nextStage();
        this.touch(c);
        this.wake(c);
        return;
      case 'succeed':
        // Without onSuccess there is no handler to run: the command ends here and now.
        if (c.type.handlers.onSuccess) runSuccess(this, c);
        else this.endCommand(c, 'succeeded');
        return;
      case 'abort':
        this.abortCommand(c, action.error);
        return;
      case 'begin-compensation':
        this.setStatus(c, 'compensating');
        this.#setCompensation(c, 'compensating', null);
        this.wake(c);
        return;
      case 'undo':
        runUndo(this, c, action.undo);
        return;
      case 'compensate-child':
        void this.#compensateChild(c, action.child);
        return;
      case 'compensation-done':
        this.#setCompensation(c, action.error ? 'failed' : 'compensated', action.error);
        c.resetAttempts();
        if (c.terminal) this.#endings.compensated(c);
        this.wake(c);
        return;
      case 'finish-failure':
        runFailure(this, c);
        return;
    }
  }

  // ---------------------------------------------------------------- state changes

  /** Marks a command changed, at `now` (a caller that just read the clock passes its reading). */
  touch(c: LiveCommand, now = this.now()): void {
    c.updatedAt = now;
    this.committer.command(c);
  }

  touchUndo(u: LiveUndo): void {
    this.committer.undo(u);
  }

  setStatus(c: LiveCommand, to: CommandStatus): void {
    c.setStatus(to, this.now());
    this.committer.command(c);
  }

  #setCompensation(c: LiveCommand, to: LiveCommand['compensation'], error: ErrorInfo | null): void {
    c.setCompensation(to, error, this.now());
    this.committer.command(c);
  }

  /** Failure or cancellation decided: stop the command's tasks and cancel its children. */
  abortCommand(c: LiveCommand, error: ErrorInfo): void {
    c.abortWith(error, this.now());
    this.committer.command(c);
    c.abort?.abort();
    for (const t of c.tasks) if (!t.ended) this.tasks.stop(t);
    for (const ch of c.children ?? []) {
      if (ch.ended) continue;
      const child = this.live.get(ch.id);
      if (child) this.requestCancel(child);
      else
        this.log.warn(
          { commandId: c.id, childId: ch.id },
          'cannot cancel a child that is not loaded',
        );
    }
    this.wake(c);
  }

  /**
   * Asks a command to cancel (idempotent). Returns false if it had already ended or is failing.
   * A held command (it could not be loaded) is ended instead (see {@link endHeld}).
   */
  requestCancel(c: LiveCommand): boolean {
    if (c.held) {
      this.endHeld(c);
      return true;
    }
    if (c.terminal || c.cancelRequested) return false;
    c.cancelRequested = true;
    c.abort?.abort();
    this.touch(c);
    this.wake(c);
    return true;
  }

  /**
   * A user's cancel: ends a held command, asks a running one to cancel, and changes nothing for
   * one already failing or cancelling. False if the command had already ended (and is not held).
   */
  cancel(c: LiveCommand): boolean {
    if (c.held) this.endHeld(c);
    else if (c.terminal) return false;
    else if (c.status === 'pending' || c.status === 'waiting') this.requestCancel(c);
    return true;
  }

  /**
   * Ends a command held because it could not be loaded (a cancel: the user's, or its parent's).
   * Why it could not be loaded becomes its error (`COMMAND_UNLOADABLE`), its tasks are stopped
   * and its children cancelled, and it goes on as any failing command: its undo steps and
   * `onFailure` run with what stored data allows (none of its code if its type is unknown), then
   * it ends failed. `cancelRequested` is stored with the change, so after a restart the command
   * goes on ending instead of being held again.
   */
  endHeld(c: LiveCommand): void {
    c.held = false;
    c.cancelRequested = true;
    const error = unloadableError(c);
    if (c.status === 'pending' || c.status === 'waiting') {
      this.abortCommand(c, error);
      return;
    }
    // Already failing (or, ended, compensating): its work stops all the same.
    if (!c.terminal) c.error = error;
    c.resetAttempts();
    this.touch(c);
    for (const t of c.tasks) if (!t.ended) this.tasks.stop(t);
    for (const ch of c.children ?? []) {
      const child = ch.ended ? undefined : this.live.get(ch.id);
      if (child) this.requestCancel(child);
    }
    this.wake(c);
  }

  /**
   * Runs again the commands of a tree held because the store refused its changes
   * (`TREE_REFUSED`), as they were stored: each is resumed as at a start (its tasks started,
   * stopped or polled again, its timers armed, woken). How many were held.
   */
  releaseRefused(rootId: number): number {
    const held: LiveCommand[] = [];
    for (const c of this.live.values())
      if (c.rootId === rootId && c.held && c.loadError?.code === ErrorCode.TreeRefused)
        held.push(c);
    // All of them runnable before any is woken (a child's resume looks its parent up).
    for (const c of held) {
      c.held = false;
      c.loadError = null;
    }
    for (const c of held) resume(this, c);
    this.tasks.admission.pumpAll();
    this.roots.pump();
    return held.length;
  }

  /** Records a command's outcome, tells its parent, and starts clearing its tasks. */
  endCommand(c: LiveCommand, status: 'succeeded' | 'failed' | 'cancelled'): void {
    this.#endings.end(c, status);
    if (c.rootSlot) this.roots.ended(c);
  }

  /** Resolves with the live command once it has ended and that is durable. */
  whenEnded(c: LiveCommand): Promise<LiveCommand> {
    return this.#endings.whenEnded(c);
  }

  /** Once a command has settled: clear its tasks on their agents, then let it go. */
  settle(c: LiveCommand): void {
    this.#endings.settle(c);
  }

  async #compensateChild(c: LiveCommand, ch: ChildState): Promise<void> {
    let child = this.live.get(ch.id) ?? null;
    if (!child) {
      c.busy = true;
      try {
        child = await this.load(ch.id);
      } catch (error) {
        this.log.error(
          { commandId: c.id, childId: ch.id, error },
          'could not load a child to compensate it',
        );
      } finally {
        c.busy = false;
      }
      if (this.stopped) return;
      if (!child) {
        ch.compensationFailed({
          code: ErrorCode.CompensationFailed,
          message: `child ${ch.id} could not be loaded to compensate it`,
        });
        this.wake(c);
        return;
      }
      child = this.live.get(ch.id) ?? child;
    }
    if (child.compensation === 'none') {
      this.#setCompensation(child, 'compensating', null);
      this.wake(child);
    }
    ch.mirror(child);
    this.wake(c);
  }

  // ---------------------------------------------------------------- creation (handler contexts)

  /** Creates a root command (submit). */
  createRoot(
    type: CommandType,
    raw: unknown,
    params: unknown,
    idempotencyKey: string | null,
    priority = 0,
  ): LiveCommand {
    const c = this.buildRoot(type, raw, params, idempotencyKey, priority);
    this.adoptRoot(c);
    return c;
  }

  /**
   * A root command built and traced (its row carries its trace context), not yet live (see
   * {@link adoptRoot}): a root with an idempotency key on a shared store is stored on its own
   * first (`Engine.submit`), and dropped ({@link dropRoot}) if the key was taken.
   */
  buildRoot(
    type: CommandType,
    raw: unknown,
    params: unknown,
    idempotencyKey: string | null,
    priority = 0,
  ): LiveCommand {
    const c = newRoot(this.ids, this.now(), type, raw, params, idempotencyKey, priority);
    this.tracing.created(c, null);
    return c;
  }

  /** Makes a built root live: queued for admission when roots are limited, stepped. */
  adoptRoot(c: LiveCommand): void {
    // Its creation time: one clock reading per submission.
    const now = c.createdAt;
    if (this.roots.limited) {
      c.queuedSince = null; // (a keyed root stored as queued: see Engine.#submitAlone)
      this.roots.submit(c, now);
    }
    this.#adopt(c, now);
  }

  /** A built root never stored (its idempotency key was another command's): its span ends. */
  dropRoot(c: LiveCommand): void {
    this.tracing.dropped(c);
  }

  createChild(
    parent: LiveCommand,
    type: CommandType,
    params: unknown,
    priority?: number,
  ): ChildState {
    const now = this.now();
    const child = newChild(this.ids, this.registry, now, parent, type, params);
    const state = childStateOf(child);
    if (priority !== undefined) child.priority = priority;
    parent.addChild(state);
    this.touch(parent, now);
    this.tracing.created(child, parent);
    this.#adopt(child, now);
    return state;
  }

  #adopt(c: LiveCommand, now: number): void {
    this.live.set(c.id, c);
    this.touch(c, now);
    this.armLifetime(c);
    if (this.#draining && !this.#stopped) {
      c.queued = true;
      this.#fresh.push(c);
    } else this.wake(c);
  }

  /** Arms the lifetime timer of a command that has one. */
  armLifetime(c: LiveCommand): void {
    if (c.deadlineAt === null || c.terminal) return;
    c.lifetimeTimer?.cancel();
    const deadlineAt = c.deadlineAt;
    c.lifetimeTimer = this.options.clock.setTimer(deadlineAt - this.now(), () => {
      c.lifetimeTimer = null;
      // A timer may fire a millisecond before the wall clock reaches its time (Node's timers
      // run on a monotonic clock): `decide` would not see the deadline passed, and nothing
      // would wake the command again. Arm again until it has.
      if (this.now() < deadlineAt) this.armLifetime(c);
      else this.wake(c);
    });
  }

  createTask(c: LiveCommand, spec: TaskSpec, origin: number): LiveTask {
    return this.tasks.create(c, spec, origin);
  }

  awaitTask(t: LiveTask): Promise<unknown> {
    return this.tasks.await(t);
  }

  readEntity(kind: string, id: string): Promise<Json | undefined> {
    return this.#entities.read(kind, id);
  }

  applyWrites(c: LiveCommand, out: ClosedCtx): void {
    if (out.dataSet) {
      c.setData(out.data ?? null);
      this.touch(c);
    }
    this.#entities.write(out.writes);
  }

  /** Every task of a settled command was cleared: record it, then let the command go. */
  allCleared(c: LiveCommand): void {
    this.#endings.allCleared(c);
  }

  recordUndo(c: LiveCommand, name: string, data: Json | null): void {
    const u = new LiveUndo(
      c,
      c.undoCount,
      c.nextJournalSeq(),
      c.stage,
      name,
      data,
      'recorded',
      null,
      false,
    );
    (c.undo ??= []).push(u);
    this.committer.undo(u);
    this.touch(c);
  }

  handlerStarted(): void {
    this.#handlers++;
  }

  handlerEnded(): void {
    if (--this.#handlers === 0) for (const fn of this.#idle.splice(0)) fn();
  }

  /** Resolves when no handler is running. */
  idle(): Promise<void> {
    return this.#handlers === 0
      ? Promise.resolve()
      : new Promise((resolve) => this.#idle.push(resolve));
  }
}
