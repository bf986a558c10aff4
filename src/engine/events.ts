/**
 * Engine events: what observers (the job monitor, the HTTP API, tests) can follow without the
 * engine knowing them. `committed` carries each batch after it is durable, so an observer never
 * sees a state the store does not hold.
 *
 * @module
 */
import { Emitter } from '../core/emitter.js';
import type { AgentInfo } from '../brokers/port.js';
import type { ErrorInfo } from '../core/errors.js';
import type { CommandStatus } from '../core/states.js';
import type { ChangeBatch, PausedType } from '../store/port.js';

/**
 * A command whose end is durable (the `ended` event). The engine hands its live object, seen
 * through this read-only view: read it in the listener, do not keep it.
 */
export interface EndedCommand {
  readonly id: number;
  readonly type: { readonly name: string };
  readonly parentId: number | null;
  readonly rootId: number;
  readonly status: CommandStatus;
  /** When it was created (submit, or its parent's stage), on the engine's clock. */
  readonly createdAt: number;
  /** When it ended, on the engine's clock. */
  readonly endedAt: number | null;
  /**
   * `performance.now()` when this engine learned that the command's last task ended, or -1 when
   * no task of it ended in this process (none, or they ended before a restart).
   */
  readonly lastTaskEndAt: number;
}

/** One call of the engine to an agent (the `agent-call` event). */
export interface AgentCallEvent {
  readonly agentId: string;
  /** The broker method: `startTasks`, `getStatuses`, `stopTasks`, `clearTasks`, `listTasks`. */
  readonly call: string;
  /** `ok`, `timeout` (no answer within the call timeout) or `error`. */
  readonly outcome: 'ok' | 'timeout' | 'error';
  /** Milliseconds from the call to its answer (or its failure). */
  readonly ms: number;
}

/** A batch the store applied (the `batch` event). */
export interface BatchEvent {
  /** Command, task and undo rows written. */
  readonly rows: number;
  /** Milliseconds from the flush to the store's answer (queueing behind earlier batches included). */
  readonly applyMs: number;
}

/** Events and their payloads. */
export interface EngineEventMap {
  /**
   * A batch of changes is durable. A root with an idempotency key that a shared store stored on
   * its own (`SharedStore.insertKeyedRoot`) comes as a batch of its own, its one insert.
   */
  committed: ChangeBatch;
  /** The size and apply time of each durable batch (metrics). */
  batch: BatchEvent;
  /** A command's end is durable (its outcome is stored). */
  ended: EndedCommand;
  /** The engine called an agent (metrics). */
  'agent-call': AgentCallEvent;
  /** An agent reported progress of a running task (not stored by the engine). */
  progress: {
    readonly commandId: number;
    readonly ordinal: number;
    readonly taskId: string;
    readonly progress: number;
  };
  /**
   * A task took a slot of its agent's limit (engine/admission.ts), at its creation or after
   * waiting `queued` for `waitedMs`: the hook for queue wait-time metrics (queue depth per agent
   * and verb: `Engine.admissionStats()`). Emitted only for agents with a limit.
   */
  admitted: {
    readonly commandId: number;
    readonly ordinal: number;
    readonly agentId: string;
    readonly verb: string;
    readonly waitedMs: number;
  };
  /**
   * Every task of an ended command was cleared on its agent, and the store holds that (the
   * engine is done with the command).
   */
  cleared: { readonly commandId: number };
  /**
   * Retention (`Engine.prune`, not a dry run) deleted these trees: their commands can no
   * longer be read (the API drops what it kept of them).
   */
  pruned: { readonly rootIds: readonly number[] };
  /**
   * A stored row could not be read, or a command could not be loaded (unknown type, newer
   * version, parameters that do not load). It is left untouched — held until a cancel ends it,
   * or not loaded at all when a row of it cannot be read — unless it had ended or a cancel had
   * asked for its end: then it goes on ending with what its stored data allows.
   */
  'load-failed': { readonly commandId: number | null; readonly error: ErrorInfo };
  /**
   * A handler's run passed its time limit (`handlerTimeoutMs`): it counts as failed
   * (`HANDLER_TIMEOUT`). `phase`: `stage`, `success` (onSuccess), `undo` or `failure` (onFailure).
   */
  'handler-timeout': {
    readonly commandId: number;
    readonly type: string;
    readonly phase: 'stage' | 'success' | 'undo' | 'failure';
    readonly limitMs: number;
  };
  /**
   * The store refused the changes of these trees on their own: they are marked held and the
   * engine halts (`TREE_REFUSED`; the `halted` event follows).
   */
  'trees-refused': { readonly rootIds: readonly number[]; readonly error: ErrorInfo };
  /**
   * A command type was paused (by this node, or seen paused in a shared store): its new roots
   * wait until it is resumed (engine/pauses.ts).
   */
  'type-paused': PausedType;
  /** A paused command type was resumed: the pause that ended. */
  'type-resumed': PausedType;
  /** The broker learned something about an agent (answered, stopped answering, restarted). */
  'agent-info': AgentInfo;
  /** An agent went down or came back. */
  agent: {
    readonly agentId: string;
    readonly up: boolean;
    readonly error: ErrorInfo | null;
    readonly failures: number;
  };
  /**
   * The store went out or came back (`Engine.storeOutage`): out (`up` false) once it has taken
   * no write for the tuning `storeOutageMs`, with how long and its latest failure (null: no
   * answer); back at the commit that ends that, with how long it lasted.
   */
  store: { readonly up: boolean; readonly forMs: number; readonly error: ErrorInfo | null };
  /** Something failed inside the engine and is being retried (store commit, internal step). */
  error: { readonly error: ErrorInfo; readonly context: string };
  /**
   * This node took over command trees of a node that left (shared store): they run here from
   * now on. The root ids; their commands were loaded from the store, not created here.
   */
  claimed: { readonly rootIds: readonly number[] };
  /**
   * The engine stopped by itself, its memory no longer the truth: its lease on a shared store was
   * lost to another node (`LEASE_LOST`), or a batch was refused for an idempotency key another
   * node took meanwhile (`IDEMPOTENCY_KEY_TAKEN`).
   */
  halted: { readonly error: ErrorInfo };
}

/** Name of an engine event. */
export type EngineEventName = keyof EngineEventMap;

/** The engine's emitter. */
export class EngineEvents extends Emitter<EngineEventMap> {}
