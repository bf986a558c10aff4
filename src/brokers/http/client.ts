/**
 * One agent's HTTP client: signs each request (HMAC over the agent's id, the call, a fresh nonce
 * and the body's hash, see `signedHeaders` in the protocol), sends it with a time budget,
 * validates the answer with the protocol's zod schemas, maps failures to coco error codes,
 * retries what may be retried, and runs every request through the agent's circuit breaker.
 *
 * Error mapping:
 * - 401 → `AGENT_UNAUTHORIZED` (never retried; logged as an error: the secret is wrong, the
 *   agent at the URL has another id, or the clocks are more than five minutes apart);
 * - 404 → `AGENT_PROTOCOL` naming both protocol versions: the agent does not serve this
 *   engine's protocol (an older agent answers `NOT_FOUND`, a newer one `PROTOCOL_VERSION`);
 *   the agent is then reported down with that error, since no call can succeed;
 * - other 4xx → `AGENT_PROTOCOL` carrying the agent's own error;
 * - 5xx, refused or dropped connections → `AGENT_UNAVAILABLE`, retryable (and retried);
 * - no answer within the budget → `AGENT_TIMEOUT`, retryable (not retried: the budget is spent);
 * - a 2xx whose body is not JSON or does not match the schema → `AGENT_PROTOCOL`.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import type { z } from 'zod';
import { CocoError, ErrorCode, type ErrorInfo } from '../../core/errors.js';
import { errorResponse, PATHS, PROTOCOL_VERSION } from '../../protocol/agent-v2.js';
import { signedHeaders } from '../../protocol/signature.js';
import { CircuitBreaker } from './circuit.js';
import type { CompiledHttpBrokerOptions, HttpAgentConfig } from './options.js';

/** The agent refused the request's signature (401): `ErrorCode.AgentUnauthorized`. */
export const AGENT_UNAUTHORIZED = ErrorCode.AgentUnauthorized;

/** A protocol call, by its key in `PATHS`. */
export type AgentOp = keyof typeof PATHS;

/** What the client tells its owner about the agent. */
export interface AgentClientHooks {
  /** A request got a valid answer from the agent process with this boot id. */
  answered(bootId: string): void;
  /**
   * A call failed in a way that makes the agent unusable (unreachable, garbage, 401, another
   * protocol version).
   */
  failed(error: CocoError): void;
}

/** Options of one {@link AgentClient.call}. */
export interface CallOptions {
  /** Retry 5xx and network failures (every protocol call is idempotent). @default true */
  readonly retry?: boolean;
  /** Budget of the call, retries included. @default the broker's `timeoutMs` */
  readonly timeoutMs?: number;
  /** Aborts the call (the long-poll loop stopping). */
  readonly signal?: AbortSignal;
  /**
   * A long-poll's held request: it takes none of the broker's `maxConcurrentCalls` slots (one
   * held request per agent is what a long-poll is; holding a slot for its whole wait would
   * starve the other calls). @default false
   */
  readonly held?: boolean;
}

/** Requests sent, by call, and calls refused by the open circuit. */
export type RequestCounters = Record<AgentOp, number> & { failedFast: number; retries: number };

/** Request counters all at zero. */
export function zeroCounters(): RequestCounters {
  return {
    health: 0,
    start: 0,
    status: 0,
    stop: 0,
    clear: 0,
    list: 0,
    changes: 0,
    failedFast: 0,
    retries: 0,
  };
}

type Attempt<T> =
  | { readonly ok: true; readonly value: T }
  /**
   * `transport`: no usable answer (network, timeout, 5xx, garbage) — counts against the circuit;
   * `refused`: the agent answered, but no call can succeed (401, another protocol version);
   * `answered`: the agent answered with an error (other 4xx); `aborted`: the caller gave up;
   * `local`: this node is at a bound of its own (no call slot within the budget, no file
   * descriptor left) — the agent is not at fault, and is neither blamed nor reported down.
   */
  | {
      readonly ok: false;
      readonly error: CocoError;
      readonly kind: 'transport' | 'refused' | 'answered' | 'aborted' | 'local';
    };

/**
 * A request's timer that fires this much later than it was due shows an event loop that was
 * busy (a long synchronous task, a GC pause, a starved process) — 100 ms is well above the
 * few milliseconds of an ordinary loop turn. The request then gets as long again as the loop
 * was late, once: its answer may be waiting unread in the socket, or the request may not even
 * have left while the loop was stuck, so the agent had no fair chance. Without this, every
 * request of a node whose loop lagged past their budgets is aborted at once, its connection
 * destroyed and opened again — more work for a loop already behind (measured: a node with
 * 10,000 agents that never settled, BENCHMARKS.md).
 */
const LOOP_LAG_TOLERANCE_MS = 100;

/**
 * A call whose wait for a slot left it less than this (or a quarter of its budget, if less) is
 * not sent: on a node so far behind that its calls wait in line, a request with half a second
 * left is more likely to time out on the wire — destroying its connection, work for a loop
 * already behind — than to be answered; refused at once, its caller backs off instead.
 */
const MIN_USEFUL_BUDGET_MS = 500;

/** System errors that mean this process, not the agent, ran out of something. */
const LOCAL_EXHAUSTION = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'EADDRNOTAVAIL']);

/**
 * Once a minute at most, the error log about exhausted file descriptors: every request fails
 * the same way at such a time, and one line says it all.
 */
const EXHAUSTION_LOG_EVERY_MS = 60_000;
let lastExhaustionLog = -Infinity;

/** The HTTP client of one agent. */
export class AgentClient {
  readonly id: string;
  readonly url: string;
  readonly circuit: CircuitBreaker;
  readonly counters: RequestCounters = zeroCounters();
  #secret: string;
  readonly #o: CompiledHttpBrokerOptions;
  readonly #hooks: AgentClientHooks;
  readonly #urls: Record<AgentOp, string>;
  readonly #closing = new AbortController();

  /**
   * Signs the next requests with this secret (a rotation: see `HttpBroker.setAgents`); whether
   * it differs from the one in use.
   */
  setSecret(secret: string): boolean {
    const changed = secret !== this.#secret;
    this.#secret = secret;
    return changed;
  }

  constructor(
    config: HttpAgentConfig,
    options: CompiledHttpBrokerOptions,
    hooks: AgentClientHooks,
  ) {
    this.id = config.id;
    this.url = config.url;
    this.#secret = config.secret;
    this.#o = options;
    this.#hooks = hooks;
    this.circuit = new CircuitBreaker(options.circuit, options.clock);
    // Every request in flight listens for close(); many callers at once is normal, not a leak.
    setMaxListeners(0, this.#closing.signal);
    const base = config.url.endsWith('/') ? config.url : `${config.url}/`;
    const urls: Partial<Record<AgentOp, string>> = {};
    for (const op of Object.keys(PATHS) as AgentOp[])
      urls[op] = new URL(PATHS[op].slice(1), base).href;
    this.#urls = urls as Record<AgentOp, string>;
  }

  /** Whether {@link AgentClient.close} was called. */
  get closed(): boolean {
    return this.#closing.signal.aborted;
  }

  /** Aborts every request in flight; later calls fail with `AGENT_UNAVAILABLE`. */
  close(): void {
    this.#closing.abort();
  }

  /**
   * Makes one protocol call: `body` undefined sends a GET, otherwise a POST of its JSON. The
   * answer is validated with `schema`; its `bootId` goes to the hooks.
   */
  async call<T extends { readonly bootId: string }>(
    op: AgentOp,
    body: unknown,
    schema: z.ZodType<T>,
    options: CallOptions = {},
  ): Promise<T> {
    const { clock } = this.#o;
    const retries = options.retry === false ? 0 : this.#o.retries.max;
    const budget = options.timeoutMs ?? this.#o.timeoutMs;
    const deadline = clock.now() + budget;
    const signal = options.signal ?? this.#closing.signal;
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted || this.closed) throw this.#abortedError(op);
      const permit = this.circuit.acquire();
      if (!permit.allowed) {
        this.counters.failedFast++;
        throw this.#circuitOpen(op, permit.until, permit.state);
      }
      const waitFrom = clock.now();
      const release = options.held
        ? null
        : await this.#o.gate
            .acquire(Math.max(1, deadline - waitFrom), signal, { agentId: this.id, op }, () =>
              this.#abortedError(op),
            )
            .catch((error: unknown) => {
              this.circuit.release(permit.probe);
              throw error;
            });
      if (signal.aborted || this.closed) {
        // Closed or aborted while waiting for the slot: send nothing.
        release?.();
        this.circuit.release(permit.probe);
        throw this.#abortedError(op);
      }
      const remaining = Math.max(1, deadline - clock.now());
      if (release && remaining < Math.min(MIN_USEFUL_BUDGET_MS, budget / 4)) {
        // The wait for a slot left too little to be worth a request (see the constant).
        release();
        this.circuit.release(permit.probe);
        throw new CocoError(
          ErrorCode.BrokerSaturated,
          `agent ${this.id}: ${op} not sent: it waited ${clock.now() - waitFrom} ms for one of the broker's ` +
            `${this.#o.maxConcurrentCalls} call slots (maxConcurrentCalls), leaving ${remaining} ms of its ` +
            `${budget} ms budget; this node is behind, the agent was not asked`,
          { retryable: true, details: { agentId: this.id, op } },
        );
      }
      let result: Attempt<T>;
      try {
        result = await this.#attempt(op, body, schema, remaining, budget, signal);
      } finally {
        release?.();
      }
      if (result.ok) {
        this.circuit.success(permit.probe);
        this.#hooks.answered(result.value.bootId);
        return result.value;
      }
      const { error, kind } = result;
      if (kind === 'aborted' || kind === 'local') {
        this.circuit.release(permit.probe);
        throw error;
      }
      if (kind === 'transport') {
        if (this.circuit.failure(permit.probe)) {
          this.#o.logger.warn(
            {
              agentId: this.id,
              url: this.url,
              until: new Date(this.circuit.openUntil).toISOString(),
              error: error.toInfo(),
            },
            'agent circuit opened: calls fail fast until the cool-down has passed',
          );
        }
      } else this.circuit.success(permit.probe);
      const backoff = Math.min(this.#o.retries.maxMs, this.#o.retries.baseMs * 2 ** attempt);
      // Jitter in [backoff/2, backoff]: callers that failed together do not retry together.
      const delay = backoff / 2 + Math.random() * (backoff / 2);
      const retry =
        attempt < retries &&
        error.retryable &&
        error.code === ErrorCode.AgentUnavailable &&
        clock.now() + delay < deadline &&
        this.circuit.state === 'closed';
      if (!retry) {
        if (kind === 'transport' || kind === 'refused') this.#hooks.failed(error);
        throw error;
      }
      this.counters.retries++;
      await sleep(clock, delay, signal);
    }
  }

  async #attempt<T>(
    op: AgentOp,
    body: unknown,
    schema: z.ZodType<T>,
    timeoutMs: number,
    budget: number,
    signal: AbortSignal,
  ): Promise<Attempt<T>> {
    const method = body === undefined ? 'GET' : 'POST';
    const text = body === undefined ? '' : JSON.stringify(body);
    // Signed anew for every attempt (a fresh nonce: the agent accepts each one once). The
    // protocol path is signed, not the URL's: an agent behind a path-stripping proxy sees (and
    // verifies) the same path.
    const headers = signedHeaders(this.#secret, {
      method,
      path: PATHS[op],
      agentId: this.id,
      caller: this.#o.caller,
      body: text,
      timestamp: this.#o.clock.now(),
    });
    if (method === 'POST') headers['content-type'] = 'application/json';
    // One controller per request, aborted by the budget's timer, the caller's signal or close().
    // (AbortSignal.any/timeout per request pile listeners onto the long-lived signals and cost
    // measurable CPU at thousands of requests per second.)
    const controller = new AbortController();
    let timedOut = false;
    let due = performance.now() + timeoutMs;
    let lagGraceUsed = false;
    const expire = (): void => {
      const late = performance.now() - due;
      if (late > LOOP_LAG_TOLERANCE_MS && !lagGraceUsed) {
        lagGraceUsed = true;
        due = performance.now() + Math.min(late, timeoutMs);
        timer = setTimeout(expire, Math.min(late, timeoutMs));
        return;
      }
      timedOut = true;
      controller.abort();
    };
    let timer = setTimeout(expire, timeoutMs);
    const abort = (): void => controller.abort();
    signal.addEventListener('abort', abort);
    if (signal !== this.#closing.signal) this.#closing.signal.addEventListener('abort', abort);
    this.counters[op]++;
    let status: number;
    let raw: string;
    try {
      const response = await this.#o.fetch(this.#urls[op], {
        method,
        headers,
        body: method === 'POST' ? text : undefined,
        signal: controller.signal,
        ...(op === 'changes' ? { longPoll: true } : {}),
      });
      status = response.status;
      raw = await response.text();
    } catch (cause) {
      if (signal.aborted || this.closed)
        return { ok: false, kind: 'aborted', error: this.#abortedError(op) };
      const code = systemCode(cause);
      if (code !== undefined && LOCAL_EXHAUSTION.has(code)) {
        const error = new CocoError(
          ErrorCode.BrokerSaturated,
          `agent ${this.id} (${this.url}): ${op} not sent: this process is out of ${code === 'EMFILE' || code === 'ENFILE' ? 'file descriptors' : 'sockets'} (${code}); ` +
            `raise \`ulimit -n\` above the agents' number plus maxConcurrentCalls (${this.#o.maxConcurrentCalls}) plus ~100, or lower maxConcurrentCalls`,
          { retryable: true, cause, details: { agentId: this.id, op, errno: code } },
        );
        const now = performance.now();
        if (now - lastExhaustionLog >= EXHAUSTION_LOG_EVERY_MS) {
          lastExhaustionLog = now;
          this.#o.logger.error({ error: error.toInfo() }, error.plainMessage);
        }
        return { ok: false, kind: 'local', error };
      }
      if (timedOut) {
        const error = new CocoError(
          ErrorCode.AgentTimeout,
          `agent ${this.id} (${this.url}) did not answer ${op} within ${budget} ms`,
          { retryable: true, details: { agentId: this.id, op } },
        );
        return { ok: false, kind: 'transport', error };
      }
      const error = new CocoError(
        ErrorCode.AgentUnavailable,
        `agent ${this.id} (${this.url}) could not be reached for ${op}: ${describe(cause)}`,
        { retryable: true, cause, details: { agentId: this.id, op } },
      );
      return { ok: false, kind: 'transport', error };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
      this.#closing.signal.removeEventListener('abort', abort);
    }
    return this.#interpret(op, status, raw, schema);
  }

  #interpret<T>(op: AgentOp, status: number, raw: string, schema: z.ZodType<T>): Attempt<T> {
    let json: unknown;
    let parsed = true;
    try {
      json = JSON.parse(raw);
    } catch {
      parsed = false;
    }
    const where = `agent ${this.id} (${this.url})`;
    if (status < 200 || status >= 300) {
      const agentError = parsed ? errorResponse.safeParse(json) : undefined;
      const info: ErrorInfo | undefined = agentError?.success ? agentError.data.error : undefined;
      const said = info ? `${info.code}: ${info.message}` : snippet(raw);
      const details = { agentId: this.id, op, status, ...(info ? { agentError: info } : {}) };
      if (status === 401) {
        this.#o.logger.error(
          { agentId: this.id, url: this.url, op, agentError: info },
          'agent refused the request signature (401): the shared secret for this agent is wrong, the agent at this URL has another id, or the clocks are more than 5 minutes apart',
        );
        const error = new CocoError(
          AGENT_UNAUTHORIZED,
          `${where} refused ${op}: unauthorized (${said}); check the secret and the id configured for this agent`,
          { details },
        );
        return { ok: false, kind: 'refused', error };
      }
      if (status === 404)
        return { ok: false, kind: 'refused', error: this.#otherVersion(op, said, info, details) };
      if (status >= 500) {
        const error = new CocoError(
          ErrorCode.AgentUnavailable,
          `${where} failed ${op} with ${status} (${said})`,
          {
            retryable: true,
            details,
          },
        );
        return { ok: false, kind: 'transport', error };
      }
      const error = new CocoError(
        ErrorCode.AgentProtocol,
        `${where} refused ${op} with ${status} (${said})`,
        {
          details,
        },
      );
      return { ok: false, kind: 'answered', error };
    }
    if (!parsed) {
      const error = new CocoError(
        ErrorCode.AgentProtocol,
        `${where} answered ${op} with malformed JSON: ${snippet(raw)}`,
        {
          details: { agentId: this.id, op, status },
        },
      );
      return { ok: false, kind: 'transport', error };
    }
    const checked = schema.safeParse(json);
    if (!checked.success) {
      const issues = checked.error.issues
        .slice(0, 5)
        .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
        .join('; ');
      const error = new CocoError(
        ErrorCode.AgentProtocol,
        `${where} answered ${op} with a body that breaks the protocol: ${issues}`,
        {
          details: { agentId: this.id, op, status },
        },
      );
      return { ok: false, kind: 'transport', error };
    }
    return { ok: true, value: checked.data };
  }

  /**
   * The agent has no such path: it speaks another protocol version. A newer agent says which
   * (`PROTOCOL_VERSION`, details.protocol); an agent of protocol 1 answers `NOT_FOUND`, as it
   * does for any path it does not know.
   */
  #otherVersion(
    op: AgentOp,
    said: string,
    info: ErrorInfo | undefined,
    details: object,
  ): CocoError {
    const spoken = (info?.details as { protocol?: unknown } | undefined)?.protocol;
    const theirs =
      typeof spoken === 'number'
        ? `protocol ${spoken}`
        : `an older protocol than ${PROTOCOL_VERSION} (protocol 1 agents answer so)`;
    const method = op === 'health' ? 'GET' : 'POST';
    return new CocoError(
      ErrorCode.AgentProtocol,
      `agent ${this.id} (${this.url}) does not serve coco agent protocol ${PROTOCOL_VERSION}: ` +
        `${method} ${PATHS[op]} answered 404 (${said}); it speaks ${theirs}. ` +
        `Run agent and engine releases of the same protocol (this engine speaks protocol ${PROTOCOL_VERSION})`,
      {
        details: {
          ...details,
          protocol: PROTOCOL_VERSION,
          agentProtocol: typeof spoken === 'number' ? spoken : null,
        },
      },
    );
  }

  #abortedError(op: AgentOp): CocoError {
    const why = this.#closing.signal.aborted
      ? 'the HTTP agent broker is closed'
      : 'the call was aborted';
    return new CocoError(ErrorCode.AgentUnavailable, `agent ${this.id}: ${op} not done: ${why}`, {
      retryable: !this.#closing.signal.aborted,
      details: { agentId: this.id, op },
    });
  }

  #circuitOpen(op: AgentOp, until: number, state: 'open' | 'half-open'): CocoError {
    const message =
      state === 'open'
        ? `agent ${this.id} (${this.url}): circuit open until ${new Date(until).toISOString()} after repeated failures; ${op} failed fast without a request`
        : `agent ${this.id} (${this.url}): circuit half-open, a probe call is in flight; ${op} failed fast without a request`;
    return new CocoError(ErrorCode.AgentUnavailable, message, {
      retryable: true,
      details: { agentId: this.id, op, circuit: state, until },
    });
  }
}

/** Waits `ms` on the clock, or less if `signal` aborts. */
export function sleep(
  clock: { setTimer(ms: number, fn: () => void): { cancel(): void } },
  ms: number,
  signal: AbortSignal,
): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = (): void => {
      timer.cancel();
      resolve();
    };
    const timer = clock.setTimer(ms, () => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The system error code (`EMFILE`, `ECONNREFUSED`) of a network error or its cause. */
function systemCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 3; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    e = e.cause;
  }
  return undefined;
}

/** A network error's most telling part (undici wraps the socket error as `cause`). */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' ? `${code} (${cause.message})` : cause.message;
  }
  return error.message;
}

/** The start of a body, for messages. */
function snippet(raw: string): string {
  const flat = raw.replace(/\s+/g, ' ').trim();
  if (flat === '') return 'empty body';
  return flat.length > 200 ? `${JSON.stringify(flat.slice(0, 200))}…` : JSON.stringify(flat);
}
