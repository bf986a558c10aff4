/**
 * Options of the HTTP agent broker: what users pass ({@link HttpBrokerOptions}) is validated
 * once with zod and turned into a frozen, fully defaulted {@link CompiledHttpBrokerOptions}.
 * Every timing default says why it has its value.
 *
 * @module
 */
import { z } from 'zod';
import { systemClock, type Clock } from '../../core/clock.js';
import type { Logger } from '../../core/command-type.js';
import { ErrorCode, ValidationError } from '../../core/errors.js';
import { AGENT_ID_MAX_LENGTH, AGENT_ID_PATTERN, AGENT_ID_RULE } from '../../core/records.js';
import { MAX_CHANGES_WAIT_MS } from '../../protocol/agent-v2.js';
import { CallGate } from './gate.js';
import { DEFAULT_IDLE_CONNECTION_MS, nodeHttpFetch, type HttpFetch } from './transport.js';

/** One agent the broker reaches. */
export interface HttpAgentConfig {
  /** The agent's id (what commands name in `startTask({ agent })`). */
  readonly id: string;
  /**
   * Base URL of the agent (`http://host:port`, optionally with a path the protocol paths are
   * appended to, e.g. `http://proxy/agents/a1`).
   */
  readonly url: string;
  /** Secret shared with this agent; signs every request (HMAC-SHA256). At least 16 characters. */
  readonly secret: string;
}

/** Retries of failed calls (every protocol call is idempotent: task ids are caller-chosen). */
export interface HttpRetryOptions {
  /** Extra attempts after the first. @default 2 */
  readonly max?: number;
  /** Delay before the first retry; doubles per retry, with jitter. @default 100 */
  readonly baseMs?: number;
  /** Longest delay between retries. @default 2000 */
  readonly maxMs?: number;
}

/** The long-poll of each agent's task changes. */
export interface HttpLongPollOptions {
  /** How long the agent may hold a changes request open when nothing changed. @default 20000 */
  readonly waitMs?: number;
  /** First pause after a failed changes request; doubles per failure, with jitter. @default 500 */
  readonly backoffBaseMs?: number;
  /** Longest pause between failed changes requests. @default 30000 */
  readonly backoffMaxMs?: number;
  /**
   * While an agent's long-poll is live, the engine's status polls of that agent are answered from
   * what the long-poll reported (as fresh as a status call: it lags by one round trip), and a
   * real status call goes out only when this long has passed since the last one (or when the
   * poll asks about a task the long-poll has not reported). 0: every status poll is a request.
   * @default 10000
   */
  readonly statusRefreshMs?: number;
  /**
   * About how many of those refreshes the broker makes per second over all its agents, at most:
   * with more live long-polls than `statusRefreshesPerSecond × statusRefreshMs / 1000`, each
   * agent's refresh comes less often than `statusRefreshMs` (every 100 s at 10,000 agents by
   * default). The refresh is a safety net against a change the long-poll missed, not a source of
   * news; unbounded, it grows with the fleet and becomes most of a large node's requests.
   * @default 100
   */
  readonly statusRefreshesPerSecond?: number;
}

/** The per-agent circuit breaker. */
export interface HttpCircuitOptions {
  /** Consecutive failed requests that open the circuit. @default 5 */
  readonly failureThreshold?: number;
  /** How long the circuit stays open before one probe call (plus up to 50% jitter). @default 5000 */
  readonly coolDownMs?: number;
  /** The cool-down doubles per failed probe up to this. @default 60000 */
  readonly maxCoolDownMs?: number;
}

/** What {@link httpAgents} takes. */
export interface HttpBrokerOptions {
  /** The agents, each with its URL and shared secret. Ids must be unique. */
  readonly agents: readonly HttpAgentConfig[];
  /** This engine node's id, sent (and signed) in every request's `x-coco-caller` header. */
  readonly caller: string;
  /**
   * Only tasks whose id starts with this are long-polled (the engine's task ids start with
   * `<storeId>-`). The default `''` asks for every task of the agent; the engine ignores ids
   * it does not know, so this is an optimisation, not a correctness setting. @default ''
   */
  readonly prefix?: string;
  /** Budget of one call, retries included (a long-poll gets `waitMs` on top). @default 10000 */
  readonly timeoutMs?: number;
  /** Retries of calls that failed with 5xx or a network error; a number sets `max`. */
  readonly retries?: number | HttpRetryOptions;
  /** Long-poll each agent's changes, pushing task ends to the engine at once. @default true */
  readonly longPoll?: boolean | HttpLongPollOptions;
  /** Per-agent circuit breaker. */
  readonly circuit?: HttpCircuitOptions;
  /**
   * Calls in flight at once over all agents; the others wait in line, and the wait counts
   * towards their budget (`timeoutMs`): one that waited it all fails with `BROKER_SATURATED`,
   * without a request and without blaming the agent. A long-poll's held requests do not count
   * (one per agent is what a long-poll is), but its first request, and each after a failure,
   * does — so a node coming up, or reconnecting after an outage, brings its agents up as a
   * stream rather than opening a connection to each at once.
   *
   * File descriptors: the node needs one per long-polled agent plus one per slot plus its own
   * (store, API), so `ulimit -n` must exceed the agents' number + `maxConcurrentCalls` +
   * ~100; the broker logs an error at start when it does not (Linux), and a call that meets
   * `EMFILE` fails with `BROKER_SATURATED` (the agent is not reported down).
   * @default {@link DEFAULT_MAX_CONCURRENT_CALLS}
   */
  readonly maxConcurrentCalls?: number;
  /**
   * How long the default transport keeps an idle connection of calls (not long-polls) for the
   * next call to the same agent. Ignored with an injected `fetch`.
   * @default {@link DEFAULT_IDLE_CONNECTION_MS}
   */
  readonly idleConnectionMs?: number;
  /** @default the system clock */
  readonly clock?: Clock;
  /** pino-compatible logger. @default silent */
  readonly logger?: Logger;
  /**
   * How requests are sent: any fetch-shaped function, e.g. the global `fetch`.
   * @default {@link nodeHttpFetch}: `node:http` with keep-alive pools, owned (and closed) by the
   * broker — about five times less CPU per request than the global `fetch` on Node 20
   */
  readonly fetch?: HttpFetch;
}

/** Options after validation and defaults. */
export interface CompiledHttpBrokerOptions {
  readonly agents: readonly HttpAgentConfig[];
  readonly caller: string;
  readonly prefix: string;
  readonly timeoutMs: number;
  readonly retries: Readonly<Required<HttpRetryOptions>>;
  /** `null` when long-polling is off. */
  readonly longPoll: Readonly<Required<HttpLongPollOptions>> | null;
  readonly circuit: Readonly<Required<HttpCircuitOptions>>;
  readonly maxConcurrentCalls: number;
  readonly idleConnectionMs: number;
  /** The slots of `maxConcurrentCalls`, shared by every agent's client. */
  readonly gate: CallGate;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly fetch: HttpFetch;
  /** Releases the default transport's connections (nothing for an injected one). */
  readonly releaseTransport: () => void;
}

/**
 * Same as the engine's `agentCallTimeoutMs` default: the agent answers from memory in
 * milliseconds, so 10 s only runs out when it (or the network) is wedged, and a call of the
 * engine's dispatcher is not cut before the broker's own budget is spent.
 */
export const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Two retries at 100 ms, then ~200 ms ride out a dropped keep-alive connection or an agent
 * restarting behind a proxy (a 502 for a moment) without the engine seeing an error, while
 * staying far inside the 10 s call budget; longer outages are the dispatcher's back-off's job.
 */
export const DEFAULT_RETRIES: Readonly<Required<HttpRetryOptions>> = {
  max: 2,
  baseMs: 100,
  maxMs: 2_000,
};

/**
 * 20 s: long enough that an idle agent costs one request per 20 s, short enough to stay under
 * the ~60 s idle cut of common proxies and load balancers (and under the protocol's 30 s cap).
 * Failed long-polls back off from 500 ms (an agent restart takes about a second) up to 30 s,
 * the engine's own largest agent back-off.
 */
export const DEFAULT_LONG_POLL: Readonly<Required<HttpLongPollOptions>> = {
  waitMs: 20_000,
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  // Ten cycles of the engine's default 1 s poll: an agent costs one status call per 10 s instead
  // of per second (at 1,000 agents × 100 tasks, most of the engine's CPU), while a change the
  // feed missed (an agent bug) still surfaces within 10 s, well inside the 30 s vanish grace.
  statusRefreshMs: 10_000,
  // 100 a second: 1,000 agents refresh every 10 s as before; at 10,000 agents the refresh was
  // ~1,300 requests a second, more than the engine's whole poll cycle otherwise costs (measured,
  // BENCHMARKS.md), for a check that finds nothing unless an agent's feed is broken.
  statusRefreshesPerSecond: 100,
};

/**
 * Five consecutive failed requests (about two calls with their retries) mean the agent is out,
 * not blipping. A 5 s cool-down lets a restarting agent come back before it is probed, yet
 * notices its return well within the engine's 30 s vanish grace; failed probes double it up to
 * one minute, so a long outage costs one probe a minute per engine.
 */
export const DEFAULT_CIRCUIT: Readonly<Required<HttpCircuitOptions>> = {
  failureThreshold: 5,
  coolDownMs: 5_000,
  maxCoolDownMs: 60_000,
};

/**
 * 256 calls in flight: on a LAN (~1 ms a call) that is far more calls per second than one
 * node's CPU issues (~0.15 ms of client CPU per call, measured: ~6,500 a second on a core),
 * and at a 50 ms round trip still ~5,000 a second; yet a start over 10,000 agents opens 256
 * connections at a time instead of 20,000 (what exhausted a 20,000-descriptor limit, measured).
 */
export const DEFAULT_MAX_CONCURRENT_CALLS = 256;

/** Shortest agent secret accepted: an HMAC key of 16 characters or more. */
export const MIN_AGENT_SECRET_LENGTH = 16;

/** Node fires longer timers after 1 ms (the delay overflows 32 bits), so longer is refused. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const ms = z.number().int().positive().max(MAX_TIMER_MS);
const agentSchema = z.object({
  id: z.string().min(1).max(AGENT_ID_MAX_LENGTH).regex(AGENT_ID_PATTERN, AGENT_ID_RULE),
  url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }),
  secret: z
    .string()
    .min(MIN_AGENT_SECRET_LENGTH, 'must be at least 16 characters (it is an HMAC key)'),
});
/** A broker's agents: at least one, each id once. */
const agentsSchema = z
  .array(agentSchema)
  .min(1, 'at least one agent is needed')
  .superRefine((agents, ctx) => {
    const seen = new Set<string>();
    agents.forEach((agent, i) => {
      if (seen.has(agent.id))
        ctx.addIssue({
          code: 'custom',
          path: [i, 'id'],
          message: `duplicate agent id "${agent.id}"`,
        });
      seen.add(agent.id);
    });
  });
const retriesSchema = z
  .object({
    max: z.number().int().min(0).max(10).default(DEFAULT_RETRIES.max),
    baseMs: ms.default(DEFAULT_RETRIES.baseMs),
    maxMs: ms.default(DEFAULT_RETRIES.maxMs),
  })
  .strict();
const longPollSchema = z
  .object({
    waitMs: z.number().int().min(1).max(MAX_CHANGES_WAIT_MS).default(DEFAULT_LONG_POLL.waitMs),
    backoffBaseMs: ms.default(DEFAULT_LONG_POLL.backoffBaseMs),
    backoffMaxMs: ms.default(DEFAULT_LONG_POLL.backoffMaxMs),
    statusRefreshMs: z
      .number()
      .int()
      .min(0)
      .max(MAX_TIMER_MS)
      .default(DEFAULT_LONG_POLL.statusRefreshMs),
    statusRefreshesPerSecond: z
      .number()
      .positive()
      .max(1_000_000)
      .default(DEFAULT_LONG_POLL.statusRefreshesPerSecond),
  })
  .strict();
const circuitSchema = z
  .object({
    failureThreshold: z.number().int().min(1).default(DEFAULT_CIRCUIT.failureThreshold),
    coolDownMs: ms.default(DEFAULT_CIRCUIT.coolDownMs),
    maxCoolDownMs: ms.default(DEFAULT_CIRCUIT.maxCoolDownMs),
  })
  .strict();
const optionsSchema = z
  .object({
    agents: agentsSchema,
    caller: z.string().min(1).max(200),
    prefix: z.string().max(200).default(''),
    timeoutMs: ms.default(DEFAULT_TIMEOUT_MS),
    retries: z
      .union([
        z
          .number()
          .int()
          .min(0)
          .max(10)
          .transform((max) => ({ max })),
        z.object({}).loose(),
      ])
      .default({})
      .pipe(retriesSchema),
    longPoll: z
      .union([z.boolean(), longPollSchema])
      .default(true)
      .transform((v) => (v === false ? null : v === true ? longPollSchema.parse({}) : v)),
    circuit: circuitSchema.default(circuitSchema.parse({})),
    maxConcurrentCalls: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(DEFAULT_MAX_CONCURRENT_CALLS),
    idleConnectionMs: ms.default(DEFAULT_IDLE_CONNECTION_MS),
    clock: z.custom<Clock>(isClock, 'must be a Clock (now, setTimer)').optional(),
    logger: z.custom<Logger>(isLogger, 'must be a logger (debug, info, warn, error)').optional(),
    fetch: z.custom<HttpFetch>((v) => typeof v === 'function', 'must be a function').optional(),
  })
  .strict();

function isClock(v: unknown): boolean {
  const c = v as Partial<Clock> | null;
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.now === 'function' &&
    typeof c.setTimer === 'function'
  );
}

function isLogger(v: unknown): boolean {
  const l = v as Partial<Logger> | null;
  return (
    typeof l === 'object' &&
    l !== null &&
    (['debug', 'info', 'warn', 'error'] as const).every((k) => typeof l[k] === 'function')
  );
}

function transport(
  injected: HttpFetch | undefined,
  maxConcurrentCalls: number,
  idleConnectionMs: number,
): {
  fetch: HttpFetch;
  releaseTransport: () => void;
} {
  if (injected) return { fetch: injected, releaseTransport: () => undefined };
  // Idle call connections per host: never more than the calls that can be in flight.
  const own = nodeHttpFetch({ maxFreeSockets: maxConcurrentCalls, idleConnectionMs });
  return { fetch: own, releaseTransport: () => own.destroy() };
}

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Validates and defaults the options. Throws an `INVALID_OPTIONS` {@link ValidationError}
 * naming each bad field (for example `agents.1.url`); secrets never appear in the message.
 */
export function compileHttpBrokerOptions(options: unknown): CompiledHttpBrokerOptions {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw invalid('invalid HTTP agent broker options', parsed.error, []);
  const o = parsed.data;
  if (o.retries.maxMs < o.retries.baseMs) o.retries.maxMs = o.retries.baseMs;
  if (o.circuit.maxCoolDownMs < o.circuit.coolDownMs)
    o.circuit.maxCoolDownMs = o.circuit.coolDownMs;
  if (o.longPoll && o.longPoll.backoffMaxMs < o.longPoll.backoffBaseMs)
    o.longPoll.backoffMaxMs = o.longPoll.backoffBaseMs;
  return Object.freeze({
    agents: Object.freeze(o.agents.map((a) => Object.freeze({ ...a }))),
    caller: o.caller,
    prefix: o.prefix,
    timeoutMs: o.timeoutMs,
    retries: Object.freeze(o.retries),
    longPoll: o.longPoll ? Object.freeze(o.longPoll) : null,
    circuit: Object.freeze(o.circuit),
    maxConcurrentCalls: o.maxConcurrentCalls,
    idleConnectionMs: o.idleConnectionMs,
    gate: new CallGate(o.maxConcurrentCalls),
    clock: o.clock ?? systemClock,
    logger: o.logger ?? silent,
    ...transport(o.fetch, o.maxConcurrentCalls, o.idleConnectionMs),
  });
}

/**
 * Validates a broker's new list of agents (`HttpBroker.setAgents`, a node's reload before it
 * changes anything): at least one, each id once, each URL http(s), each secret 16 characters or
 * more. Throws an `INVALID_OPTIONS` {@link ValidationError} naming each bad field (for example
 * `agents.1.secret`); secrets never appear in the message.
 */
export function compileAgents(agents: unknown): readonly HttpAgentConfig[] {
  const parsed = agentsSchema.safeParse(agents);
  if (!parsed.success) throw invalid('invalid agents', parsed.error, ['agents']);
  return Object.freeze(parsed.data.map((a) => Object.freeze({ ...a })));
}

/** The `INVALID_OPTIONS` error of a failed parse, each issue's path under `prefix`. */
function invalid(what: string, error: z.ZodError, prefix: readonly string[]): ValidationError {
  return new ValidationError(
    what,
    error.issues.map((i) => ({
      path: [...prefix, ...i.path.map((p) => (typeof p === 'symbol' ? String(p) : p))].join('.'),
      message: i.message,
    })),
    ErrorCode.InvalidOptions,
  );
}
