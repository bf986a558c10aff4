/**
 * Engine options: what users pass ({@link EngineOptions}) is validated once and turned into a
 * frozen, fully defaulted {@link CompiledEngineOptions}.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { trace, type Tracer } from '@opentelemetry/api';
import { SPLIT_MIN_ROWS } from './committer.js';
import { TRACER_NAME } from './tracing.js';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { AgentBroker } from '../brokers/port.js';
import { systemClock, type Clock } from '../core/clock.js';
import type { CommandType, Logger } from '../core/command-type.js';
import { ErrorCode, ValidationError } from '../core/errors.js';
import { toIssues } from '../core/params.js';
import type { Store } from '../store/port.js';
import { isSharedStore } from '../store/shared-port.js';
import type { AdmissionLimits } from './admission.js';

/** Timing and sizing knobs. Every field has a default. */
export interface EngineTuning {
  /**
   * Poll an agent with running tasks at least this often. Activity hints from the broker make
   * polls happen sooner; this interval is the safety net.
   * @default 1000
   */
  readonly pollIntervalMs?: number;
  /** Give up on one agent call after this long (then back off). @default 10000 */
  readonly agentCallTimeoutMs?: number;
  /** First back-off delay after a failed agent call; doubles per failure. @default 250 */
  readonly agentBackoffBaseMs?: number;
  /** Largest back-off delay between calls to a failing agent. @default 30000 */
  readonly agentBackoffMaxMs?: number;
  /**
   * How long a task may be unknown to its agent before it fails as vanished. Long enough to
   * ride out an agent that is restarting and re-reading its task table.
   * @default 30000
   */
  readonly vanishGraceMs?: number;
  /**
   * How often each agent's task list is reconciled while the engine runs (tasks of ours that no
   * command knows are stopped and cleared): a task can appear after the start-time
   * reconciliation — a start applied late, a restored agent, a process of this store that died.
   * One list call per agent a minute costs next to nothing beside polling (one call a second per
   * busy agent), and bounds how long such a task runs unsupervised.
   * @default 60000
   */
  readonly reconcileIntervalMs?: number;
  /** First delay before retrying a failed store commit; doubles per failure. @default 100 */
  readonly commitRetryBaseMs?: number;
  /** Largest delay between store commit retries. @default 10000 */
  readonly commitRetryMaxMs?: number;
  /**
   * Batches that may be with the store at once (it applies them in order). Two lets the engine
   * build the next batch while the store writes one (SQLite: more made no difference). A shared
   * store's batches also cross the network and queue in the server, and are smaller there (see
   * `maxBatchRows`), so 8 keep its apply connection busy.
   * @default 2, or 8 on a shared store (PostgreSQL)
   */
  readonly commitsInFlight?: number;
  /**
   * Rows above which a flush takes only part of what is dirty (whole commands, children with
   * their parents), so that batches overlap with the engine's work. On a shared store, 3,000:
   * work that advances in steps (a chain's next child waits for the previous one's end to be
   * stored) then moves on in parts while the rest of a step is still being written, instead of
   * all waiting for one big batch (PostgreSQL, one node, 3,000 × 8 in flight against 5,000 × 4,
   * three interleaved passes: chains +15–25%, one-task within ±3%, fan-out −4–7%).
   * @default 5000, or 3000 on a shared store
   */
  readonly maxBatchRows?: number;
  /**
   * When the store is idle (no batch in flight) and at least twice this many rows are dirty, a
   * flush sends about half of them first and the rest right behind, so that work advancing in
   * steps (a chain's next child waits for the previous one's end to be stored) goes on while the
   * second half is written; it costs a batch more per step, and the agents' polls that follow
   * each batch. `0` turns it off. 500 by default (`SPLIT_MIN_ROWS` in engine/committer.ts):
   * measured quiet on SQLite (BENCHMARKS.md, 2026-12-06), chains +28 % (5,182 against 4,063
   * chains/s, medians of 3 interleaved), fan-out +5 %, one-task unchanged; on PostgreSQL (one
   * node, chains) no change either way.
   * @default 500
   */
  readonly idleSplitRows?: number;
  /** How often the engine renews its ownership of the store. @default 10000 */
  readonly heartbeatMs?: number;
  /** Ids reserved from the store at a time (ids are handed out without a store round trip). @default 10000 */
  readonly idBlockSize?: number;
  /**
   * How long one run of a stage handler, `onSuccess` or `onFailure` may take, unless its type says
   * (`CommandDefinition.handlerTimeoutMs`): past it the run counts as failed (`HANDLER_TIMEOUT`,
   * retried under the type's retry policy) and its signal is aborted. Without a bound, a handler
   * awaiting something that never settles kept its command busy for ever: not ended by its own
   * `timeoutMs`, not by a cancel. Handlers hand long work to tasks; ten minutes leaves room for a
   * slow call to another service while still ending such a hang. 0: no bound. Undo steps are not
   * bounded by it (they may wait for the tasks they run).
   * @default 600000
   */
  readonly handlerTimeoutMs?: number;
  /** On stop, how long to wait for running handlers before giving up on them. @default 5000 */
  readonly stopGraceMs?: number;
  /**
   * On stop, after the handlers' grace: how long to wait for the store to take the last batch
   * and close. Past it, the engine stops waiting on a store that does not answer (a database
   * down or gone silent) and lets go as after a crash: what was not stored resumes at the next
   * start (on a shared store, another node claims it once the lease lapses). A healthy store
   * takes its last batch in milliseconds, a large one on a slow disk in about a second; 10 s is
   * far above that; `coco serve`'s bound on a stop is its parts' bounds (this, the grace and the
   * job monitor's) plus 5 s: 25 s on the defaults.
   * @default 10000
   */
  readonly stopTimeoutMs?: number;
  /**
   * Shared stores: how often a node looks for commands whose node died (lease expired). Store
   * signals make most claims immediate; this bounds the delay after an expiry nobody signals.
   * @default 1000
   */
  readonly claimIntervalMs?: number;
  /** Shared stores: trees claimed (and loaded) at a time. @default 500 */
  readonly claimBatch?: number;
  /**
   * How long the store may take no write (its oldest batch not yet committed sent that long ago,
   * every try failing or unanswered) before the node counts it as out: from then until a batch
   * commits, new submissions and cancellations are refused at once with a retryable
   * `STORE_FAILED` (nothing of them created) and readiness says why, instead of each request
   * waiting for as long as the outage lasts. What was accepted before keeps waiting and is
   * stored once the store takes writes again. Longer than a blip (the commit retries of the
   * first 3 s: 100 ms doubling) and shorter than a client's usual 30 s timeout and a shared
   * store's 30 s lease, so clients learn of an outage from the node, before any halt. A healthy
   * store commits a batch in milliseconds, a pipeline of full batches in about a second.
   * @default 5000
   */
  readonly storeOutageMs?: number;
}

/** What {@link createEngine} takes. */
export interface EngineOptions {
  /** Where commands live (for example `sqliteStore({ path })`). */
  readonly store: Store;
  /** How agents are reached (for example `inProcessAgents(...)`). */
  readonly agents: AgentBroker;
  /** Every command type the engine may run, including child types. */
  readonly commands: readonly CommandType[];
  /** @default the system clock */
  readonly clock?: Clock;
  /**
   * A source of numbers in [0, 1) for the jitter of handler retries and agent back-off (tests
   * pass a seeded one, as they pass a manual clock). @default Math.random
   */
  readonly random?: () => number;
  /** pino-compatible logger. @default silent */
  readonly logger?: Logger;
  /** This node's id (shown as the store's owner). @default `<hostname>-<pid>-<random>` */
  readonly nodeId?: string;
  readonly tuning?: EngineTuning;
  /**
   * Admission limits: at most so many tasks running at once per agent (and per verb on an
   * agent); the rest wait `queued` in the engine (engine/admission.ts). Changed at run time
   * with `Engine.setLimits`. @default no limits
   */
  readonly limits?: AdmissionLimits;
  /**
   * Where the engine's spans go (see engine/tracing.ts); `null`: no spans at all.
   * @default `trace.getTracer('coco-engine')`: the globally registered provider's (a no-op
   * until an OpenTelemetry SDK is registered)
   */
  readonly tracer?: Tracer | null;
}

/** Options after validation and defaults. */
export interface CompiledEngineOptions {
  readonly store: Store;
  readonly agents: AgentBroker;
  readonly commands: readonly CommandType[];
  readonly clock: Clock;
  readonly random: () => number;
  readonly logger: Logger;
  readonly nodeId: string;
  readonly tuning: Readonly<Required<EngineTuning>>;
  readonly limits: AdmissionLimits;
  readonly tracer: Tracer | null;
}

const positive = z.number().int().positive();
const tuningSchema = z
  .object({
    pollIntervalMs: positive.default(1000),
    agentCallTimeoutMs: positive.default(10_000),
    agentBackoffBaseMs: positive.default(250),
    agentBackoffMaxMs: positive.default(30_000),
    vanishGraceMs: z.number().int().nonnegative().default(30_000),
    reconcileIntervalMs: positive.default(60_000),
    commitRetryBaseMs: positive.default(100),
    commitRetryMaxMs: positive.default(10_000),
    commitsInFlight: positive.optional(),
    maxBatchRows: positive.optional(),
    idleSplitRows: z.number().int().nonnegative().default(SPLIT_MIN_ROWS),
    heartbeatMs: positive.default(10_000),
    idBlockSize: positive.default(10_000),
    handlerTimeoutMs: z.number().int().nonnegative().default(600_000),
    stopGraceMs: z.number().int().nonnegative().default(5_000),
    stopTimeoutMs: positive.default(10_000),
    claimIntervalMs: positive.default(1_000),
    claimBatch: positive.default(500),
    storeOutageMs: positive.default(5_000),
  })
  .strict();

const limit = z.number().int().positive();
/** The schema of {@link AdmissionLimits} (engine options, `Engine.setLimits`, the admin API). */
export const admissionLimitsSchema = z
  .object({
    agents: z
      .record(
        z.string().min(1),
        z
          .object({
            maxRunning: limit.optional(),
            maxRunningByVerb: z.record(z.string().min(1), limit).optional(),
          })
          .strict(),
      )
      .optional(),
    types: z
      .record(z.string().min(1), z.object({ maxRunning: limit.optional() }).strict())
      .optional(),
    maxRunningRoots: limit.optional(),
    ageStepMs: z.number().int().positive().optional(),
  })
  .strict();

/** Validates admission limits; throws `INVALID_OPTIONS` naming each bad field under `path`. */
export function parseLimits(value: unknown, path = 'limits'): AdmissionLimits {
  const parsed = admissionLimitsSchema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  throw new ValidationError(
    'invalid admission limits',
    toIssues(
      parsed.error.issues.map((i) => ({
        message: i.message,
        path: [path, ...i.path.map((p) => (typeof p === 'symbol' ? String(p) : p))],
      })),
    ),
    ErrorCode.InvalidOptions,
  );
}

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Validates and defaults engine options. Throws `INVALID_OPTIONS` naming each bad field. */
export function compileOptions(options: EngineOptions): CompiledEngineOptions {
  const missing: string[] = [];
  if (!options || typeof options !== 'object')
    throw new ValidationError(
      'invalid engine options',
      [{ path: '', message: 'expected an object' }],
      ErrorCode.InvalidOptions,
    );
  if (!options.store) missing.push('store');
  if (!options.agents) missing.push('agents');
  if (!Array.isArray(options.commands)) missing.push('commands');
  if (missing.length > 0) {
    throw new ValidationError(
      'invalid engine options',
      missing.map((path) => ({ path, message: 'is required' })),
      ErrorCode.InvalidOptions,
    );
  }
  const parsed = tuningSchema.safeParse(options.tuning ?? {});
  if (!parsed.success) {
    throw new ValidationError(
      'invalid engine options',
      toIssues(
        parsed.error.issues.map((i) => ({
          message: i.message,
          path: ['tuning', ...i.path.map((p) => (typeof p === 'symbol' ? String(p) : p))],
        })),
      ),
      ErrorCode.InvalidOptions,
    );
  }
  const shared = isSharedStore(options.store);
  const limits = parseLimits(options.limits);
  return Object.freeze({
    limits,
    store: options.store,
    agents: options.agents,
    commands: options.commands,
    clock: options.clock ?? systemClock,
    random: options.random ?? Math.random,
    tracer: options.tracer === undefined ? trace.getTracer(TRACER_NAME) : options.tracer,
    logger: options.logger ?? silent,
    nodeId: options.nodeId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    tuning: Object.freeze({
      ...parsed.data,
      commitsInFlight: parsed.data.commitsInFlight ?? (shared ? 8 : 2),
      maxBatchRows: parsed.data.maxBatchRows ?? (shared ? 3_000 : 5_000),
    }),
  });
}
