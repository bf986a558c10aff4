/**
 * Server-sent events over `fetch`, so that the stream carries the `Authorization` header
 * (`EventSource` cannot send one, and a token never goes in a URL), parsed by `event-parser.ts`,
 * reconnecting with back-off.
 *
 * @module
 */
import { authHeaders, failure, type ApiError } from './api.js';
import { EventParser, type StreamEvent } from './event-parser.js';

/** What a followed stream tells its owner. */
export interface StreamHandlers {
  onEvent(event: StreamEvent): void;
  /** The stream is open (again). */
  onOpen?(): void;
  /** The stream broke or was refused; `retryInMs` null: given up (it will not reconnect). */
  onError?(error: ApiError | Error, retryInMs: number | null): void;
  /** The server ended the stream (a job's stream ends with the job). */
  onEnd?(): void;
}

/**
 * Reconnection delays after a broken stream: quick at first (a node restart takes a second or
 * two), then no more often than every 10 s so a node that is down is not hammered.
 */
const RETRY_MS = [500, 1_000, 2_000, 5_000, 10_000] as const;

/**
 * Follows a stream until `signal` aborts: reconnects after a network failure with back-off; a
 * stream the server ended is not reopened unless `reopen` says so; a 401, 403 or 404 is final.
 */
export function follow(
  path: string,
  handlers: StreamHandlers,
  signal: AbortSignal,
  reopen = false,
): void {
  let failures = 0;
  const run = async (): Promise<void> => {
    while (!signal.aborted) {
      try {
        const res = await fetch(path, {
          headers: { accept: 'text/event-stream', ...authHeaders() },
          credentials: 'omit',
          cache: 'no-store',
          signal,
        });
        if (!res.ok) {
          const error = await failure(res);
          const final = [401, 403, 404].includes(res.status);
          handlers.onError?.(error, final ? null : delay(failures++));
          if (final) return;
          await sleep(delay(failures - 1), signal);
          continue;
        }
        failures = 0;
        handlers.onOpen?.();
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new EventParser();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          for (const e of parser.push(value)) handlers.onEvent(e);
        }
        handlers.onEnd?.();
        if (!reopen) return;
      } catch (error) {
        if (signal.aborted) return;
        handlers.onError?.(error as Error, delay(failures));
        await sleep(delay(failures++), signal);
      }
    }
  };
  void run();
}

function delay(failures: number): number {
  return RETRY_MS[Math.min(failures, RETRY_MS.length - 1)]!;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
