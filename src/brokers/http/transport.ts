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
  /**
   * A long-poll's request (`changes`), which the agent may hold open: {@link nodeHttpFetch}
   * sends these over a pool of their own, so that a held request never waits for, nor holds,
   * a connection of the other calls. Other transports may ignore it.
   */
  readonly longPoll?: boolean;
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
   * Connections per agent host for calls other than long-polls. Unlimited by default: the
   * broker itself bounds its calls in flight (`maxConcurrentCalls`), hence their connections.
   * @default Infinity
   */
  readonly maxSockets?: number;
  /**
   * Idle connections of calls (not long-polls) kept per host, ready for the next call.
   * @default 256
   */
  readonly maxFreeSockets?: number;
  /**
   * How long an idle connection of calls (not long-polls) is kept before it is closed.
   * @default {@link DEFAULT_IDLE_CONNECTION_MS}
   */
  readonly idleConnectionMs?: number;
}

/**
 * 4 s: a connection outlives the gaps between the calls of one dispatch round and the engine's
 * 1 s poll cycle, so a busy agent reuses its connection; an agent called only by the status
 * refresh (every 5–10 s while its long-poll is live) reconnects for it — one handshake, cheaper
 * than holding a descriptor per agent for ever (10,000 agents would hold 10,000 idle sockets).
 * Under the 5 s keep-alive timeout of Node servers (the reference agent), so the client closes
 * first and never sends into a connection the agent is closing.
 */
export const DEFAULT_IDLE_CONNECTION_MS = 4_000;

/** Idle call connections kept per host by default: as many as the broker's default slots. */
const DEFAULT_MAX_FREE_SOCKETS = 256;

/**
 * A transport over `node:http` and `node:https` with keep-alive pools (idle connections do not
 * keep the process alive). The whole answer is read before the promise resolves, so the
 * caller's abort signal covers the body too.
 *
 * Two pools: long-polls (held by the agent, one per agent) keep every idle connection — agents
 * behind one address (a proxy, the benchmark's shared server) would otherwise reconnect every
 * cycle — and the other calls keep at most `maxFreeSockets` idle ones per host, each for
 * `idleConnectionMs`: their number is bounded by the broker's calls in flight, not by its agents.
 */
export function nodeHttpFetch(options: NodeHttpFetchOptions = {}): NodeHttpFetch {
  const maxSockets = options.maxSockets ?? Infinity;
  const calls = {
    keepAlive: true,
    maxSockets,
    maxFreeSockets: options.maxFreeSockets ?? DEFAULT_MAX_FREE_SOCKETS,
    // The socket timeout of the pool: Node's agent closes a free socket when it fires.
    timeout: options.idleConnectionMs ?? DEFAULT_IDLE_CONNECTION_MS,
  };
  const polls = { keepAlive: true, maxFreeSockets: Infinity };
  const http = new HttpAgent(calls);
  const https = new HttpsAgent(calls);
  const httpPolls = new HttpAgent(polls);
  const httpsPolls = new HttpsAgent(polls);
  const send = (url: string, init: HttpRequestInit): Promise<HttpResponseLike> =>
    new Promise((resolve, reject) => {
      const secure = url.startsWith('https:');
      const agent = init.longPoll ? (secure ? httpsPolls : httpPolls) : secure ? https : http;
      const headers: Record<string, string | number> = { ...init.headers };
      if (init.body !== undefined) headers['content-length'] = Buffer.byteLength(init.body);
      const req = (secure ? httpsRequest : httpRequest)(
        url,
        { method: init.method, headers, agent, signal: init.signal },
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
      for (const pool of [http, https, httpPolls, httpsPolls]) pool.destroy();
    },
  });
}
