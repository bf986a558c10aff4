/**
 * A node's Prometheus metrics (prom-client): what the engine and the job monitor do, counted
 * from their events, and figures counted when a scrape asks for them. Each node has its own
 * {@link Registry} (never prom-client's global one), so two engines in one process never mix
 * their figures; the metrics outlive the engine generations of a node (a rejoin attaches the
 * new engine to the same metrics).
 *
 * The hot path stays cheap: every labelled child is resolved once and cached (a `Map` lookup per
 * event, no label object built), and what changes at every step (commands in flight, agents up,
 * the monitor's lag) is not tracked at all but counted at the scrape ({@link SCRAPED}).
 *
 * @example
 * ```ts
 * const metrics = createNodeMetrics();
 * const detach = metrics.attach(engine, monitor);
 * const text = await metrics.registry.metrics(); // Prometheus text format
 * ```
 * @module
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from './fast-metrics.js';
import type { Engine, EngineFigures } from '../engine/engine.js';
import type { AgentCallEvent, BatchEvent, EndedCommand, EngineEventMap } from '../engine/events.js';
import type { JobMonitor } from '../jobs/monitor.js';
import type { ChangeBatch, PoolFigures } from '../store/port.js';

/**
 * A broker's call slots (the HTTP broker's `maxConcurrentCalls`, `HttpBroker.callSlots()`): the
 * limit, the calls holding a slot and waiting for one now, and since the broker was made, the
 * calls that had to wait and those refused after waiting their whole budget (`BROKER_SATURATED`).
 */
export interface CallSlots {
  readonly limit: number;
  readonly inFlight: number;
  readonly waiting: number;
  readonly waited: number;
  readonly refused: number;
}

/** A broker that bounds its calls with slots (see {@link CallSlots}). */
export interface CallSlotSource {
  callSlots(): CallSlots;
}

/** Whether `broker` reports call slots (the HTTP broker does; in-process agents do not). */
export function hasCallSlots(broker: object): broker is CallSlotSource {
  return typeof (broker as Partial<CallSlotSource>).callSlots === 'function';
}

/** A store with a connection pool (the PostgreSQL stores: `connections()`). */
export interface PoolSource {
  connections(): PoolFigures;
}

/** Whether `store` has a connection pool to show (see {@link PoolSource}). */
export function hasPool(store: object): store is PoolSource {
  return typeof (store as Partial<PoolSource>).connections === 'function';
}

/** The pools of a generation's stores, by store: the engine's and the job view's. */
export interface Pools {
  readonly engine?: PoolSource | null;
  readonly jobs?: PoolSource | null;
}

/** What the figures counted at a scrape are read from: the node's current engine and monitor. */
export interface ScrapeSource {
  readonly engine: Engine | null;
  readonly monitor: JobMonitor | null;
  /** The current generation's broker, when it has call slots. */
  readonly slots: CallSlotSource | null;
  /** The current generation's stores, when they have connection pools. */
  readonly pools: Pools;
  /**
   * The engine's figures (`Engine.figures()`, a walk over every live command), taken once for
   * all the gauges of a scrape; null without an engine.
   */
  readonly figures: EngineFigures | null;
}

/**
 * How long one `Engine.figures()` snapshot serves the gauges: those of one scrape are collected
 * within milliseconds of each other, scrapes come seconds apart (Prometheus: 5–60 s), so a
 * snapshot this young belongs to the same scrape — and 100,000 live commands are walked once a
 * scrape instead of once per gauge.
 */
const FIGURES_TTL_MS = 250;

/**
 * A gauge counted at each scrape (never on each change). To add one, add an entry to
 * {@link SCRAPED}: a name, its help and labels, and `collect`, which reads the source and sets
 * each labelled value. Labels not set at a scrape are dropped from it (the gauge is reset first).
 */
export interface ScrapedGauge {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  collect(source: ScrapeSource, set: (labels: Record<string, string>, value: number) => void): void;
}

const IN_FLIGHT_STATUSES = ['pending', 'waiting', 'aborting', 'compensating'] as const;

/** The pools to show, with their store's label. */
function poolsOf(pools: Pools): [string, PoolSource][] {
  const out: [string, PoolSource][] = [];
  if (pools.engine) out.push(['engine', pools.engine]);
  if (pools.jobs) out.push(['jobs', pools.jobs]);
  return out;
}

/** The gauges counted at a scrape (see {@link ScrapedGauge}). */
export const SCRAPED: readonly ScrapedGauge[] = [
  {
    name: 'coco_engine_running',
    help: 'Whether the node runs an engine (1) or not: starting, halted, stopped (0).',
    labelNames: [],
    collect: ({ engine }, set) => set({}, engine?.state === 'running' ? 1 : 0),
  },
  {
    name: 'coco_commands_in_flight',
    help: 'Commands in this node\u2019s memory that have not ended, by status.',
    labelNames: ['status'],
    collect: ({ figures }, set) => {
      const { inFlight } = figures ?? { inFlight: null };
      for (const status of IN_FLIGHT_STATUSES) set({ status }, inFlight?.[status] ?? 0);
    },
  },
  {
    name: 'coco_store_write_wait_seconds',
    help: 'How long the oldest batch not yet committed has waited for the engine store (0: none waits); from storeOutageMs (5 s) on, submits and cancels are refused with STORE_FAILED.',
    labelNames: [],
    collect: ({ figures }, set) => set({}, (figures?.storeWaitMs ?? 0) / 1000),
  },
  {
    name: 'coco_commands_held',
    help: 'Commands held: their type or parameters could not be loaded here, or the store refused their tree (TREE_REFUSED).',
    labelNames: [],
    collect: ({ figures }, set) => set({}, figures?.held ?? 0),
  },
  {
    name: 'coco_tasks_watched',
    help: 'Tasks this node polls on their agents.',
    labelNames: [],
    collect: ({ figures }, set) => set({}, figures?.watchedTasks ?? 0),
  },
  {
    name: 'coco_agent_up',
    help: 'Whether the calls to an agent succeed (1) or fail (0), per agent this node calls.',
    labelNames: ['agent'],
    collect: ({ figures }, set) => {
      for (const a of figures?.agents ?? []) set({ agent: a.agentId }, a.up ? 1 : 0);
    },
  },
  {
    name: 'coco_agents',
    help: 'Agents this node calls, by state (up: calls succeed; down: they fail).',
    labelNames: ['state'],
    collect: ({ figures }, set) => {
      let up = 0;
      let down = 0;
      for (const a of figures?.agents ?? [])
        if (a.up) up++;
        else down++;
      set({ state: 'up' }, up);
      set({ state: 'down' }, down);
    },
  },
  {
    name: 'coco_broker_call_slots',
    help: 'The broker\u2019s call slots (maxConcurrentCalls): calls to agents in flight at once over all agents, long-polls held excepted (0 when the node\u2019s agents are not called over HTTP).',
    labelNames: [],
    collect: ({ slots }, set) => {
      if (slots) set({}, slots.callSlots().limit);
    },
  },
  {
    name: 'coco_broker_calls_in_flight',
    help: 'Calls to agents holding one of the broker\u2019s call slots now (HTTP agents only).',
    labelNames: [],
    collect: ({ slots }, set) => {
      if (slots) set({}, slots.callSlots().inFlight);
    },
  },
  {
    name: 'coco_broker_calls_waiting',
    help: 'Calls to agents waiting for one of the broker\u2019s call slots now: above 0 for long, the node is behind its agents (HTTP agents only).',
    labelNames: [],
    collect: ({ slots }, set) => {
      if (slots) set({}, slots.callSlots().waiting);
    },
  },
  {
    name: 'coco_admission_tasks_queued',
    help: 'Tasks waiting for a slot of their agent (admission control), per agent with a limit.',
    labelNames: ['agent'],
    collect: ({ engine }, set) => {
      for (const a of engine?.admissionStats() ?? []) set({ agent: a.agentId }, a.queued);
    },
  },
  {
    name: 'coco_admission_tasks_holding_slot',
    help: 'Tasks holding a slot of their agent (admitted, agent not done with them), per agent with a limit.',
    labelNames: ['agent'],
    collect: ({ engine }, set) => {
      for (const a of engine?.admissionStats() ?? []) set({ agent: a.agentId }, a.running);
    },
  },
  {
    name: 'coco_admission_oldest_wait_seconds',
    help: 'How long the oldest queued task of an agent has waited (0: none waits), per agent with a limit.',
    labelNames: ['agent'],
    collect: ({ engine }, set) => {
      for (const a of engine?.admissionStats() ?? [])
        set({ agent: a.agentId }, a.oldestWaitMs / 1000);
    },
  },
  {
    name: 'coco_admission_roots_queued',
    help: 'Root commands waiting for the root limits or their type’s resume (per node), by type.',
    labelNames: ['type'],
    collect: ({ engine }, set) => {
      for (const t of engine?.rootAdmissionStats() ?? []) set({ type: t.type }, t.queued);
    },
  },
  {
    name: 'coco_command_type_paused',
    help: 'Command types paused by an operator (1, with the time of the pause as coco_command_type_paused_since_seconds): their new roots wait until they are resumed.',
    labelNames: ['type'],
    collect: ({ engine }, set) => {
      for (const t of engine?.pausedTypes().keys() ?? []) set({ type: t }, 1);
    },
  },
  {
    name: 'coco_command_type_paused_since_seconds',
    help: 'When each paused command type was paused (seconds since the epoch): an alert can fire on a pause left on too long.',
    labelNames: ['type'],
    collect: ({ engine }, set) => {
      for (const p of engine?.pausedTypes().values() ?? [])
        set({ type: p.type }, p.pausedAt / 1000);
    },
  },
  {
    name: 'coco_admission_roots_running',
    help: 'Root commands holding a slot of the root limits, by type (counted only while root limits are set).',
    labelNames: ['type'],
    collect: ({ engine }, set) => {
      for (const t of engine?.rootAdmissionStats() ?? []) set({ type: t.type }, t.running);
    },
  },
  {
    name: 'coco_store_connections',
    help: 'Connections of a store’s pool (PostgreSQL), by store ("engine", "jobs") and state ("busy": in use, "idle", "closing": let go of, not closed yet).',
    labelNames: ['store', 'state'],
    collect: ({ pools }, set) => {
      for (const [store, pool] of poolsOf(pools)) {
        const { open, idle, closing } = pool.connections();
        set({ store, state: 'busy' }, open - idle);
        set({ store, state: 'idle' }, idle);
        set({ store, state: 'closing' }, closing);
      }
    },
  },
  {
    name: 'coco_store_connection_waiters',
    help: 'Calls waiting for a connection of a store’s pool (PostgreSQL), by store: above 0 for long, the pool is too small for the node (poolSize in the store URL).',
    labelNames: ['store'],
    collect: ({ pools }, set) => {
      for (const [store, pool] of poolsOf(pools)) set({ store }, pool.connections().waiting);
    },
  },
  {
    name: 'coco_job_monitor_lag_seconds',
    help: 'How far the job view is behind the engine: age of the oldest committed batch not yet written to the job tables (0: caught up).',
    labelNames: [],
    collect: ({ monitor }, set) => set({}, (monitor?.lagMs() ?? 0) / 1000),
  },
  {
    name: 'coco_job_monitor_queued_batches',
    help: 'Engine batches queued for the job view.',
    labelNames: [],
    collect: ({ monitor }, set) => set({}, monitor?.stats().queuedBatches ?? 0),
  },
];

/**
 * Buckets of the end latency (a task's end → its command's durable end): the engine's own work
 * and one group commit, sub-millisecond on an idle node, tens of milliseconds under load.
 */
const END_LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];
/** Buckets of a command's life (submit → end): from an instant command to hours of copying. */
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400];
/** Buckets of an agent call: loopback milliseconds up to the 30 s call timeout. */
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/**
 * Buckets of a task's admission wait (queued → admitted): 0 for a free slot, then anything from
 * the next slot freeing (milliseconds) to hours behind a long queue of copies.
 */
const WAIT_BUCKETS = [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400];
/** Buckets of rows per batch: one command up to the 3,000-row cap of a PostgreSQL batch and beyond. */
const ROW_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
/** Buckets of a batch's apply time: a SQLite commit takes ~0.1–1 ms, a busy PostgreSQL 100s. */
const APPLY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

type Inc = { inc(by?: number): void };
type Observe = { observe(value: number): void };
type Outcomes<K extends string> = Readonly<Record<K, Inc>>;
type CallOutcome = AgentCallEvent['outcome'];
type CommandOutcome = 'succeeded' | 'failed' | 'cancelled';
type HandlerPhase = EngineEventMap['handler-timeout']['phase'];

/** Children of a metric by a key, resolved once. */
class Children<T> {
  readonly #map = new Map<string, T>();
  readonly #make: (key: string) => T;
  constructor(make: (key: string) => T) {
    this.#make = make;
  }
  get(key: string): T {
    let child = this.#map.get(key);
    if (child === undefined) {
      child = this.#make(key);
      this.#map.set(key, child);
    }
    return child;
  }
}

/** Options of {@link createNodeMetrics}. */
export interface NodeMetricsOptions {
  /** The registry to register in. @default a new one (never prom-client's global registry) */
  readonly registry?: Registry;
}

/** What the metrics read of the API's event streams (http/sse.ts `Streams`). */
export interface StreamSource {
  /** Streams open now. */
  readonly size: number;
  /** Streams dropped so far because their client did not read. */
  readonly dropped: number;
}

/** What the metrics read of a node's retention schedule (server/retention.ts `counts`). */
export interface RetentionSource {
  readonly counts: {
    readonly passes: Readonly<Record<'done' | 'more' | 'failed' | 'skipped', number>>;
    readonly deleted: Readonly<Record<'trees' | 'commands' | 'tasks' | 'jobs', number>>;
    readonly lastSuccessAt: number | null;
  };
}

/** A node's metrics: the registry to scrape, and the engines and monitors it follows. */
export class NodeMetrics {
  /** The registry (`await registry.metrics()` is the Prometheus text). */
  readonly registry: Registry;
  #source: {
    engine: Engine | null;
    monitor: JobMonitor | null;
    slots: CallSlotSource | null;
    pools: Pools;
  } = { engine: null, monitor: null, slots: null, pools: {} };
  /** The API's event streams, once {@link NodeMetrics.followStreams} was called. */
  #streams: StreamSource | null = null;
  /** Poll counts of the engines detached so far (see `coco_agent_polls_total`). */
  readonly #pollsBefore = { polls: 0, tasks: 0 };
  /** Call-slot counts of the brokers detached so far (see `coco_broker_calls_refused_total`). */
  readonly #slotsBefore = { waited: 0, refused: 0 };
  /**
   * The broker last detached and what it had counted then: a broker that outlives a generation
   * (given to the node by its caller) is attached again, and its counts must not be added twice.
   */
  #lastDetached: {
    readonly slots: CallSlotSource;
    readonly waited: number;
    readonly refused: number;
  } | null = null;
  /** The configuration reloads counted so far, once there was one. */
  #reloads: { ok: number; failed: number; lastOk: boolean } | null = null;
  readonly #submittedRoots: Children<Inc>;
  readonly #submittedChildren: Children<Inc>;
  readonly #ended: Children<Outcomes<CommandOutcome>>;
  readonly #calls: Children<Children<Outcomes<CallOutcome>>>;
  readonly #callSeconds: Children<Observe>;
  readonly #durations: Children<Observe>;
  readonly #endLatency: Observe;
  readonly #batchRows: Observe;
  readonly #applySeconds: Observe;
  readonly #storeErrors: Children<Inc>;
  readonly #engineErrors: Children<Inc>;
  readonly #loadFailures: Inc;
  /** By type, then phase. */
  readonly #handlerTimeouts: Children<Outcomes<HandlerPhase>>;
  readonly #treesRefused: Inc;
  readonly #admissionWait: Children<Observe>;

  constructor(options: NodeMetricsOptions = {}) {
    const registers = [(this.registry = options.registry ?? new Registry())];
    const submitted = new FastCounter({
      name: 'coco_commands_submitted_total',
      help: 'Commands stored, by type; kind "root" for a submit, "child" for a parent\u2019s child.',
      labelNames: ['type', 'kind'],
      registers,
    });
    this.#submittedRoots = new Children((type) => submitted.child({ type, kind: 'root' }));
    this.#submittedChildren = new Children((type) => submitted.child({ type, kind: 'child' }));
    const ended = new FastCounter({
      name: 'coco_commands_ended_total',
      help: 'Commands whose end is durable, by type and outcome (succeeded, failed, cancelled).',
      labelNames: ['type', 'outcome'],
      registers,
    });
    this.#ended = new Children((type) => ({
      succeeded: ended.child({ type, outcome: 'succeeded' }),
      failed: ended.child({ type, outcome: 'failed' }),
      cancelled: ended.child({ type, outcome: 'cancelled' }),
    }));
    const durations = new FastHistogram({
      name: 'coco_command_duration_seconds',
      help: 'A command\u2019s life, from its creation (submit) to its end, by type.',
      labelNames: ['type'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.#durations = new Children((type) => durations.child({ type }));
    this.#endLatency = new FastHistogram({
      name: 'coco_command_end_latency_seconds',
      help: 'From the engine learning that a command\u2019s last task ended to the command\u2019s end being durable.',
      buckets: END_LATENCY_BUCKETS,
      registers,
    }).child();
    const calls = new FastCounter({
      name: 'coco_agent_calls_total',
      help: 'Calls to agents, by agent, call (startTasks, getStatuses, stopTasks, clearTasks, listTasks) and outcome (ok, timeout, error).',
      labelNames: ['agent', 'call', 'outcome'],
      registers,
    });
    this.#calls = new Children(
      (agent) =>
        new Children((call) => ({
          ok: calls.child({ agent, call, outcome: 'ok' }),
          timeout: calls.child({ agent, call, outcome: 'timeout' }),
          error: calls.child({ agent, call, outcome: 'error' }),
        })),
    );
    const callSeconds = new FastHistogram({
      name: 'coco_agent_call_duration_seconds',
      help: 'Time from a call to an agent to its answer or failure, by call.',
      labelNames: ['call'],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.#callSeconds = new Children((call) => callSeconds.child({ call }));
    this.#batchRows = new FastHistogram({
      name: 'coco_batch_rows',
      help: 'Rows (commands, tasks, undo steps) per batch the engine committed.',
      buckets: ROW_BUCKETS,
      registers,
    }).child();
    this.#applySeconds = new FastHistogram({
      name: 'coco_batch_apply_seconds',
      help: 'Time from a batch\u2019s flush to the store\u2019s answer (waiting behind earlier batches included).',
      buckets: APPLY_BUCKETS,
      registers,
    }).child();
    const storeErrors = new FastCounter({
      name: 'coco_store_errors_total',
      help: 'Failed store writes (retried), by store: "engine" (a batch) or "jobs" (the job view).',
      labelNames: ['store'],
      registers,
    });
    this.#storeErrors = new Children((store) => storeErrors.child({ store }));
    // Both shown from the first scrape, at 0.
    this.#storeErrors.get('engine');
    this.#storeErrors.get('jobs');
    const engineErrors = new FastCounter({
      name: 'coco_engine_errors_total',
      help: 'Other errors inside the engine, by where: "command" (advancing one), "lease" (lost), "listener" (an event listener threw).',
      labelNames: ['where'],
      registers,
    });
    this.#engineErrors = new Children((where) => engineErrors.child({ where }));
    this.#loadFailures = new FastCounter({
      name: 'coco_load_failures_total',
      help: 'Stored rows or commands that could not be loaded (load-failed events).',
      registers,
    }).child();
    const timeouts = new FastCounter({
      name: 'coco_handler_timeouts_total',
      help: 'Handler runs that passed their time limit (HANDLER_TIMEOUT), by command type and phase (stage, success, undo, failure).',
      labelNames: ['type', 'phase'],
      registers,
    });
    this.#handlerTimeouts = new Children((type) => ({
      stage: timeouts.child({ type, phase: 'stage' }),
      success: timeouts.child({ type, phase: 'success' }),
      undo: timeouts.child({ type, phase: 'undo' }),
      failure: timeouts.child({ type, phase: 'failure' }),
    }));
    this.#treesRefused = new FastCounter({
      name: 'coco_trees_refused_total',
      help: 'Trees of commands whose changes the store refused on their own (marked held; the engine halted: TREE_REFUSED).',
      registers,
    }).child();
    const admissionWait = new FastHistogram({
      name: 'coco_admission_wait_seconds',
      help: 'How long a task of a limited agent waited for a slot (queued → admitted; 0 when a slot was free), by agent.',
      labelNames: ['agent'],
      buckets: WAIT_BUCKETS,
      registers,
    });
    this.#admissionWait = new Children((agent) => admissionWait.child({ agent }));
    let snapshot: { engine: Engine; at: number; figures: EngineFigures } | null = null;
    const source = (): ScrapeSource => {
      const { engine, monitor, slots, pools } = this.#source;
      if (!engine) return { engine, monitor, slots, pools, figures: null };
      const now = performance.now();
      if (snapshot?.engine !== engine || now - snapshot.at > FIGURES_TTL_MS)
        snapshot = { engine, at: now, figures: engine.figures() };
      return { engine, monitor, slots, pools, figures: snapshot.figures };
    };
    // Counters read at the scrape from the current engine (or broker), plus what those of
    // earlier generations had counted at their detach, so that they never go back.
    const counted = (name: string, help: string, total: () => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect(this: Counter) {
          this.reset();
          this.inc(total());
        },
      });
    };
    const polls = this.#pollsBefore;
    const pollCount = (which: 'polls' | 'tasks') => () =>
      polls[which] + (this.#source.engine?.pollCounts()[which] ?? 0);
    counted(
      'coco_agent_polls_total',
      'Status polls of agents: one per agent with tasks to look at, per poll cycle.',
      pollCount('polls'),
    );
    counted(
      'coco_agent_polled_tasks_total',
      'Task ids the status polls asked about (tasks whose changes an agent pushes are asked only when due).',
      pollCount('tasks'),
    );
    const slots = this.#slotsBefore;
    const slotCount = (which: 'waited' | 'refused') => () =>
      slots[which] + (this.#source.slots?.callSlots()[which] ?? 0);
    counted(
      'coco_broker_calls_waited_total',
      'Calls to agents that waited for one of the broker\u2019s call slots (HTTP agents only).',
      slotCount('waited'),
    );
    counted(
      'coco_api_streams_dropped_total',
      'Event streams (/v1/events, /v1/jobs/:id/events) dropped because their client left 4 MiB unread (a frozen tab or process).',
      () => this.#streams?.dropped ?? 0,
    );
    const streamsOpen = (): number => this.#streams?.size ?? 0;
    new Gauge({
      name: 'coco_api_streams',
      help: 'Event streams open on the API now.',
      registers,
      collect() {
        this.set(streamsOpen());
      },
    });
    counted(
      'coco_broker_calls_refused_total',
      'Calls to agents never sent: they waited their whole budget for a call slot (BROKER_SATURATED; the node is behind, the agent was not asked).',
      slotCount('refused'),
    );
    for (const g of SCRAPED) {
      new Gauge({
        name: g.name,
        help: g.help,
        labelNames: g.labelNames,
        registers,
        collect() {
          this.reset();
          g.collect(source(), (labels, value) => this.set(labels, value));
        },
      });
    }
  }

  /**
   * Follows a node's retention schedule: registers the `coco_retention_…` metrics (a node with
   * retention off has none) and reads its counts at each scrape. Once per registry.
   */
  followRetention(retention: RetentionSource): void {
    const counts = retention.counts;
    const registers = [this.registry];
    const byLabel = (
      name: string,
      help: string,
      label: string,
      read: () => Readonly<Record<string, number>>,
    ): void => {
      new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect(this: Counter<string>) {
          this.reset();
          for (const [key, n] of Object.entries(read())) this.inc({ [label]: key }, n);
        },
      });
    };
    byLabel(
      'coco_retention_passes_total',
      'Retention passes by outcome: done (nothing left), more (cut short by its budget or a stop: the next pass goes on), failed (logged), skipped (no engine running: a rejoin).',
      'outcome',
      () => counts.passes,
    );
    byLabel(
      'coco_retention_deleted_total',
      'Rows retention deleted: the trees, their commands and tasks, and the job view\u2019s jobs.',
      'what',
      () => counts.deleted,
    );
    new Gauge({
      name: 'coco_retention_last_success_timestamp_seconds',
      help: 'When the last retention pass that did not fail ended (Unix seconds); 0 until one has.',
      registers,
      collect() {
        this.set((counts.lastSuccessAt ?? 0) / 1000);
      },
    });
  }

  /**
   * Counts a configuration reload (`coco serve` on SIGHUP): `ok` when every part of it took
   * (`coco_config_reloads_total`, `coco_config_last_reload_successful`). Registered at the first
   * reload: a node never reloaded has neither.
   */
  configReloaded(ok: boolean): void {
    if (this.#reloads === null) {
      const registers = [this.registry];
      const counts = { ok: 0, failed: 0, lastOk: true };
      new Counter({
        name: 'coco_config_reloads_total',
        help: 'Configuration reloads (SIGHUP) by outcome: ok, or failed (the file did not parse, or a part of it was refused: logged; what was in force stays).',
        labelNames: ['outcome'],
        registers,
        collect(this: Counter<string>) {
          this.reset();
          this.inc({ outcome: 'ok' }, counts.ok);
          this.inc({ outcome: 'failed' }, counts.failed);
        },
      });
      new Gauge({
        name: 'coco_config_last_reload_successful',
        help: 'Whether the last configuration reload took whole (1) or not (0): the file on disk and what runs may differ.',
        registers,
        collect() {
          this.set(counts.lastOk ? 1 : 0);
        },
      });
      this.#reloads = counts;
    }
    if (ok) this.#reloads.ok++;
    else this.#reloads.failed++;
    this.#reloads.lastOk = ok;
  }

  /**
   * Follows the API's rate limit (`api.rateLimit`): registers `coco_api_rate_limited_total` (a
   * node without a limit has none) and reads its count at each scrape. Once per registry.
   */
  followRateLimit(source: { readonly refused: number }): void {
    new Counter({
      name: 'coco_api_rate_limited_total',
      help: 'API calls refused with 429 RATE_LIMITED: their token had used up api.rateLimit in its window.',
      registers: [this.registry],
      collect(this: Counter) {
        this.reset();
        this.inc(source.refused);
      },
    });
  }

  /** Follows the API's event streams (`coco_api_streams`, `…_dropped_total`). */
  followStreams(streams: StreamSource): void {
    this.#streams = streams;
  }

  /**
   * Follows an engine (and its job monitor and broker): counts from their events from now on,
   * and the scrape reads them. A node attaches each generation's engine; returns the detach
   * function. `slots`: the generation's broker, when it bounds its calls (see {@link hasCallSlots});
   * `pools`: its stores, when they have connection pools (see {@link hasPool}).
   */
  attach(
    engine: Engine,
    monitor: JobMonitor | null = null,
    slots: CallSlotSource | null = null,
    pools: Pools = {},
  ): () => void {
    const last = this.#lastDetached;
    if (slots !== null && last?.slots === slots) {
      // The same broker again: it still counts what it counted, so it leaves the base.
      this.#slotsBefore.waited -= last.waited;
      this.#slotsBefore.refused -= last.refused;
    }
    this.#lastDetached = null;
    this.#source = { engine, monitor, slots, pools };
    const off = [
      engine.on('committed', (batch) => this.#committed(batch)),
      engine.on('ended', (c) => this.#commandEnded(c)),
      engine.on('agent-call', (call) => this.#agentCall(call)),
      engine.on('batch', (b) => this.#batch(b)),
      engine.on('load-failed', () => this.#loadFailures.inc()),
      engine.on('handler-timeout', (t) => this.#handlerTimeouts.get(t.type)[t.phase].inc()),
      engine.on('trees-refused', (r) => this.#treesRefused.inc(r.rootIds.length)),
      engine.on('admitted', (a) =>
        this.#admissionWait.get(a.agentId).observe(Math.max(0, a.waitedMs) / 1000),
      ),
      engine.on('error', ({ context }) => {
        if (context === 'commit') this.#storeErrors.get('engine').inc();
        else this.#engineErrors.get(context.split(' ', 1)[0] ?? context).inc();
      }),
    ];
    if (monitor) off.push(monitor.on('error', () => this.#storeErrors.get('jobs').inc()));
    return () => {
      for (const f of off) f();
      const counts = engine.pollCounts();
      this.#pollsBefore.polls += counts.polls;
      this.#pollsBefore.tasks += counts.tasks;
      if (slots !== null) {
        const { waited, refused } = slots.callSlots();
        this.#slotsBefore.waited += waited;
        this.#slotsBefore.refused += refused;
        this.#lastDetached = { slots, waited, refused };
      }
      if (this.#source.engine === engine)
        this.#source = { engine: null, monitor: null, slots: null, pools: {} };
    };
  }

  /** The Prometheus text of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of {@link NodeMetrics.text}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  #committed(batch: ChangeBatch): void {
    for (const c of batch.commandInserts)
      (c.parentId === null ? this.#submittedRoots : this.#submittedChildren).get(c.type).inc();
  }

  #commandEnded(c: EndedCommand): void {
    const type = c.type.name;
    this.#ended.get(type)[c.status as CommandOutcome].inc();
    if (c.endedAt !== null) this.#durations.get(type).observe((c.endedAt - c.createdAt) / 1000);
    if (c.lastTaskEndAt >= 0)
      this.#endLatency.observe((performance.now() - c.lastTaskEndAt) / 1000);
  }

  #agentCall(e: AgentCallEvent): void {
    this.#calls.get(e.agentId).get(e.call)[e.outcome].inc();
    this.#callSeconds.get(e.call).observe(e.ms / 1000);
  }

  #batch(b: BatchEvent): void {
    this.#batchRows.observe(b.rows);
    this.#applySeconds.observe(b.applyMs / 1000);
  }
}

/** Creates a node's metrics on a registry of its own (see {@link NodeMetrics}). */
export function createNodeMetrics(options: NodeMetricsOptions = {}): NodeMetrics {
  return new NodeMetrics(options);
}
