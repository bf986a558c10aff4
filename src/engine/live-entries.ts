/**
 * The entries a live command owns: its tasks, its undo steps, and the states of its children
 * as the parent tracks them.
 *
 * @module
 */
import type { Json } from '../core/command-type.js';
import { ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { TimerHandle } from '../core/clock.js';
import type { Span } from '@opentelemetry/api';
import {
  assertTransition,
  isTaskEnded,
  isTerminal,
  type CommandStatus,
  type CompensationStatus,
  type TaskStatus,
  type UndoStatus,
} from '../core/states.js';
import type { TaskRecord, UndoRecord } from '../core/records.js';
import type { TaskUpdate, UndoUpdate } from '../store/port.js';
import type { LiveCommand } from './live.js';

/** A child as its parent tracks it. */
export class ChildState {
  readonly id: number;
  readonly type: string;
  readonly seq: number;
  readonly originStage: number;
  status: CommandStatus;
  result: unknown;
  error: ErrorInfo | null;
  compensation: CompensationStatus;
  /** Why the child's compensation failed (when it did). */
  compensationError: ErrorInfo | null;
  constructor(
    id: number,
    type: string,
    seq: number,
    originStage: number,
    status: CommandStatus,
    result: unknown,
    error: ErrorInfo | null,
    compensation: CompensationStatus,
    compensationError: ErrorInfo | null = null,
  ) {
    this.id = id;
    this.type = type;
    this.seq = seq;
    this.originStage = originStage;
    this.status = status;
    this.result = result;
    this.error = error;
    this.compensation = compensation;
    this.compensationError = compensationError;
  }

  get ended(): boolean {
    return isTerminal(this.status);
  }

  /** Takes the child's outcome (its status, result, errors and compensation) as it is now. */
  mirror(child: {
    readonly status: CommandStatus;
    readonly result: unknown;
    readonly error: ErrorInfo | null;
    readonly compensation: CompensationStatus;
    readonly compensationError: ErrorInfo | null;
  }): void {
    this.status = child.status;
    this.result = child.result;
    this.error = child.error;
    this.compensation = child.compensation;
    this.compensationError = child.compensationError;
  }

  /** The child could not be compensated (it could not even be loaded): `error` says why. */
  compensationFailed(error: ErrorInfo): void {
    this.compensation = 'failed';
    this.compensationError = error;
  }
}

/**
 * The fields of a task that most tasks never set (a failure, a deadline and its timer, an
 * admission slot, a stop, an agent that lost it, progress, tracing), kept apart as
 * {@link LiveCommand}'s are: a {@link LiveTask} makes its one on the first such value (8 bytes
 * a field per task otherwise, for every task of every tree in flight).
 */
class RareTaskFields {
  error: ErrorInfo | null = null;
  deadlineAt: number | null = null;
  deadlineTimer: TimerHandle | null = null;
  onAgentDone: ((t: LiveTask) => void) | null = null;
  unknownSince: number | null = null;
  stopSentAt: number | null = null;
  progress = 0;
  span: Span | null = null;
}

/** The agentDone bit of LiveTask's flags. */
const AGENT_DONE = 64;

/** A task as the engine tracks it. */
export class LiveTask {
  /** The fields most tasks never set (see {@link RareTaskFields}); null until one is. */
  #rare: RareTaskFields | null = null;

  #more(): RareTaskFields {
    return (this.#rare ??= new RareTaskFields());
  }

  /**
   * Told once when {@link agentDone} turns true: the admission slot the task holds is free
   * (engine/admission.ts). Null when the task holds no slot.
   */
  get onAgentDone(): ((t: LiveTask) => void) | null {
    return this.#rare === null ? null : this.#rare.onAgentDone;
  }
  set onAgentDone(v: ((t: LiveTask) => void) | null) {
    if (v !== null || this.#rare !== null) this.#more().onAgentDone = v;
  }
  /** First time the agent said it does not know the task (vanish grace period). */
  get unknownSince(): number | null {
    return this.#rare === null ? null : this.#rare.unknownSince;
  }
  set unknownSince(v: number | null) {
    if (v !== null || this.#rare !== null) this.#more().unknownSince = v;
  }
  /** When the agent last acknowledged a stop of this task (null: none yet). */
  get stopSentAt(): number | null {
    return this.#rare === null ? null : this.#rare.stopSentAt;
  }
  set stopSentAt(v: number | null) {
    if (v !== null || this.#rare !== null) this.#more().stopSentAt = v;
  }
  get progress(): number {
    return this.#rare === null ? 0 : this.#rare.progress;
  }
  set progress(v: number) {
    if (v !== 0 || this.#rare !== null) this.#more().progress = v;
  }
  get deadlineTimer(): TimerHandle | null {
    return this.#rare === null ? null : this.#rare.deadlineTimer;
  }
  set deadlineTimer(v: TimerHandle | null) {
    if (v !== null || this.#rare !== null) this.#more().deadlineTimer = v;
  }
  /** The task's span while a tracer records it (tracing.ts), else null. */
  get span(): Span | null {
    return this.#rare === null ? null : this.#rare.span;
  }
  set span(v: Span | null) {
    if (v !== null || this.#rare !== null) this.#more().span = v;
  }
  get error(): ErrorInfo | null {
    return this.#rare === null ? null : this.#rare.error;
  }
  set error(v: ErrorInfo | null) {
    if (v !== null || this.#rare !== null) this.#more().error = v;
  }
  /**
   * When the task fails if it has not ended. A queued task's deadline counts from its admission:
   * while queued it holds `createdAt + deadlineMs`, moved on by {@link admit}.
   */
  get deadlineAt(): number | null {
    return this.#rare === null ? null : this.#rare.deadlineAt;
  }
  set deadlineAt(v: number | null) {
    if (v !== null || this.#rare !== null) this.#more().deadlineAt = v;
  }

  // -- flags: one small integer instead of a field each (see LiveCommand's); bit 64 is
  // agentDone, read and written through its accessor below --
  #flags = 0;

  /**
   * This process sent the task's start: an `unknown` may have been seen before the start arrived
   * (a relayed report is read late), so it starts the grace period instead of ending the task.
   */
  get startSent(): boolean {
    return (this.#flags & 1) !== 0;
  }
  set startSent(on: boolean) {
    this.#flags = on ? this.#flags | 1 : this.#flags & ~1;
  }

  /** Cleared on the agent (not stored per task; see CommandRecord.tasksCleared). */
  get cleared(): boolean {
    return (this.#flags & 2) !== 0;
  }
  set cleared(on: boolean) {
    this.#flags = on ? this.#flags | 2 : this.#flags & ~2;
  }

  /** Changed since its last batch (the committer writes it with the next). */
  get dirty(): boolean {
    return (this.#flags & 4) !== 0;
  }
  set dirty(on: boolean) {
    this.#flags = on ? this.#flags | 4 : this.#flags & ~4;
  }

  /** Started, with the write of `running` deferred (see Committer.taskStarted). */
  get lazy(): boolean {
    return (this.#flags & 8) !== 0;
  }
  set lazy(on: boolean) {
    this.#flags = on ? this.#flags | 8 : this.#flags & ~8;
  }

  /** Its row is stored (inserted, or loaded from the store). */
  get persisted(): boolean {
    return (this.#flags & 16) !== 0;
  }
  set persisted(on: boolean) {
    this.#flags = on ? this.#flags | 16 : this.#flags & ~16;
  }

  /** A stop was decided (cancel, fail-fast, deadline); resent after a restart until it ends. */
  get stopRequested(): boolean {
    return (this.#flags & 32) !== 0;
  }
  set stopRequested(on: boolean) {
    this.#flags = on ? this.#flags | 32 : this.#flags & ~32;
  }

  readonly command: LiveCommand;
  readonly ordinal: number;
  readonly origin: number;
  readonly agentId: string;
  readonly verb: string;
  readonly args: unknown;
  readonly agentTaskId: string;
  status: TaskStatus;
  result: unknown;
  readonly createdAt: number;
  endedAt: number | null;
  constructor(
    command: LiveCommand,
    ordinal: number,
    origin: number,
    agentId: string,
    verb: string,
    args: unknown,
    agentTaskId: string,
    status: TaskStatus,
    result: unknown,
    error: ErrorInfo | null,
    deadlineAt: number | null,
    stopRequested: boolean,
    createdAt: number,
    endedAt: number | null,
    persisted: boolean,
  ) {
    this.command = command;
    this.ordinal = ordinal;
    this.origin = origin;
    this.agentId = agentId;
    this.verb = verb;
    this.args = args;
    this.agentTaskId = agentTaskId;
    this.status = status;
    this.result = result;
    this.error = error;
    this.deadlineAt = deadlineAt;
    this.stopRequested = stopRequested;
    this.createdAt = createdAt;
    this.endedAt = endedAt;
    this.persisted = persisted;
    // A task stopped by the engine (deadline, cancel) may have ended in the engine's view only;
    // one that succeeded was reported so by its agent, stop or not.
    if (isTaskEnded(status) && (!stopRequested || status === 'succeeded'))
      this.#flags |= AGENT_DONE;
  }

  /** The agent reported the task ended (or it never existed there), so it may be cleared. */
  get agentDone(): boolean {
    return (this.#flags & AGENT_DONE) !== 0;
  }

  set agentDone(done: boolean) {
    const was = this.agentDone;
    this.#flags = done ? this.#flags | AGENT_DONE : this.#flags & ~AGENT_DONE;
    if (done && !was && this.onAgentDone !== null) {
      const release = this.onAgentDone;
      this.onAgentDone = null;
      release(this);
    }
  }

  /**
   * A queued task takes a slot of its agent: `queued` to `created` along the task table, its
   * deadline now counting from `now`.
   */
  admit(now: number): void {
    assertTransition('task', this.status, 'created', `task ${this.agentTaskId}`);
    this.status = 'created';
    if (this.deadlineAt !== null) this.deadlineAt = now + (this.deadlineAt - this.createdAt);
  }

  get ended(): boolean {
    return isTaskEnded(this.status);
  }

  /** The agent accepted the start: `created` to `running` along the task table. */
  markRunning(): void {
    assertTransition('task', this.status, 'running', `task ${this.agentTaskId}`);
    this.status = 'running';
  }

  /**
   * Ends the task along the task table, with its result (on success) or error (else; a default
   * one when the agent gave none), at `now`.
   */
  end(status: TaskStatus, result: unknown, error: ErrorInfo | null, now: number): void {
    assertTransition('task', this.status, status, `task ${this.agentTaskId}`);
    this.status = status;
    this.result = status === 'succeeded' ? (result ?? null) : null;
    this.error =
      status === 'succeeded'
        ? null
        : (error ??
          (status === 'cancelled'
            ? { code: ErrorCode.Cancelled, message: 'stopped' }
            : { code: ErrorCode.TaskFailed, message: 'failed without a reason' }));
    this.endedAt = now;
    this.deadlineTimer?.cancel();
    this.deadlineTimer = null;
  }

  /** Work tasks count toward stages; undo tasks belong to compensation. */
  get isWork(): boolean {
    return this.origin >= 0;
  }

  toRecord(): TaskRecord {
    return {
      commandId: this.command.id,
      ordinal: this.ordinal,
      origin: this.origin,
      agentId: this.agentId,
      verb: this.verb,
      args: this.args,
      status: this.status,
      result: this.result,
      error: this.error,
      deadlineAt: this.deadlineAt,
      stopRequested: this.stopRequested,
      createdAt: this.createdAt,
      endedAt: this.endedAt,
    };
  }

  toUpdate(): TaskUpdate {
    return {
      commandId: this.command.id,
      ordinal: this.ordinal,
      status: this.status,
      result: this.result,
      error: this.error,
      stopRequested: this.stopRequested,
      endedAt: this.endedAt,
      deadlineAt: this.deadlineAt,
    };
  }
}

/** An undo step as the engine tracks it. */
export class LiveUndo {
  dirty = false;
  persisted: boolean;
  readonly command: LiveCommand;
  readonly ordinal: number;
  readonly seq: number;
  readonly stage: number;
  readonly name: string;
  readonly data: Json | null;
  status: UndoStatus;
  error: ErrorInfo | null;
  constructor(
    command: LiveCommand,
    ordinal: number,
    seq: number,
    stage: number,
    name: string,
    data: Json | null,
    status: UndoStatus,
    error: ErrorInfo | null,
    persisted: boolean,
  ) {
    this.command = command;
    this.ordinal = ordinal;
    this.seq = seq;
    this.stage = stage;
    this.name = name;
    this.data = data;
    this.status = status;
    this.error = error;
    this.persisted = persisted;
  }

  /** The step ran for good: `done`, or `failed` with its error, along the undo table. */
  finish(status: 'done' | 'failed', error: ErrorInfo | null): void {
    assertTransition('undo', this.status, status, `undo step ${this.command.id}/${this.ordinal}`);
    this.status = status;
    this.error = error;
  }

  toRecord(): UndoRecord {
    return {
      commandId: this.command.id,
      ordinal: this.ordinal,
      seq: this.seq,
      stage: this.stage,
      name: this.name,
      data: this.data,
      status: this.status,
      error: this.error,
    };
  }

  toUpdate(): UndoUpdate {
    return {
      commandId: this.command.id,
      ordinal: this.ordinal,
      status: this.status,
      error: this.error,
    };
  }
}
