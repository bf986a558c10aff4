/**
 * Server-sent event streams: opened on a hijacked reply, kept in one set so that a node that
 * shuts down closes them all (a client following a job must not keep the node up), with a
 * heartbeat comment so proxies and clients see a live stream, and dropped when their client does
 * not read (see {@link MAX_UNSENT_BYTES}).
 *
 * @module
 */
import type { FastifyReply } from 'fastify';

/**
 * Time between heartbeat comments on an idle stream: under the 30–60 s idle timeouts of common
 * proxies and load balancers, so a quiet stream is not cut, at one tiny write per stream.
 */
export const HEARTBEAT_MS = 15_000;

/**
 * Bytes a stream may hold unsent before the node drops it: its client does not read (a frozen
 * tab or process, a route gone dead that TCP has not noticed yet). A client that reads drains
 * within a round trip, while a busy node's job events — a few hundred bytes each, thousands a
 * second, a whole tree per change on a job's stream — would pile up in the node's memory for as
 * long as the client stays connected. 4 MiB is seconds of the busiest stream; a client that
 * reconnects reads again what it missed (the dashboard re-reads its page).
 */
export const MAX_UNSENT_BYTES = 4 * 1024 * 1024;

/** Options of {@link Streams}. */
export interface StreamsOptions {
  /** See {@link MAX_UNSENT_BYTES} (the default). */
  readonly maxUnsentBytes?: number;
  /** Told of each stream dropped for its client not reading, with the bytes it held. */
  readonly onDropped?: (unsentBytes: number) => void;
}

/** One open stream. */
export interface Stream {
  /** Sends one event (JSON data); false once the stream is closed. */
  send(event: string, data: string): boolean;
  /** Ends the stream (idempotent). */
  close(): void;
  readonly closed: boolean;
  /** Runs `fn` when the stream closes (either end). */
  onClose(fn: () => void): void;
}

/** The open streams of an API. */
export class Streams {
  readonly #open = new Set<Stream>();
  /** The `Authorization` header each stream was opened with (a token revoked ends its streams). */
  readonly #authorization = new WeakMap<Stream, string | undefined>();
  readonly #maxUnsent: number;
  readonly #onDropped: (unsentBytes: number) => void;
  /** Streams dropped so far because their client did not read. */
  dropped = 0;

  constructor(options: StreamsOptions = {}) {
    this.#maxUnsent = options.maxUnsentBytes ?? MAX_UNSENT_BYTES;
    this.#onDropped = options.onDropped ?? (() => undefined);
  }

  get size(): number {
    return this.#open.size;
  }

  /** Opens a stream on `reply` (status 200, `text/event-stream`). */
  open(reply: FastifyReply): Stream {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const hooks: (() => void)[] = [];
    let closed = false;
    const end = (drop: boolean): void => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      this.#open.delete(stream);
      for (const fn of hooks.splice(0)) fn();
      // Ending would wait to send what is buffered, to a client that does not read: destroyed,
      // the socket lets go of it.
      if (drop) res.destroy();
      else res.end();
    };
    /** Writes, and drops the stream once its client has left too much unread. */
    const write = (text: string): void => {
      res.write(text);
      const unsent = res.writableLength;
      if (unsent > this.#maxUnsent) {
        this.dropped++;
        end(true);
        this.#onDropped(unsent);
      }
    };
    const heartbeat = setInterval(() => write(': heartbeat\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    const stream: Stream = {
      send: (event, data) => {
        if (closed) return false;
        write(`event: ${event}\ndata: ${data}\n\n`);
        return !closed;
      },
      close: () => end(false),
      get closed() {
        return closed;
      },
      onClose: (fn) => {
        if (closed) fn();
        else hooks.push(fn);
      },
    };
    this.#open.add(stream);
    this.#authorization.set(stream, reply.request.headers.authorization);
    reply.request.raw.on('close', () => stream.close());
    res.on('close', () => stream.close());
    return stream;
  }

  /**
   * Closes the open streams whose `Authorization` header `revoked` says is no longer accepted (the
   * API's tokens reloaded); returns how many.
   */
  closeRevoked(revoked: (authorization: string | undefined) => boolean): number {
    let n = 0;
    for (const s of [...this.#open]) {
      if (!revoked(this.#authorization.get(s))) continue;
      s.close();
      n++;
    }
    return n;
  }

  /** Closes every open stream (shutdown). */
  closeAll(): number {
    const n = this.#open.size;
    for (const s of [...this.#open]) s.close();
    return n;
  }
}
