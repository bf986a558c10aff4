/**
 * A small typed event emitter, shared by the engine and the job monitor. A listener that throws
 * does not stop the others: the error is reported as an `error` event.
 *
 * @module
 */
import { ErrorCode, type ErrorInfo } from './errors.js';

/** Event maps must have an `error` event to report listener failures. */
export interface ErrorEvent {
  readonly error: ErrorInfo;
  readonly context: string;
}

/** A typed emitter over the event map `M`. */
export class Emitter<M extends { error: ErrorEvent }> {
  readonly #listeners: { [K in keyof M]?: ((payload: M[K]) => void)[] } = {};

  /** Subscribes; returns the unsubscribe function. */
  on<K extends keyof M>(event: K, listener: (payload: M[K]) => void): () => void {
    const list = (this.#listeners[event] ??= []);
    list.push(listener);
    return () => {
      const i = list.indexOf(listener);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Whether anyone listens to `event` (lets callers skip building payloads). */
  has(event: keyof M): boolean {
    return (this.#listeners[event]?.length ?? 0) > 0;
  }

  /** Calls every listener of `event`, in subscription order. */
  emit<K extends keyof M>(event: K, payload: M[K]): void {
    const list = this.#listeners[event];
    if (!list) return;
    for (const listener of [...list]) {
      try {
        listener(payload);
      } catch (error) {
        if (event !== 'error') {
          const failure: ErrorEvent = {
            error: {
              code: ErrorCode.ListenerFailed,
              message: error instanceof Error ? error.message : String(error),
            },
            context: `listener of ${String(event)}`,
          };
          this.emit('error', failure);
        }
      }
    }
  }
}
