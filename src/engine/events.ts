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
import type { ChangeBatch } from '../store/port.js';

/** Events and their payloads. */
export interface EngineEventMap {
  /** A batch of changes is durable. */
  committed: ChangeBatch;
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
   * A stored row could not be read, or a command could not be loaded (unknown type, newer
   * version, parameters that do not load). It is left untouched — held until a cancel ends it,
   * or not loaded at all when a row of it cannot be read — unless it had ended or a cancel had
   * asked for its end: then it goes on ending with what its stored data allows.
   */
  'load-failed': { readonly commandId: number | null; readonly error: ErrorInfo };
  /** The broker learned something about an agent (answered, stopped answering, restarted). */
  'agent-info': AgentInfo;
  /** An agent went down or came back. */
  agent: {
    readonly agentId: string;
    readonly up: boolean;
    readonly error: ErrorInfo | null;
    readonly failures: number;
  };
  /** Something failed inside the engine and is being retried (store commit, internal step). */
  error: { readonly error: ErrorInfo; readonly context: string };
  /**
   * This node took over command trees of a node that left (shared store): they run here from
   * now on. The root ids; their commands were loaded from the store, not created here.
   */
  claimed: { readonly rootIds: readonly number[] };
  /** The engine stopped by itself: its lease on a shared store was lost to another node. */
  halted: { readonly error: ErrorInfo };
}

/** Name of an engine event. */
export type EngineEventName = keyof EngineEventMap;

/** The engine's emitter. */
export class EngineEvents extends Emitter<EngineEventMap> {}
