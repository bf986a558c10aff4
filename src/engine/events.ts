/**
 * Engine events: what observers (the job monitor, the HTTP API, tests) can follow without the
 * engine knowing them. `committed` carries each batch after it is durable, so an observer never
 * sees a state the store does not hold.
 *
 * @module
 */
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
  /** A stored command could not be loaded (newer version, unknown type, corrupt row); it is left untouched. */
  'load-failed': { readonly commandId: number | null; readonly error: ErrorInfo };
  /** An agent went down or came back. */
  agent: {
    readonly agentId: string;
    readonly up: boolean;
    readonly error: ErrorInfo | null;
    readonly failures: number;
  };
  /** Something failed inside the engine and is being retried (store commit, internal step). */
  error: { readonly error: ErrorInfo; readonly context: string };
}

/** Name of an engine event. */
export type EngineEventName = keyof EngineEventMap;

/** A minimal typed event emitter. Listener errors are caught and reported as `error` events. */
export class EngineEvents {
  readonly #listeners: { [K in EngineEventName]?: ((payload: EngineEventMap[K]) => void)[] } = {};

  /** Subscribes; returns the unsubscribe function. */
  on<K extends EngineEventName>(
    event: K,
    listener: (payload: EngineEventMap[K]) => void,
  ): () => void {
    const list = (this.#listeners[event] ??= []) as ((payload: EngineEventMap[K]) => void)[];
    list.push(listener);
    return () => {
      const i = list.indexOf(listener);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Whether anyone listens to `event` (lets the engine skip building payloads). */
  has(event: EngineEventName): boolean {
    return (this.#listeners[event]?.length ?? 0) > 0;
  }

  /** Calls every listener of `event`. */
  emit<K extends EngineEventName>(event: K, payload: EngineEventMap[K]): void {
    const list = this.#listeners[event];
    if (!list) return;
    for (const listener of [...list]) {
      try {
        listener(payload);
      } catch (error) {
        if (event !== 'error') {
          this.emit('error', {
            error: {
              code: 'LISTENER_FAILED',
              message: error instanceof Error ? error.message : String(error),
            },
            context: `listener of ${event}`,
          });
        }
      }
    }
  }
}
