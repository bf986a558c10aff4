/**
 * How the broker sends a request: a fetch-shaped function (`url`, `init` → `status`, `text()`),
 * so the global `fetch` fits as is, and {@link nodeHttpFetch}, the same over `node:http` with
 * keep-alive connections.
 *
 * Why two: on Node 20, `fetch` (undici) builds web streams, abort signals and a `Response` per
 * request; measured on the 2-vCPU dev VM, a 100-status call costs ~0.8 ms of client CPU with
 * `fetch` against ~0.15 ms with `node:http` — the difference between one core and a fifth of one
 * for 1,000 agents polled every second (see bench/agents-http.ts).
 *
 * @module
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/** What the broker passes to a transport. */
export interface HttpRequestInit {
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string | undefined;
  /** Aborts the request (budget spent, broker closed); the promise then rejects. */
  readonly signal: AbortSignal;
}

/** What the broker reads of an answer. */
export interface HttpResponseLike {
  readonly status: number;
  text(): Promise<string>;
}

/** A fetch-shaped transport; the global `fetch` is one. */
export type HttpFetch = (url: string, init: HttpRequestInit) => Promise<HttpResponseLike>;

/** A {@link HttpFetch} over `node:http`/`node:https` that owns its connection pools. */
export interface NodeHttpFetch extends HttpFetch {
  /** Closes the pooled connections. */
  destroy(): void;
}

/** Options of {@link nodeHttpFetch}. */
export interface NodeHttpFetchOptions {
  /**
   * Connections per agent host. Unlimited by default: the broker itself bounds them (one call
   * at a time per agent from the engine, plus the long-poll and a health check).
   * @default Infinity
   */
  readonly maxSockets?: number;
}

/**
 * A transport over `node:http` and `node:https` with keep-alive pools (idle connections do not
 * keep the process alive). The whole answer is read before the promise resolves, so the
 * caller's abort signal covers the body too.
 */
export function nodeHttpFetch(options: NodeHttpFetchOptions = {}): NodeHttpFetch {
  const maxSockets = options.maxSockets ?? Infinity;
  // Every idle connection is kept (Node keeps 256 per host by default): agents behind one
  // address (a proxy, the benchmark's shared server) would otherwise reconnect every cycle.
  const pool = { keepAlive: true, maxSockets, maxFreeSockets: Infinity };
  const http = new HttpAgent(pool);
  const https = new HttpsAgent(pool);
  const send = (url: string, init: HttpRequestInit): Promise<HttpResponseLike> =>
    new Promise((resolve, reject) => {
      const secure = url.startsWith('https:');
      const headers: Record<string, string | number> = { ...init.headers };
      if (init.body !== undefined) headers['content-length'] = Buffer.byteLength(init.body);
      const req = (secure ? httpsRequest : httpRequest)(
        url,
        { method: init.method, headers, agent: secure ? https : http, signal: init.signal },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode ?? 0, text: () => Promise.resolve(text) });
          });
          res.on('error', reject);
          res.on('aborted', () =>
            reject(new Error('the connection closed before the answer ended')),
          );
        },
      );
      req.on('error', reject);
      req.end(init.body);
    });
  return Object.assign(send, {
    destroy(): void {
      http.destroy();
      https.destroy();
    },
  });
}
