/**
 * The engine: the public face of coco's coordinator. It wires the store, the agent broker and
 * the clock (the ports) to the coordinator, committer and dispatcher, resumes every unfinished
 * command on start, and offers submit / cancel / queries.
 *
 * @module
 */
import type { CommandType } from '../core/command-type.js';
import { CocoError, ErrorCode, ValidationError, type ErrorInfo } from '../core/errors.js';
import { raceUntil, timeLimit } from '../core/clock.js';
import { CommandRegistry } from '../core/registry.js';
import { isTerminal } from '../core/states.js';
import type { AgentRecord, CommandRecord } from '../core/records.js';
import { emptyBatch, type CommandPage, type CommandQuery, type PausedType } from '../store/port.js';
import { isSharedStore, type SharedStore } from '../store/shared-port.js';
import { adopt } from './adopt.js';
import { activeRows } from './recovery.js';
import type { AdmissionLimits, AgentAdmissionStats } from './admission.js';
import type { RootTypeStats } from './root-admission.js';
import type { PauseOptions } from './pauses.js';
import { assertLeaseFits } from './cluster.js';
import type { Coordinator } from './coordinator.js';
import { EngineEvents, type EngineEventMap, type EngineEventName } from './events.js';
import {
  compileOptions,
  parseLimits,
  type CompiledEngineOptions,
  type EngineOptions,
} from './options.js';
import { pruneTrees, type OnPruned, type PruneRequest, type PruneTotals } from './retention.js';
import {
  canonicalJson,
  checkIdempotencyKey,
  parseParams,
  prepareMany,
  submittableType,
} from './submission.js';
import { buildRuntime, type EngineRuntime } from './wiring.js';
import { outageText } from './committer.js';
import { inspectCommand, type CommandDetails } from './inspect.js';

export { outageDetail, outageReason } from './committer.js';
export type { CommandDetails } from './inspect.js';

/** Options of {@link Engine.submit}. */
export interface SubmitOptions {
  /** Submitting again with the same key returns the first command instead of a new one. */
  readonly idempotencyKey?: string;
  /**
   * Admission priority of the command's tasks (and its children's, unless they set their own):
   * higher first among tasks queued for a limited agent (engine/admission.ts). An integer.
   * @default 0
   */
  readonly priority?: number;
}

/** What {@link Engine.start} found and did. */
export interface StartReport {
  /** Commands resumed. */
  readonly resumed: number;
  /** Rows that could not be read and commands that could not be loaded (`load-failed` events). */
  readonly loadFailed: number;
  /** Time from the start call until polling resumed. */
  readonly durationMs: number;
  /**
   * Of which: reading the unfinished work from the store, the live commands built as its rows
   * come; then the rest of the rebuild (children linked, commands resumed).
   */
  readonly loadMs: number;
  readonly rebuildMs: number;
}

/** Figures counted when they are asked for (a metrics scrape): see {@link Engine.figures}. */
export interface EngineFigures {
  /** Commands in memory that have not ended, by status (held ones included). */
  readonly inFlight: Readonly<Record<'pending' | 'waiting' | 'aborting' | 'compensating', number>>;
  /** Of the commands in memory: those held because they could not be loaded. */
  readonly held: number;
  /** Tasks being polled on their agents. */
  readonly watchedTasks: number;
  /** Each agent the engine calls, and whether its calls succeed. */
  readonly agents: readonly { readonly agentId: string; readonly up: boolean }[];
  /** Group commit totals since start (see {@link Engine.stats}). */
  readonly commits: {
    readonly batches: number;
    readonly commands: number;
    readonly tasks: number;
    readonly applyMs: number;
  };
  /**
   * How long the oldest batch not yet committed has waited for the store, in ms (0: none
   * waits); from the tuning `storeOutageMs` on, the store counts as out ({@link Engine.storeOutage}).
   */
  readonly storeWaitMs: number;
}

/** Where an engine is in its life: it runs once, from `new` to `stopped`. */
export type EngineState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * How often `waitFor` re-reads a command another node runs (shared stores): a quarter second is
 * prompt for a caller waiting on long work, and one indexed read per waiter.
 */
const WAIT_POLL_MS = 250;

/** The command an idempotency key stands for: its type and parameters, to compare a reuse with. */
interface KeyedSubmit {
  readonly id: number;
  readonly type: string;
  /** The parameters as canonical JSON text. */
  readonly params: string;
  /** This call created it. */
  readonly created?: true;
}

/**
 * A store out: it has taken no write for at least the tuning `storeOutageMs` — its oldest
 * batch not yet committed was sent that long ago, each try failing or never answered.
 */
export interface StoreOutage {
  /** When that batch was first sent (ms, the engine's clock). */
  readonly since: number;
  /** How long the store has taken no write, in ms. */
  readonly forMs: number;
  /**
   * The latest failure since the last commit, or null: no answer at all (a database down behind
   * the PostgreSQL store, which reconnects and tries again itself for as long as it is open).
   */
  readonly last: ErrorInfo | null;
}

/** The coordinator engine. Create with {@link createEngine}, then {@link Engine.start}. */
export class Engine {
  /** Engine events (committed batches, progress, load failures, agent state). */
  readonly events = new EngineEvents();
  readonly #o: CompiledEngineOptions;
  readonly #registry: CommandRegistry;
  #state: EngineState = 'new';
  /** Why the engine halted (see the `halted` event), or null. */
  #haltError: ErrorInfo | null = null;
  /** The running parts, built once at start. */
  #run: EngineRuntime | null = null;
  #storeId = '';
  #heartbeat: { cancel(): void } | null = null;
  /** A started engine keeps the process alive until it is stopped (its own timers do not). */
  #keepAlive: ReturnType<typeof setInterval> | null = null;
  readonly #keys = new Map<string, Promise<KeyedSubmit>>();
  /** The admission limits in force (the options', until {@link Engine.setLimits}). */
  #limits: AdmissionLimits;

  constructor(options: EngineOptions) {
    this.#o = compileOptions(options);
    this.#registry = new CommandRegistry(this.#o.commands);
    this.#limits = this.#o.limits;
  }

  /** Where the engine is in its life; only a `running` engine takes and does work. */
  get state(): EngineState {
    return this.#state;
  }

  /**
   * Why the engine halted on its own (a shared store's lease lost, an idempotency key taken by
   * another node meanwhile: the `halted` event), or null if it did not.
   */
  get haltError(): ErrorInfo | null {
    return this.#haltError;
  }

  /**
   * The store's outage, while a running engine's store has taken no write for at least the
   * tuning `storeOutageMs`; null otherwise. Meanwhile new submissions and cancellations are
   * refused with a retryable `STORE_FAILED`, and the node's readiness reports it.
   */
  get storeOutage(): StoreOutage | null {
    const committer = this.#state === 'running' ? this.#run?.committer : undefined;
    const since = committer?.owedSince ?? null;
    if (since === null) return null;
    const forMs = this.#o.clock.now() - since;
    return forMs >= this.#o.tuning.storeOutageMs
      ? { since, forMs, last: committer!.lastFailure }
      : null;
  }

  /**
   * Refuses new work while the store is out (see {@link Engine.storeOutage}), before anything of
   * it is created: accepted, it would wait in memory for as long as the outage lasts.
   */
  #refuseDuringOutage(what: string): void {
    const out = this.storeOutage;
    if (!out) return;
    throw new CocoError(
      ErrorCode.StoreFailed,
      `${outageText(out.forMs, out.last)}; the ${what} was not taken and nothing of it was created: try again once the store takes writes`,
      { retryable: true, details: { noWriteForMs: out.forMs, lastError: out.last } },
    );
  }

  /** This node's id. */
  get nodeId(): string {
    return this.#o.nodeId;
  }

  /** The store's id (prefix of this store's task ids on agents). Known after start. */
  get storeId(): string {
    return this.#storeId;
  }

  /** Subscribes to an engine event; returns the unsubscribe function. */
  on<K extends EngineEventName>(
    event: K,
    listener: (payload: EngineEventMap[K]) => void,
  ): () => void {
    return this.events.on(event, listener);
  }

  /**
   * Opens the store, resumes every unfinished command and starts polling agents. A started
   * engine keeps the process alive until {@link Engine.stop}.
   */
  async start(): Promise<StartReport> {
    if (this.#state !== 'new')
      throw new CocoError(ErrorCode.EngineStopped, `the engine cannot start: it is ${this.#state}`);
    const { store, logger } = this.#o;
    if (isSharedStore(store)) assertLeaseFits(store.leaseMs, this.#o.tuning.agentCallTimeoutMs);
    this.#state = 'starting';
    const began = performance.now();
    const identity = await store.open(this.#o.nodeId);
    this.#storeId = identity.storeId;
    const run = await buildRuntime(
      this.#o,
      this.#registry,
      this.events,
      identity.storeId,
      (error) => void this.#halt(error),
    );
    this.#run = run;
    const { dispatcher } = run;
    // Limits changed before the start (setLimits) apply from the first task loaded.
    if (this.#limits !== this.#o.limits) {
      run.coordinator.tasks.admission.setLimits(this.#limits);
      run.coordinator.roots.setLimits(this.#limits);
    }

    // Paused types hold their queued roots from the first one loaded.
    await run.pauses.read();
    const loadBegan = performance.now();
    const adopted = await adopt(run.coordinator, activeRows(store), await store.heldTrees());
    const loadMs = adopted.readMs;
    const rebuildMs = performance.now() - loadBegan - loadMs;
    await dispatcher
      .discover()
      .catch((error: unknown) => logger.warn({ error }, 'could not list agents'));
    this.#state = 'running';
    // Only the 2^30 ms period matters here: the interval exists to hold the event loop open.
    this.#keepAlive = setInterval(() => undefined, 2 ** 30);
    if (run.cluster) await run.cluster.start();
    else this.#beat();
    const report = {
      resumed: adopted.resumed,
      loadFailed: adopted.failed,
      durationMs: performance.now() - began,
      loadMs,
      rebuildMs,
    };
    logger.info(report, 'engine started');
    return report;
  }

  /**
   * This node's memory is no longer the truth — it lost its lease on a shared store (another node
   * took its work over), a batch of it was refused for an idempotency key another node took
   * meanwhile, or trees whose changes the store refused were marked held — so it stops at once,
   * writing nothing more; what it had stored resumes elsewhere (or in a rejoined node), as after
   * a crash.
   */
  async #halt(error: CocoError): Promise<void> {
    if (this.#state !== 'running' && this.#state !== 'starting') return;
    this.#haltError = error.toInfo();
    const lease = error.code === ErrorCode.LeaseLost;
    this.#o.logger.error(
      { error: error.toInfo() },
      lease
        ? 'lease lost: this node stops'
        : error.code === ErrorCode.TreeRefused
          ? 'trees of commands refused by the store are held: this node stops (it restarts without them)'
          : 'a batch was refused for good (an idempotency key another node took meanwhile): this node stops',
    );
    this.events.emit('error', { error: error.toInfo(), context: lease ? 'lease' : 'commit' });
    this.#state = 'stopping';
    if (this.#keepAlive) clearInterval(this.#keepAlive);
    this.#keepAlive = null;
    const run = this.#run;
    run?.coordinator.stop();
    run?.dispatcher.stopAll();
    run?.stopInfo();
    run?.committer.stop(error);
    await this.#release(run, false).catch(() => undefined);
    this.#state = 'stopped';
    this.events.emit('halted', { error: error.toInfo() });
  }

  #beat(): void {
    this.#heartbeat = this.#o.clock.setTimer(this.#o.tuning.heartbeatMs, () => {
      if (this.#state !== 'running') return;
      this.#o.store
        .heartbeat(this.#o.nodeId)
        .catch((error: unknown) => this.#o.logger.warn({ error }, 'store heartbeat failed'));
      this.#beat();
    });
  }

  /** The running parts; throws `ENGINE_STOPPED` unless the engine runs. */
  #running(): EngineRuntime {
    if (this.#state !== 'running' || !this.#run)
      throw new CocoError(ErrorCode.EngineStopped, `the engine is ${this.#state}; start it first`);
    return this.#run;
  }

  /**
   * Submits a command. Resolves with its id once it is durable. Invalid parameters reject with a
   * `PARAMETERS_INVALID` {@link ValidationError} naming each field, a child-only type with
   * `COMMAND_TYPE_NOT_SUBMITTABLE`, and nothing is stored. While the store is out
   * ({@link Engine.storeOutage}) it is refused at once with a retryable `STORE_FAILED`.
   */
  async submit<P, I>(
    type: CommandType<P, I>,
    params: NoInfer<I>,
    options: SubmitOptions = {},
  ): Promise<{ id: number; existing?: true }> {
    const { coordinator: co, committer } = this.#running();
    this.#refuseDuringOutage('submission');
    const registered = submittableType(this.#registry, type.name, type.version);
    const parsed = await parseParams(registered, params);
    const key = options.idempotencyKey ?? null;
    const priority = checkPriority(options.priority);
    if (key !== null) {
      checkIdempotencyKey(key);
      const mine = { type: registered.name, params: canonicalJson(params) };
      const known = this.#keys.get(key);
      const pending =
        known ??
        (async (): Promise<KeyedSubmit> => {
          const store = this.#o.store;
          const existing = await store.getCommandByKey(key);
          if (existing) return keyHolder(existing, registered);
          if (isSharedStore(store) && store.insertKeyedRoot)
            return this.#submitAlone(store, co, registered, params, parsed, key, priority, mine);
          const c = co.createRoot(registered, params, parsed, key, priority);
          await committer.durable(c);
          return { id: c.id, type: mine.type, params: mine.params, created: true };
        })();
      if (!known) this.#keys.set(key, pending);
      let first: KeyedSubmit;
      try {
        first = await pending;
      } finally {
        if (!known) this.#keys.delete(key);
      }
      if (first.created === true && !known) return { id: first.id };
      if (first.type !== mine.type || first.params !== mine.params)
        throw new CocoError(
          ErrorCode.IdempotencyConflict,
          `the idempotency key "${key}" was used by command ${first.id} with ${first.type === mine.type ? 'other parameters' : `another type (${first.type})`}; use a new key for a new command`,
          { details: { commandId: first.id } },
        );
      return { id: first.id, existing: true };
    }
    const c = co.createRoot(registered, params, parsed, null, priority);
    // As in submitMany: durability asked first, then stepped now (a burst of single submits made
    // in one turn otherwise creates every root before the first is stepped and sent).
    const durable = committer.durable(c);
    co.stepReady();
    await durable;
    return { id: c.id };
  }

  /**
   * A keyed root on a shared store that stores one alone (`SharedStore.insertKeyedRoot`): stored
   * before it runs, unless another node took the key meanwhile — one command per key, and no
   * batch of this node ever meets another's key. Resolves with the command holding the key.
   */
  async #submitAlone(
    store: SharedStore,
    co: Coordinator,
    registered: CommandType,
    params: unknown,
    parsed: unknown,
    key: string,
    priority: number,
    mine: { readonly type: string; readonly params: string },
  ): Promise<KeyedSubmit> {
    const c = co.buildRoot(registered, params, parsed, key, priority);
    // Stored waiting for admission when roots are limited (adoptRoot decides): a crash before its
    // first batch leaves it queued, not admitted past the limit.
    if (co.roots.limited) c.queuedSince = c.createdAt;
    const record = c.toRecord();
    try {
      if (!(await store.insertKeyedRoot!(this.#o.nodeId, record))) {
        const taken = await store.getCommandByKey(key);
        if (taken === null)
          throw new CocoError(
            ErrorCode.StoreFailed,
            `the idempotency key "${key}" was taken and its command is gone (pruned?): try again`,
            { retryable: true },
          );
        // Else this very row, stored by a try whose answer was lost.
        if (taken.id !== c.id) {
          co.dropRoot(c);
          return keyHolder(taken, registered);
        }
      }
    } catch (error) {
      co.dropRoot(c);
      throw error;
    }
    c.persisted = true;
    // Who follows the inserts (the job view, the metrics) hears of it before its first update.
    if (this.events.has('committed'))
      this.events.emit('committed', { ...emptyBatch(), commandInserts: [record] });
    co.adoptRoot(c);
    co.stepReady();
    return { id: c.id, type: mine.type, params: mine.params, created: true };
  }

  /**
   * Submits many commands at once: all are validated first (a bad one rejects the whole call
   * with an error naming its index and field, and nothing is stored), then stored in one batch.
   * Resolves with their ids, in order, once durable. Refused as {@link Engine.submit} while the
   * store is out.
   */
  async submitMany(
    items: readonly { readonly type: CommandType<unknown, unknown>; readonly params: unknown }[],
  ): Promise<{ id: number }[]> {
    const { coordinator: co, committer } = this.#running();
    this.#refuseDuringOutage('submission');
    const prepared = await prepareMany(this.#registry, items);
    const roots = prepared.map((p) => co.createRoot(p.type, p.raw, p.parsed, null));
    // Roots are batched in creation order: the last one durable means all are. Asked before
    // they are stepped and sent, so the answer rides on the batch that holds the last root (asked
    // after, it would wait for the next batch, and an idle store would get one just for it).
    const durable = committer.durable(roots.at(-1) ?? null);
    // Stepped now, not after every other submission of this turn (see Coordinator.stepReady).
    co.stepReady();
    await durable;
    return roots.map((c) => ({ id: c.id }));
  }

  /**
   * Cancels a command and its subtree: stops its tasks, cancels its children, runs compensation,
   * and ends it as cancelled. Resolves once the request is durable. Cancelling a command that is
   * already failing or cancelling changes nothing. On a shared store, a command another node runs
   * is cancelled by that node: the request is stored and the node signalled.
   *
   * A command held because its type or parameters could not be loaded is ended: it fails with
   * `COMMAND_UNLOADABLE` naming why, after its tasks are stopped, its children cancelled, and its
   * undo steps and `onFailure` run with what stored data allows (none of its code if its type is
   * unknown here). A command a row of which cannot be read is refused with `CORRUPT_ROW`: the
   * engine cannot write what it cannot read. While the store is out ({@link Engine.storeOutage})
   * the request is refused at once with a retryable `STORE_FAILED`.
   */
  async cancel(id: number): Promise<void> {
    const { coordinator: co, committer } = this.#running();
    this.#refuseDuringOutage('cancellation');
    const c = co.live.get(id);
    if (!c) {
      const unreadable = co.unloaded.get(id);
      if (unreadable)
        throw new CocoError(
          ErrorCode.CorruptRow,
          `command ${id} cannot be ended here: ${unreadable.message}; repair or remove that row, then restart`,
          { details: { commandId: id, cause: unreadable } },
        );
      // Another node runs it: store the request and signal that node, which cancels it.
      if (isSharedStore(this.#o.store) && (await this.#o.store.requestCancel(id))) return;
      const record = await this.#o.store.getCommand(id);
      if (!record) throw new CocoError(ErrorCode.CommandNotFound, `command ${id} does not exist`);
      if (isTerminal(record.status))
        throw new CocoError(
          ErrorCode.CommandState,
          `command ${id} has already ended (${record.status})`,
        );
      // Run by another node and already failing or cancelling: nothing to change.
      if (isSharedStore(this.#o.store) && record.owner !== this.#o.nodeId) return;
      throw new CocoError(
        ErrorCode.CommandState,
        `command ${id} is not loaded by this engine (see load-failed events)`,
      );
    }
    if (!co.cancel(c))
      throw new CocoError(ErrorCode.CommandState, `command ${id} has already ended (${c.status})`);
    await committer.durable(c);
  }

  /**
   * Runs again a tree held because the store refused its changes (`TREE_REFUSED`; `id`: any
   * command of it, held on this node), once its cause is gone: its mark is deleted and its
   * commands go on from what was stored. Refused again, it is held again. Resolves with the tree's
   * root and how many of its commands were held. `COMMAND_STATE` for a command not held so here
   * (one whose type or parameters could not be loaded cannot be released: a cancel ends it).
   */
  async release(id: number): Promise<{ readonly rootId: number; readonly released: number }> {
    const { coordinator: co } = this.#running();
    this.#refuseDuringOutage('release');
    const c = co.live.get(id);
    if (!c?.held || c.loadError?.code !== ErrorCode.TreeRefused) {
      const record = c ? null : await this.#o.store.getCommand(id);
      if (!c && !record)
        throw new CocoError(ErrorCode.CommandNotFound, `command ${id} does not exist`);
      // On a shared store, the node that runs its tree holds it.
      if (record?.owner && record.owner !== this.#o.nodeId && !isTerminal(record.status))
        throw new CocoError(
          ErrorCode.CommandState,
          `command ${id} is run by node ${record.owner}: release it through that node`,
          { details: { commandId: id, owner: record.owner } },
        );
      throw new CocoError(
        ErrorCode.CommandState,
        `command ${id} is not held on this node for a tree the store refused` +
          (c?.held
            ? ` (${c.loadError?.message ?? 'it could not be loaded'}: a cancel ends it)`
            : ''),
      );
    }
    await this.#o.store.releaseTree(c.rootId);
    const released = co.releaseRefused(c.rootId);
    this.#o.logger.warn({ commandId: id, rootId: c.rootId, released }, 'refused tree released');
    return { rootId: c.rootId, released };
  }

  /** The stored (durable) state of a command, or null. */
  async get(id: number): Promise<CommandRecord | null> {
    return this.#o.store.getCommand(id);
  }

  /**
   * Links a rerun's root to the ended root it ran again (the API's rerun does, once the rerun is
   * submitted): a command's detail then names both ways ({@link CommandDetails}' `reruns`). A
   * root linked already keeps its first link.
   */
  async linkRerun(rootId: number, rerunOf: number): Promise<void> {
    this.#running();
    await this.#o.store.linkRerun(rootId, rerunOf, this.#o.clock.now());
  }

  /**
   * Stored commands matching a query, newest first. A row that cannot be read does not fail the
   * list: it is reported in the page's `unreadable`, naming the row and why.
   */
  async list(query: CommandQuery = {}): Promise<CommandPage> {
    return this.#o.store.listCommands(query);
  }

  /** A command with its tasks, undo steps and children, as stored (see inspect.ts). */
  async inspect(id: number): Promise<CommandDetails | null> {
    return inspectCommand(this.#o.store, this.#run?.coordinator, id);
  }

  /**
   * Resolves with the stored command once it has ended (durably). On a shared store, a command
   * another node runs is awaited by reading the store. A command this engine ran whose tree
   * retention pruned once its end was durable (a very short `maxAge`) is answered from the
   * engine's own copy, as it was stored.
   */
  async waitFor(id: number): Promise<CommandRecord> {
    const { coordinator: co, committer } = this.#running();
    const c = co.live.get(id);
    if (c && !c.terminal) await co.whenEnded(c);
    else if (c) await committer.durable(c);
    let record = await this.#o.store.getCommand(id);
    if (!record && c?.terminal) record = c.toRecord();
    if (!record) throw new CocoError(ErrorCode.CommandNotFound, `command ${id} does not exist`);
    // On a shared store another node may run it: its end shows in the store.
    while (
      !isTerminal(record.status) &&
      isSharedStore(this.#o.store) &&
      this.#state === 'running'
    ) {
      await new Promise((resolve) => this.#o.clock.setTimer(WAIT_POLL_MS, () => resolve(null)));
      record = (await this.#o.store.getCommand(id)) ?? record;
    }
    if (!isTerminal(record.status))
      throw new CocoError(
        ErrorCode.CommandState,
        `command ${id} is ${record.status} but not loaded by this engine`,
      );
    return record;
  }

  /**
   * Retention: deletes the trees whose root ended at least `olderThanMs` ago and none of whose
   * commands is active, with their tasks and undo steps, in bounded batches until none remain or
   * the budget is spent (`more`: call again). `onBatch` hears of each batch (the job view prunes
   * the same roots). Goes through this engine's store: on SQLite, its single writer. See
   * retention.ts.
   */
  async prune(request: PruneRequest, onBatch?: OnPruned): Promise<PruneTotals> {
    this.#running();
    return pruneTrees(this.#o.store, request, this.#o.clock.now(), async (batch) => {
      if (request.dryRun !== true) this.events.emit('pruned', { rootIds: batch.rootIds });
      await onBatch?.(batch);
    });
  }

  /** Agents as the engine last saw them (address, up/down, boot id, last seen). */
  async agents(): Promise<AgentRecord[]> {
    return this.#o.store.listAgents();
  }

  /**
   * Forgets an agent taken out of service: its row is deleted, so that {@link agents} no longer
   * lists it, and a broker that still follows it (retired by a reload) drops it. Refused with
   * `AGENT_IN_USE` while this engine's broker is configured for it or while this engine has tasks
   * in flight there; `NOT_FOUND` when neither the store nor the broker knows it. Another node that
   * names it, or follows it, saves its row again at its next change: forget it once no node uses
   * it.
   */
  async forgetAgent(id: string): Promise<void> {
    const { agentRows, coordinator, dispatcher } = this.#running();
    if ((await this.configuredAgents()).includes(id))
      throw new CocoError(
        ErrorCode.AgentInUse,
        `agent "${id}" is configured on this node: remove it from the configuration and reload ` +
          '(it is then retired), then forget it once it holds no task of this node',
        { details: { agentId: id } },
      );
    // Running tasks, and those being started, stopped or cleared, or queued for admission there.
    const queued = coordinator.tasks.admission.stats().find((a) => a.agentId === id)?.queued ?? 0;
    if (dispatcher.holdsWork(id) || queued > 0) {
      const inFlight = this.tasksInFlight().get(id) ?? 0;
      throw new CocoError(
        ErrorCode.AgentInUse,
        `agent "${id}" still has work of this node (${inFlight} task(s) in flight, ${queued} queued, ` +
          'or tasks being started, stopped or cleared): forget it once it has ended',
        { details: { agentId: id, tasksInFlight: inFlight, queued } },
      );
    }
    // A retired agent the broker still follows would write its row again at its next change;
    // its news already received goes with the row (not written after the delete).
    const dropped = (await this.#o.agents.dropRetired?.(id)) ?? false;
    if (!(await agentRows.delete(id)) && !dropped)
      throw new CocoError(ErrorCode.NotFound, `no agent "${id}" is known`, {
        details: { agentId: id },
      });
  }

  /**
   * The agents this engine's broker is configured for now. An agent retired by a reload (see
   * `HttpBroker.setAgents`) is not among them, though the work in flight there goes on.
   */
  async configuredAgents(): Promise<readonly string[]> {
    const broker = this.#o.agents;
    return (await broker.agentIds()).filter((id) => (broker.retiredAt?.(id) ?? null) === null);
  }

  /**
   * The agents this engine's broker still reaches though a reload retired them, with when (ms
   * since the epoch): drained — the trees submitted before go on there, a task of a tree
   * submitted since fails unsent (`AGENT_RETIRED`).
   */
  async retiredAgents(): Promise<ReadonlyMap<string, number>> {
    const broker = this.#o.agents;
    const retired = new Map<string, number>();
    if (broker.retiredAt === undefined) return retired;
    for (const id of await broker.agentIds()) {
      const at = broker.retiredAt(id);
      if (at !== null) retired.set(id, at);
    }
    return retired;
  }

  /**
   * Replaces the admission limits at run time (a configuration reload, the admin API). A lower
   * limit stops admissions until enough running tasks have ended — running tasks are never
   * stopped for it; a higher or removed limit admits queued tasks at once. Throws
   * `INVALID_OPTIONS` naming each bad field.
   */
  setLimits(limits: AdmissionLimits): void {
    this.#limits = parseLimits(limits);
    this.#run?.coordinator.tasks.admission.setLimits(this.#limits);
    this.#run?.coordinator.roots.setLimits(this.#limits);
    // On a shared store the agents' lease holders admit: those held here, at once.
    this.#run?.cluster?.limitsChanged();
  }

  /**
   * Pauses a command type (by its name or a former one), for every node of the store and across
   * restarts: its roots submitted from now on are stored and wait, queued, until it is resumed;
   * its roots already running go on, and children of every type run. Resolves with the pause in
   * force — the first one when the type was paused already. Throws `UNKNOWN_COMMAND_TYPE`,
   * `COMMAND_TYPE_NOT_SUBMITTABLE` (a child-only type has no roots), `PARAMETERS_INVALID` for a
   * reason over 500 characters.
   */
  pauseType(name: string, options: PauseOptions = {}): Promise<PausedType> {
    return this.#running().pauses.pause(name, options);
  }

  /**
   * Resumes a paused command type: its queued roots are admitted as the limits allow (at once on
   * this node; on the others of a shared store when signalled, at the latest by their next claim
   * tick). Resolves with the pause it ended, or null when the type was not paused.
   */
  resumeType(name: string): Promise<PausedType | null> {
    return this.#running().pauses.resume(name);
  }

  /** The paused command types this engine holds to, by name; empty while it does not run. */
  pausedTypes(): ReadonlyMap<string, PausedType> {
    return this.#run?.pauses.paused ?? new Map<string, PausedType>();
  }

  /**
   * The longest {@link stop} takes: running handlers are waited for `stopGraceMs`, then the
   * store's part for `stopTimeoutMs` (a supervisor's stop bound should be above it).
   */
  get stopBoundMs(): number {
    return this.#o.tuning.stopGraceMs + this.#o.tuning.stopTimeoutMs;
  }

  /** The admission limits in force. */
  get limits(): AdmissionLimits {
    return this.#limits;
  }

  /**
   * Per agent with a limit: its limit, tasks holding a slot, tasks queued (in all and per verb)
   * and the wait of the oldest — the queue-depth hook for metrics (wait times: `admitted`
   * events).
   */
  admissionStats(): AgentAdmissionStats[] {
    return this.#run?.coordinator.tasks.admission.stats() ?? [];
  }

  /**
   * Per command type with a root limit, running roots or waiting ones: its limit, the roots
   * holding a slot and those waiting (root limits, engine/root-admission.ts) — the queue depth
   * per type for metrics.
   */
  rootAdmissionStats(): RootTypeStats[] {
    return this.#run?.coordinator.roots.typeStats() ?? [];
  }

  /**
   * Whether roots are counted per type ({@link rootAdmissionStats}' `running`): only while a root
   * limit or a pause is set — untracked otherwise, as they cost nothing then — and from then on.
   */
  get rootsCounted(): boolean {
    return this.#run?.coordinator.roots.limited ?? false;
  }

  /**
   * This node's tasks in flight (started on their agent, not ended) per agent id; empty while
   * the engine does not run.
   */
  tasksInFlight(): Map<string, number> {
    return this.#run?.dispatcher.tasksByAgent() ?? new Map<string, number>();
  }

  /** Counters for monitoring and tests. */
  stats(): {
    liveCommands: number;
    watchedTasks: number;
    commits: { batches: number; commands: number; tasks: number; applyMs: number };
  } {
    const commits = this.#run?.committer.stats ?? { batches: 0, commands: 0, tasks: 0, applyMs: 0 };
    return {
      liveCommands: this.#run?.coordinator.live.size ?? 0,
      watchedTasks: this.#run?.dispatcher.watchedTasks ?? 0,
      commits: { ...commits },
    };
  }

  /**
   * The dispatcher's polls since start (one per agent per cycle) and the task ids they asked
   * about: with statuses pushed by the broker the second follows the tasks that need a look, not
   * the tasks in flight (measurements; zero before start).
   */
  pollCounts(): { polls: number; tasks: number } {
    return { ...(this.#run?.dispatcher.pollCounts() ?? { polls: 0, tasks: 0 }) };
  }

  /**
   * Figures for a metrics scrape, counted now by walking the live commands (one pass; call it
   * per scrape, not per change). Zero before start and after stop.
   */
  figures(): EngineFigures {
    const inFlight = { pending: 0, waiting: 0, aborting: 0, compensating: 0 };
    let held = 0;
    const run = this.#state === 'running' ? this.#run : null;
    if (run) {
      for (const c of run.coordinator.live.values()) {
        if (c.held) held++;
        if (!c.terminal) inFlight[c.status as keyof typeof inFlight]++;
      }
    }
    return {
      inFlight,
      held,
      watchedTasks: run?.dispatcher.watchedTasks ?? 0,
      agents: run?.dispatcher.agentStates() ?? [],
      commits: {
        ...(this.#run?.committer.stats ?? { batches: 0, commands: 0, tasks: 0, applyMs: 0 }),
      },
      storeWaitMs:
        run?.committer.owedSince == null
          ? 0
          : Math.max(0, this.#o.clock.now() - run.committer.owedSince),
    };
  }

  /**
   * Stops: takes no new work, lets running handlers finish (up to `stopGraceMs`), makes what is
   * done durable, and releases the store. Unfinished work resumes at the next start. The store's
   * part is bounded by `stopTimeoutMs`: a store that does not answer by then is let go (the
   * store port's `CloseOptions`), with a warning in the log, as if the node had crashed.
   */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    const wasRunning = this.#state === 'running';
    this.#state = 'stopping';
    this.#heartbeat?.cancel();
    if (this.#keepAlive) clearInterval(this.#keepAlive);
    this.#keepAlive = null;
    const run = this.#run;
    if (run && wasRunning) {
      let timer: { cancel(): void } | null = null;
      await Promise.race([
        run.coordinator.idle(),
        new Promise<void>(
          (resolve) => (timer = this.#o.clock.setTimer(this.#o.tuning.stopGraceMs, resolve)),
        ),
      ]);
      (timer as { cancel(): void } | null)?.cancel();
      run.coordinator.stop();
      run.dispatcher.stopAll();
      run.stopInfo();
    }
    await this.#release(run, wasRunning);
    this.#state = 'stopped';
  }

  /**
   * The store's part of a stop: the last batch (`drain`), the cluster's loops, the store's close —
   * all within `stopTimeoutMs`, past which the store is let go (a database down or gone silent).
   */
  async #release(run: EngineRuntime | null, drain: boolean): Promise<void> {
    const { stopTimeoutMs } = this.#o.tuning;
    const limit = timeLimit(this.#o.clock, stopTimeoutMs);
    let waitingFor = 'the last batch';
    try {
      if (run && drain) {
        await raceUntil(run.committer.drain(), limit.passed);
        run.committer.stop();
      }
      waitingFor = 'the store';
      if (run?.cluster) await raceUntil(run.cluster.stop(), limit.passed);
      await this.#o.store.close(this.#o.nodeId, { signal: limit.signal });
    } finally {
      limit.cancel();
      if (limit.signal.aborted)
        this.#o.logger.warn(
          { nodeId: this.#o.nodeId, stopTimeoutMs },
          `the engine stopped without waiting for ${waitingFor}, which did not answer within ` +
            `${stopTimeoutMs} ms: what was not stored resumes at the next start`,
        );
    }
  }
}

/** What a submission with a key answers when `existing` holds the key (see `Engine.submit`). */
function keyHolder(existing: CommandRecord, registered: CommandType): KeyedSubmit {
  const sameType = existing.type === registered.name || registered.aliases.includes(existing.type);
  return {
    id: existing.id,
    type: sameType ? registered.name : existing.type,
    params: canonicalJson(existing.params),
  };
}

/** A submit's priority: an integer (0 when absent); else `PARAMETERS_INVALID`. */
function checkPriority(priority: unknown): number {
  if (priority === undefined) return 0;
  if (typeof priority === 'number' && Number.isSafeInteger(priority) && Math.abs(priority) <= 1e6)
    return priority;
  throw new ValidationError('invalid submit options', [
    { path: 'priority', message: 'must be an integer between -1000000 and 1000000' },
  ]);
}

/** Creates an engine (not started). Throws `INVALID_OPTIONS` naming each bad option. */
export function createEngine(options: EngineOptions): Engine {
  return new Engine(options);
}
