/**
 * Server-sent event streams: opened on a hijacked reply, kept in one set so that a node that
 * shuts down closes them all (a client following a job must not keep the node up), with a
 * heartbeat comment so proxies and clients see a live stream.
 *
 * @module
 */
import type { FastifyReply } from 'fastify';

/**
 * Time between heartbeat comments on an idle stream: under the 30–60 s idle timeouts of common
 * proxies and load balancers, so a quiet stream is not cut, at one tiny write per stream.
 */
export const HEARTBEAT_MS = 15_000;

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
    const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), HEARTBEAT_MS);
    heartbeat.unref();
    const stream: Stream = {
      send: (event, data) => {
        if (closed) return false;
        res.write(`event: ${event}\ndata: ${data}\n\n`);
        return true;
      },
      close: () => {
        if (closed) return;
        closed = true;
        clearInterval(heartbeat);
        this.#open.delete(stream);
        for (const fn of hooks.splice(0)) fn();
        res.end();
      },
      get closed() {
        return closed;
      },
      onClose: (fn) => {
        if (closed) fn();
        else hooks.push(fn);
      },
    };
    this.#open.add(stream);
    reply.request.raw.on('close', () => stream.close());
    res.on('close', () => stream.close());
    return stream;
  }

  /** Closes every open stream (shutdown). */
  closeAll(): number {
    const n = this.#open.size;
    for (const s of [...this.#open]) s.close();
    return n;
  }
}
