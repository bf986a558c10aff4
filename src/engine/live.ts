/**
 * The live (in-memory) form of commands, tasks and undo steps. The engine's state machine runs
 * on these objects; the store receives snapshots of them in ordered batches.
 *
 * Objects are plain classes with every field set in the constructor, so that V8 gives all
 * instances one shape and an in-flight command stays well under 2 KiB.
 *
 * Who writes what: the stored state changes only through the methods below, each one step of
 * the command's life (a status change goes through its transition table, `assertTransition`;
 * a retry, a stage completed, an end). The coordinator and the handler runner call them and mark
 * the command dirty; the committer alone writes the commit bookkeeping (`dirty`, `queuedGroup`,
 * `dirtyTasks`, ...), the coordinator alone the scheduling fields (`queued`, `busy`, timers).
 * Recovery builds a command from its row with {@link LiveCommand.restore}.
 *
 * @module
 */
import type { ChildMode, CommandType, FailurePolicy } from '../core/command-type.js';
import type { ErrorInfo } from '../core/errors.js';
import type { TimerHandle } from '../core/clock.js';
import type { Span } from '@opentelemetry/api';
import {
  assertTransition,
  isTerminal,
  type CommandStatus,
  type CompensationStatus,
} from '../core/states.js';
import type { CommandRecord } from '../core/records.js';
import type { CommandUpdate } from '../store/port.js';

/**
 * Marks parameters that could not be loaded: the command is held (see `unloadable.ts`), and
 * once a cancel ends it, a handler reading its parameters fails.
 */
export const BROKEN_PARAMS: unique symbol = Symbol('coco.brokenParams');

export { ChildState, LiveTask, LiveUndo } from './live-entries.js';
import type { ChildState, LiveTask, LiveUndo } from './live-entries.js';

/** The fixed identity of a live command (what never changes after creation). */
export interface LiveCommandInit {
  readonly id: number;
  readonly type: CommandType;
  readonly paramsVersion: number;
  readonly rawParams: unknown;
  readonly params: unknown;
  readonly parentId: number | null;
  readonly rootId: number;
  readonly seq: number | null;
  readonly originStage: number | null;
  readonly childMode: ChildMode;
  readonly failurePolicy: FailurePolicy;
  readonly idempotencyKey: string | null;
  readonly createdAt: number;
  /** Already stored (loaded from the store) rather than new. */
  readonly persisted: boolean;
}

/**
 * The fields of a command that most commands never set (errors, a result, scratch data, a
 * retry, deadlines, the admission queue, tracing, timers, undo steps), kept apart: a
 * {@link LiveCommand} makes its one on the first such value. Each field is 8 bytes per command
 * (V8 without pointer compression, as Node ships it): apart, they took a fan-out tree's live
 * command from 424 to 296 bytes, which every scavenge of a round's trees copies.
 */
class RareFields {
  error: ErrorInfo | null = null;
  result: unknown = null;
  compensationError: ErrorInfo | null = null;
  data: unknown = null;
  nextAttemptAt: number | null = null;
  lastError: ErrorInfo | null = null;
  deadlineAt: number | null = null;
  queuedSince: number | null = null;
  undo: LiveUndo[] | null = null;
  firstWorkError: ErrorInfo | null = null;
  span: Span | null = null;
  traceContext: string | null = null;
  loadError: ErrorInfo | null = null;
  dirtyUndo: LiveUndo[] | null = null;
  timer: TimerHandle | null = null;
  lifetimeTimer: TimerHandle | null = null;
  abort: AbortController | null = null;
}

/**
 * What a batch that writes a command's row gives it (batch.ts): `persisted` is true once the
 * batch was sent to the store and turns false if the batch failed (its rows are then written
 * again). See {@link LiveCommand.noteWrite}.
 */
export interface WriteReceipt {
  readonly persisted: boolean;
}

/**
 * The part of {@link LiveCommand}'s row key its status and compensation make (1–31: never 0,
 * "no key"). A switch, not a table: a keyed load with seven names goes megamorphic.
 */
function statusKey(status: CommandStatus, compensation: CompensationStatus): number {
  let k: number;
  switch (status) {
    case 'pending':
      k = 1;
      break;
    case 'waiting':
      k = 2;
      break;
    case 'aborting':
      k = 3;
      break;
    case 'compensating':
      k = 4;
      break;
    case 'succeeded':
      k = 5;
      break;
    case 'failed':
      k = 6;
      break;
    default:
      k = 7;
  }
  switch (compensation) {
    case 'none':
      return k;
    case 'compensating':
      return k + 8;
    case 'compensated':
      return k + 16;
    default:
      return k + 24;
  }
}

/** Where the row key of the last written row sits in a command's flags (6 bits). */
const WRITTEN_SHIFT = 13;
const WRITTEN_MASK = 63 << WRITTEN_SHIFT;

/** The tasks of every command that has none yet (never written: see LiveCommand.tasks). */
const NO_TASKS: readonly LiveTask[] = Object.freeze([]);

/** A command as the engine tracks it while it has work left. */
export class LiveCommand {
  // -- stored state (see CommandRecord for meanings) --
  status: CommandStatus;
  expectedTasks: number;
  expectedChildren: number;
  journalSeq: number;
  stage: number;
  compensation: CompensationStatus;
  attempts: number;
  /** Admission priority of its tasks (see CommandRecord.priority). */
  priority: number;
  updatedAt: number;
  endedAt: number | null;

  /**
   * Its tasks, by ordinal. Starts as a shared empty array and becomes a one-slot literal on the
   * first task (see {@link addTask}): V8 gives an array grown by `push` from empty room for 17
   * entries, ~150 bytes per command that has one task.
   */
  tasks: readonly LiveTask[] = NO_TASKS;
  /** Children in creation order (null when the command has none, to save memory). */
  children: ChildState[] | null = null;

  // -- derived counters, kept in step with the entries --
  /** Work tasks not ended. */
  openTasks = 0;
  /** Undo tasks not ended. */
  openUndoTasks = 0;
  /** Children not ended. */
  openChildren = 0;
  /** Work tasks and children that ended other than succeeded. */
  failedWork = 0;
  /**
   * `performance.now()` when a task of it last ended here; null: none yet. A tagged field (null,
   * then a number), not a double one: a double field holds a box of its own in every command
   * from the start (16 bytes and an object per command for the scavenges to copy: a restart's
   * million), a tagged one only once a task has ended. Never a small integer first: its first
   * reading would change the map of every command (a cold start's deoptimizations).
   */
  #lastTaskEndAt: number | null = null;

  // -- engine bookkeeping --
  /** Tasks of this command waiting for the next batch: the first alone, a list from the second on. */
  dirtyTasks: LiveTask | LiveTask[] | null = null;

  /** The fields most commands never set (see {@link RareFields}); null until one is. */
  #rare: RareFields | null = null;

  /**
   * The receipt of the batch that last wrote this command's row, when that row's key (see
   * {@link LiveCommand.noteWrite}) was kept in the flags; else null.
   */
  #writtenBy: WriteReceipt | null = null;

  #more(): RareFields {
    return (this.#rare ??= new RareFields());
  }

  // -- the rarely set fields, stored state (see CommandRecord for meanings) --
  get error(): ErrorInfo | null {
    return this.#rare === null ? null : this.#rare.error;
  }
  set error(v: ErrorInfo | null) {
    if (v !== null || this.#rare !== null) this.#more().error = v;
  }
  get result(): unknown {
    return this.#rare === null ? null : this.#rare.result;
  }
  set result(v: unknown) {
    if (v !== null || this.#rare !== null) this.#more().result = v;
  }
  get compensationError(): ErrorInfo | null {
    return this.#rare === null ? null : this.#rare.compensationError;
  }
  set compensationError(v: ErrorInfo | null) {
    if (v !== null || this.#rare !== null) this.#more().compensationError = v;
  }
  get data(): unknown {
    return this.#rare === null ? null : this.#rare.data;
  }
  set data(v: unknown) {
    if (v !== null || this.#rare !== null) this.#more().data = v;
  }
  get nextAttemptAt(): number | null {
    return this.#rare === null ? null : this.#rare.nextAttemptAt;
  }
  set nextAttemptAt(v: number | null) {
    if (v !== null || this.#rare !== null) this.#more().nextAttemptAt = v;
  }
  get lastError(): ErrorInfo | null {
    return this.#rare === null ? null : this.#rare.lastError;
  }
  set lastError(v: ErrorInfo | null) {
    if (v !== null || this.#rare !== null) this.#more().lastError = v;
  }
  get deadlineAt(): number | null {
    return this.#rare === null ? null : this.#rare.deadlineAt;
  }
  set deadlineAt(v: number | null) {
    if (v !== null || this.#rare !== null) this.#more().deadlineAt = v;
  }
  /** A root waiting for admission since then (see CommandRecord.queuedSince). */
  get queuedSince(): number | null {
    return this.#rare === null ? null : this.#rare.queuedSince;
  }
  set queuedSince(v: number | null) {
    if (v !== null || this.#rare !== null) this.#more().queuedSince = v;
  }
  /** Its stored trace context (`traceparent` of its first span; see CommandRecord). */
  get traceContext(): string | null {
    return this.#rare === null ? null : this.#rare.traceContext;
  }
  set traceContext(v: string | null) {
    if (v !== null || this.#rare !== null) this.#more().traceContext = v;
  }

  // -- the rarely set fields, memory only --
  /** Undo steps in registration order (null when it has none). */
  get undo(): LiveUndo[] | null {
    return this.#rare === null ? null : this.#rare.undo;
  }
  set undo(v: LiveUndo[] | null) {
    if (v !== null || this.#rare !== null) this.#more().undo = v;
  }
  /** The first failure among its work tasks and children (why the stage failed). */
  get firstWorkError(): ErrorInfo | null {
    return this.#rare === null ? null : this.#rare.firstWorkError;
  }
  set firstWorkError(v: ErrorInfo | null) {
    if (v !== null || this.#rare !== null) this.#more().firstWorkError = v;
  }
  /** The command's span while a tracer records it here (tracing.ts), else null. */
  get span(): Span | null {
    return this.#rare === null ? null : this.#rare.span;
  }
  set span(v: Span | null) {
    if (v !== null || this.#rare !== null) this.#more().span = v;
  }
  /** Why its type or parameters could not be loaded (null: loaded whole). */
  get loadError(): ErrorInfo | null {
    return this.#rare === null ? null : this.#rare.loadError;
  }
  set loadError(v: ErrorInfo | null) {
    if (v !== null || this.#rare !== null) this.#more().loadError = v;
  }
  /** Undo steps of this command waiting for the next batch. */
  get dirtyUndo(): LiveUndo[] | null {
    return this.#rare === null ? null : this.#rare.dirtyUndo;
  }
  set dirtyUndo(v: LiveUndo[] | null) {
    if (v !== null || this.#rare !== null) this.#more().dirtyUndo = v;
  }
  /** Retry / wait timer. */
  get timer(): TimerHandle | null {
    return this.#rare === null ? null : this.#rare.timer;
  }
  set timer(v: TimerHandle | null) {
    if (v !== null || this.#rare !== null) this.#more().timer = v;
  }
  /** Lifetime (timeout) timer. */
  get lifetimeTimer(): TimerHandle | null {
    return this.#rare === null ? null : this.#rare.lifetimeTimer;
  }
  set lifetimeTimer(v: TimerHandle | null) {
    if (v !== null || this.#rare !== null) this.#more().lifetimeTimer = v;
  }
  get abort(): AbortController | null {
    return this.#rare === null ? null : this.#rare.abort;
  }
  set abort(v: AbortController | null) {
    if (v !== null || this.#rare !== null) this.#more().abort = v;
  }

  // -- flags: one small integer instead of a field each (8 bytes per field per command, with
  // 100,000s of commands in flight; see bench/memory.ts); bits 13–18: the row key of its last
  // written row (WRITTEN_SHIFT) --
  #flags = 0;

  /** Stored: its current stage has run (see CommandRecord). */
  get stageDone(): boolean {
    return (this.#flags & 1) !== 0;
  }
  set stageDone(on: boolean) {
    this.#flags = on ? this.#flags | 1 : this.#flags & ~1;
  }

  /** Stored: a serial command has started its last child (see CommandRecord). */
  get chainDone(): boolean {
    return (this.#flags & 2) !== 0;
  }
  set chainDone(on: boolean) {
    this.#flags = on ? this.#flags | 2 : this.#flags & ~2;
  }

  /** Stored: a cancel was asked for (see CommandRecord). */
  get cancelRequested(): boolean {
    return (this.#flags & 4) !== 0;
  }
  set cancelRequested(on: boolean) {
    this.#flags = on ? this.#flags | 4 : this.#flags & ~4;
  }

  /** Stored: every task of it was cleared on its agent (see CommandRecord). */
  get tasksCleared(): boolean {
    return (this.#flags & 8) !== 0;
  }
  set tasksCleared(on: boolean) {
    this.#flags = on ? this.#flags | 8 : this.#flags & ~8;
  }

  /** A root holding a slot of the root limits (engine/root-admission.ts); memory only. */
  get rootSlot(): boolean {
    return (this.#flags & 16) !== 0;
  }
  set rootSlot(on: boolean) {
    this.#flags = on ? this.#flags | 16 : this.#flags & ~16;
  }

  /**
   * Left untouched because it could not be loaded: no handler runs and none of its tasks is
   * started, stopped, polled or cleared, until a cancel ends it (`Coordinator.endHeld`).
   */
  get held(): boolean {
    return (this.#flags & 32) !== 0;
  }
  set held(on: boolean) {
    this.#flags = on ? this.#flags | 32 : this.#flags & ~32;
  }

  /** Its row is stored (inserted, or loaded from the store). */
  get persisted(): boolean {
    return (this.#flags & 64) !== 0;
  }
  set persisted(on: boolean) {
    this.#flags = on ? this.#flags | 64 : this.#flags & ~64;
  }

  /** Changed since its last batch (the committer writes it with the next). */
  get dirty(): boolean {
    return (this.#flags & 128) !== 0;
  }
  set dirty(on: boolean) {
    this.#flags = on ? this.#flags | 128 : this.#flags & ~128;
  }

  /** Queued for the narrow "tasks cleared" write only (see Committer.settled). */
  get settledOnly(): boolean {
    return (this.#flags & 256) !== 0;
  }
  set settledOnly(on: boolean) {
    this.#flags = on ? this.#flags | 256 : this.#flags & ~256;
  }

  /** This command's group is in the committer's queue (see Committer). */
  get queuedGroup(): boolean {
    return (this.#flags & 512) !== 0;
  }
  set queuedGroup(on: boolean) {
    this.#flags = on ? this.#flags | 512 : this.#flags & ~512;
  }

  /** Parameters were upgraded on load and must be rewritten at the current version. */
  get paramsDirty(): boolean {
    return (this.#flags & 1024) !== 0;
  }
  set paramsDirty(on: boolean) {
    this.#flags = on ? this.#flags | 1024 : this.#flags & ~1024;
  }

  /** A handler (or an async step) is running for this command. */
  get busy(): boolean {
    return (this.#flags & 2048) !== 0;
  }
  set busy(on: boolean) {
    this.#flags = on ? this.#flags | 2048 : this.#flags & ~2048;
  }

  /** In the scheduler's ready queue. */
  get queued(): boolean {
    return (this.#flags & 4096) !== 0;
  }
  set queued(on: boolean) {
    this.#flags = on ? this.#flags | 4096 : this.#flags & ~4096;
  }

  readonly id: number;
  readonly type: CommandType;
  paramsVersion: number;
  /**
   * The parameters as stored (written with its insert, or with an upgrade on load). Null for a
   * command loaded whole from the store with parameters that need no upgrade: nothing writes
   * them again (recovery.ts).
   */
  rawParams: unknown;
  /** Parsed parameters, or {@link BROKEN_PARAMS}. */
  params: unknown;
  readonly parentId: number | null;
  readonly rootId: number;
  readonly seq: number | null;
  readonly originStage: number | null;
  readonly childMode: ChildMode;
  readonly failurePolicy: FailurePolicy;
  readonly idempotencyKey: string | null;
  readonly createdAt: number;
  constructor(init: LiveCommandInit) {
    this.id = init.id;
    this.type = init.type;
    this.paramsVersion = init.paramsVersion;
    this.rawParams = init.rawParams;
    this.params = init.params;
    this.parentId = init.parentId;
    this.rootId = init.rootId;
    this.seq = init.seq;
    this.originStage = init.originStage;
    this.childMode = init.childMode;
    this.failurePolicy = init.failurePolicy;
    this.idempotencyKey = init.idempotencyKey;
    this.createdAt = init.createdAt;
    this.persisted = init.persisted;
    this.status = 'pending';
    this.expectedTasks = 0;
    this.expectedChildren = 0;
    this.journalSeq = 0;
    this.stage = 0;
    this.compensation = 'none';
    this.attempts = 0;
    this.priority = 0;
    this.updatedAt = init.createdAt;
    this.endedAt = null;
  }

  /** `performance.now()` when a task of it last ended here, -1 when none did; metrics. */
  get lastTaskEndAt(): number {
    return this.#lastTaskEndAt ?? -1;
  }

  get terminal(): boolean {
    return isTerminal(this.status);
  }

  // -- the stored state's changes (the caller marks the command dirty) --

  /** Moves to `to` along the command table (`ILLEGAL_TRANSITION` otherwise). */
  setStatus(to: CommandStatus, now: number): void {
    assertTransition('command', this.status, to, `command ${this.id}`);
    this.status = to;
    this.updatedAt = now;
  }

  /** Moves the compensation to `to` along its table, with the error that stopped it (if any). */
  setCompensation(to: CompensationStatus, error: ErrorInfo | null, now: number): void {
    assertTransition('compensation', this.compensation, to, `command ${this.id}`);
    this.compensation = to;
    this.compensationError = error;
    this.updatedAt = now;
  }

  /** The handler due succeeded or is no longer due: no attempt counted, none scheduled. */
  resetAttempts(): void {
    this.attempts = 0;
    this.nextAttemptAt = null;
    this.lastError = null;
  }

  /** A handler attempt failed with `error`; the next one is due at `at` (null: none). */
  attemptFailed(error: ErrorInfo, at: number | null): void {
    this.attempts++;
    this.lastError = error;
    this.nextAttemptAt = at;
  }

  /** A handler failed for good: its error is kept, no attempt is counted or due any more. */
  gaveUp(error: ErrorInfo): void {
    this.attempts = 0;
    this.nextAttemptAt = null;
    this.lastError = error;
  }

  /** The current stage's handler completed; a serial stage that created no work ends the chain. */
  stageCompleted(createdWork: number): void {
    this.stageDone = true;
    this.resetAttempts();
    if (this.childMode === 'serial' && createdWork === 0) this.chainDone = true;
  }

  /** Opens the next stage of a serial command. */
  nextStage(): void {
    this.stage++;
    this.stageDone = false;
    this.resetAttempts();
  }

  /** Failure or cancellation decided: the command aborts with `error` (kept if it had one). */
  abortWith(error: ErrorInfo, now: number): void {
    this.setStatus('aborting', now);
    this.error = error;
    this.attempts = 0;
    this.nextAttemptAt = null;
  }

  /** Records the outcome: the final status, when it ended, and no handler left due. */
  end(status: 'succeeded' | 'failed' | 'cancelled', now: number): void {
    this.setStatus(status, now);
    this.endedAt = now;
    this.attempts = 0;
    this.nextAttemptAt = null;
  }

  /** Raises the declared counts (a minimum, never lowered); returns whether they changed. */
  expect(tasks: number, children: number): boolean {
    const t = Math.max(this.expectedTasks, tasks);
    const ch = Math.max(this.expectedChildren, children);
    if (t === this.expectedTasks && ch === this.expectedChildren) return false;
    this.expectedTasks = t;
    this.expectedChildren = ch;
    return true;
  }

  /** The command's scratch state, as a handler set it. */
  setData(data: unknown): void {
    this.data = data;
  }

  /** The result `onSuccess` returned (stored with the command's end). */
  setResult(result: unknown): void {
    this.result = result;
  }

  /** Takes the next position in the journal (children and undo steps share it). */
  nextJournalSeq(): number {
    return this.journalSeq++;
  }

  /**
   * Sets the stored state from a row (recovery): the one writer that does not go through the
   * transitions, since the row is where the command already is.
   */
  restore(r: CommandRecord): void {
    this.status = r.status;
    this.expectedTasks = r.expectedTasks;
    this.expectedChildren = r.expectedChildren;
    this.journalSeq = r.journalSeq;
    this.stage = r.stage;
    this.stageDone = r.stageDone;
    this.chainDone = r.chainDone;
    this.cancelRequested = r.cancelRequested;
    this.error = r.error;
    this.result = r.result;
    this.compensation = r.compensation;
    this.compensationError = r.compensationError;
    this.data = r.data;
    this.attempts = r.attempts;
    this.nextAttemptAt = r.nextAttemptAt;
    this.lastError = r.lastError;
    this.deadlineAt = r.deadlineAt;
    this.priority = r.priority;
    this.queuedSince = r.queuedSince;
    this.updatedAt = r.updatedAt;
    this.endedAt = r.endedAt;
    this.tasksCleared = r.tasksCleared;
    this.traceContext = r.traceContext ?? null;
  }

  get broken(): boolean {
    return this.params === BROKEN_PARAMS;
  }

  get childCount(): number {
    return this.children?.length ?? 0;
  }

  get undoCount(): number {
    return this.undo?.length ?? 0;
  }

  /** Number of work tasks (undo tasks excluded). */
  workTaskCount(): number {
    let n = 0;
    const tasks = this.tasks;
    for (let i = 0; i < tasks.length; i++) if (tasks[i]!.origin >= 0) n++;
    return n;
  }

  /** The command has ended and nothing more will happen to it (compensation included). */
  get settled(): boolean {
    return this.terminal && this.compensation !== 'compensating';
  }

  /** Adds a child's state, keeping counters in step. */
  addChild(child: ChildState): void {
    (this.children ??= []).push(child);
    if (!child.ended) this.openChildren++;
    else if (child.status !== 'succeeded') this.noteFailure(child.error);
  }

  /** Adds a task, keeping counters in step. */
  addTask(task: LiveTask): void {
    if (this.tasks.length === 0) this.tasks = [task];
    else (this.tasks as LiveTask[]).push(task);
    if (task.ended) {
      if (task.isWork && task.status !== 'succeeded') this.noteFailure(task.error);
    } else if (task.isWork) this.openTasks++;
    else this.openUndoTasks++;
  }

  /** Records that a task of this command ended (at `now`). */
  taskEnded(task: LiveTask, now: number): void {
    this.updatedAt = now;
    this.#lastTaskEndAt = performance.now();
    if (task.isWork) {
      this.openTasks--;
      if (task.status !== 'succeeded') this.noteFailure(task.error);
    } else this.openUndoTasks--;
  }

  /** Records that a child ended (its state object was already updated). */
  childEnded(child: ChildState): void {
    this.openChildren--;
    if (child.status !== 'succeeded') this.noteFailure(child.error);
  }

  private noteFailure(error: ErrorInfo | null): void {
    this.failedWork++;
    this.firstWorkError ??= error;
  }

  /** Whether the command's row is "active" in the store's sense. */
  get active(): boolean {
    return !this.terminal || !this.tasksCleared || this.compensation === 'compensating';
  }

  /**
   * The key of the columns a state-only update leaves alone: its status, compensation and
   * cleared tasks, while it has no error, no result and no end (0 otherwise: no key, never
   * written state-only). Two equal keys mean those columns hold the same values.
   */
  #rowKey(): number {
    if (this.endedAt !== null || this.error !== null || this.result !== null) return 0;
    return statusKey(this.status, this.compensation) + (this.tasksCleared ? 32 : 0);
  }

  /**
   * Notes that its row is being written with its current values by the batch of `receipt` (an
   * insert or an update of it; null: a write that leaves its row's key unknown, a narrow "tasks
   * cleared" write — its next update is then written whole). Returns whether this write may be
   * its bookkeeping and `updatedAt` alone (`CommandUpdate.stateOnly`): the batch that last wrote
   * its row was sent and has not failed — so the store holds that row, or fails every batch after
   * it — and that row's status, compensation, cleared tasks, error, result and end (none) are the
   * command's now.
   */
  noteWrite(receipt: WriteReceipt | null): boolean {
    const key = receipt === null ? 0 : this.#rowKey();
    const by = this.#writtenBy;
    const flags = this.#flags;
    const stateOnly =
      key !== 0 && by !== null && by.persisted && key === (flags & WRITTEN_MASK) >>> WRITTEN_SHIFT;
    this.#flags = (flags & ~WRITTEN_MASK) | (key << WRITTEN_SHIFT);
    this.#writtenBy = key === 0 ? null : receipt;
    return stateOnly;
  }

  toRecord(): CommandRecord {
    // Written out (no spread of toUpdate()): this runs for every command in every batch.
    return {
      id: this.id,
      type: this.type.name,
      paramsVersion: this.paramsVersion,
      params: this.rawParams,
      status: this.status,
      parentId: this.parentId,
      rootId: this.rootId,
      seq: this.seq,
      originStage: this.originStage,
      childMode: this.childMode,
      failurePolicy: this.failurePolicy,
      expectedTasks: this.expectedTasks,
      expectedChildren: this.expectedChildren,
      taskCount: this.tasks.length,
      childCount: this.childCount,
      undoCount: this.undoCount,
      journalSeq: this.journalSeq,
      stage: this.stage,
      stageDone: this.stageDone,
      chainDone: this.chainDone,
      cancelRequested: this.cancelRequested,
      error: this.error,
      result: this.result,
      compensation: this.compensation,
      compensationError: this.compensationError,
      data: this.data,
      attempts: this.attempts,
      nextAttemptAt: this.nextAttemptAt,
      lastError: this.lastError,
      deadlineAt: this.deadlineAt,
      priority: this.priority,
      queuedSince: this.queuedSince,
      idempotencyKey: this.idempotencyKey,
      createdAt: this.createdAt,
      updatedAt: this.updatedAt,
      endedAt: this.endedAt,
      tasksCleared: this.tasksCleared,
      owner: null,
      leaseUntil: null,
      traceContext: this.traceContext,
    };
  }

  /** Its update; `stateOnly` as {@link LiveCommand.noteWrite} said (the batch's to decide). */
  toUpdate(stateOnly = false): CommandUpdate {
    return {
      id: this.id,
      status: this.status,
      expectedTasks: this.expectedTasks,
      expectedChildren: this.expectedChildren,
      taskCount: this.tasks.length,
      childCount: this.childCount,
      undoCount: this.undoCount,
      journalSeq: this.journalSeq,
      stage: this.stage,
      stageDone: this.stageDone,
      chainDone: this.chainDone,
      cancelRequested: this.cancelRequested,
      error: this.error,
      result: this.result,
      compensation: this.compensation,
      compensationError: this.compensationError,
      data: this.data,
      attempts: this.attempts,
      nextAttemptAt: this.nextAttemptAt,
      lastError: this.lastError,
      deadlineAt: this.deadlineAt,
      priority: this.priority,
      queuedSince: this.queuedSince,
      updatedAt: this.updatedAt,
      endedAt: this.endedAt,
      tasksCleared: this.tasksCleared,
      owner: null,
      leaseUntil: null,
      stateOnly,
    };
  }
}
