/**
 * Builds the engine's running parts for one start, once, in the order they depend on one another
 * (see {@link buildRuntime}). The engine facade calls it once the store is open.
 *
 * @module
 */
import { CocoError, ErrorCode } from '../core/errors.js';
import type { CommandRegistry } from '../core/registry.js';
import { isSharedStore } from '../store/shared-port.js';
import { AgentLeases } from './agent-leases.js';
import { AgentRows } from './agent-rows.js';
import { Cluster } from './cluster.js';
import { TypePauses } from './pauses.js';
import { SharedAdmission } from './shared-admission.js';
import { Committer, isRefusal, outageText, type RefusedTree } from './committer.js';
import { Coordinator } from './coordinator.js';
import type { Dispatcher } from './dispatcher.js';
import type { EngineEvents } from './events.js';
import { IdAllocator } from './ids.js';
import type { LiveCommand } from './live.js';
import type { CompiledEngineOptions } from './options.js';

/**
 * Why an engine halts (`Engine.#halt`): batch failures the store would refuse every time, so not
 * retried (see {@link buildRuntime}'s `halt`). A node rejoins on each (server/rejoin.ts).
 */
export const HALTING_CODES: ReadonlySet<string> = new Set([
  ErrorCode.LeaseLost,
  ErrorCode.IdempotencyKeyTaken,
  ErrorCode.TreeRefused,
]);

/**
 * The running parts of an engine, built once per start, each with what it needs: the committer
 * (group commit), the coordinator (the command repository and its loop) with its task tracker
 * and dispatcher (agent calls), and on a shared store the agent leases (the dispatcher's poll
 * gate) and the cluster (node lease, claims, relayed reports, cancel requests).
 */
export interface EngineRuntime {
  readonly committer: Committer;
  readonly coordinator: Coordinator;
  readonly dispatcher: Dispatcher;
  /** The node among others on a shared store; null alone on its store. */
  readonly cluster: Cluster | null;
  /** The agents' rows, written in batches (see ./agent-rows.ts). */
  readonly agentRows: AgentRows;
  /** The command types paused by operators (see ./pauses.ts). */
  readonly pauses: TypePauses;
  /**
   * Unsubscribes from the broker's agent information and sends the agents' rows not yet written
   * (see ./agent-rows.ts).
   */
  readonly stopInfo: () => void;
}

/**
 * Builds the running parts (the store is open; `storeId` is its identity), in the order they
 * depend on one another: nothing is set on a part after it is built.
 */
export async function buildRuntime(
  o: CompiledEngineOptions,
  registry: CommandRegistry,
  events: EngineEvents,
  storeId: string,
  /**
   * This node's memory is no longer the truth: it lost its lease on a shared store (a batch
   * refused, or the cluster found out), or a batch was refused for an idempotency key another node
   * took meanwhile. The engine halts.
   */
  halt: (error: CocoError) => void,
): Promise<EngineRuntime> {
  const { store, clock, tuning, logger } = o;
  const ids = new IdAllocator(store, tuning.idBlockSize);
  await ids.init();
  const live = new Map<number, LiveCommand>();
  const committer = new Committer(
    store,
    clock,
    {
      retryBaseMs: tuning.commitRetryBaseMs,
      retryMaxMs: tuning.commitRetryMaxMs,
      maxInFlight: tuning.commitsInFlight,
      maxBatchRows: tuning.maxBatchRows,
      splitMinRows: tuning.idleSplitRows,
    },
    (error, attempt) => {
      // Refused for good: retried, the batch would be refused again (and the node stall).
      if (error instanceof CocoError && HALTING_CODES.has(error.code)) {
        halt(error);
        return;
      }
      const info =
        error instanceof CocoError
          ? error.toInfo()
          : { code: ErrorCode.StoreFailed, message: String(error) };
      if (isRefusal(error))
        logger.error(
          { error: info },
          'a batch was refused for what it holds: applying it again tree by tree, to find the trees refused',
        );
      else logger.error({ error: info, attempt }, 'store commit failed; retrying');
      events.emit('error', { error: info, context: 'commit' });
    },
    (id) => live.get(id),
    (trees) => {
      const error = treesRefused(trees);
      events.emit('trees-refused', { rootIds: trees.map((t) => t.rootId), error: error.toInfo() });
      void holdRefused(o, trees).finally(() => halt(error));
    },
  );
  // An outage is logged once, when it is counted, and once more when it ends: the PostgreSQL store
  // reconnects and tries again itself, so nothing else would say that the database is away.
  committer.watchOutages(
    tuning.storeOutageMs,
    (forMs) => {
      const last = committer.lastFailure;
      logger.warn(
        { forMs, storeOutageMs: tuning.storeOutageMs, lastError: last },
        `${outageText(forMs, last)}; new submissions and cancellations are refused until it does`,
      );
      events.emit('store', { up: false, forMs, error: last });
    },
    (lastedMs) => {
      logger.info(
        { lastedMs },
        `the store takes writes again, after ${(lastedMs / 1000).toFixed(1)} s without`,
      );
      events.emit('store', { up: true, forMs: lastedMs, error: null });
    },
  );
  committer.onCommit((batch, rows, applyMs) => {
    if (events.has('committed')) events.emit('committed', batch);
    if (events.has('batch')) events.emit('batch', { rows, applyMs });
  });
  const shared = isSharedStore(store) ? store : null;
  const leases = shared
    ? new AgentLeases({
        nodeId: o.nodeId,
        storeId,
        store: shared,
        clock,
        callTimeoutMs: tuning.agentCallTimeoutMs,
      })
    : null;
  const admission =
    shared && leases
      ? new SharedAdmission({
          nodeId: o.nodeId,
          store: shared,
          clock,
          logger,
          committer,
          leases,
          // Called only once running: the coordinator is built just below, with this ledger.
          admission: () => coordinator.tasks.admission,
          liveTask: (commandId, ordinal) => coordinator.liveTask(commandId, ordinal),
        })
      : null;
  const coordinator: Coordinator = new Coordinator({
    options: o,
    store,
    committer,
    events,
    ids,
    registry,
    storeId,
    live,
    gate: leases,
    ledger: admission,
  });
  const { dispatcher } = coordinator;
  const pauses = new TypePauses({
    store,
    registry,
    clock,
    events,
    logger,
    roots: coordinator.roots,
  });
  const cluster =
    shared && leases
      ? new Cluster({
          nodeId: o.nodeId,
          store: shared,
          registry,
          clock,
          logger,
          events,
          broker: o.agents,
          coordinator,
          dispatcher,
          leases,
          admission,
          pauses,
          callTimeoutMs: tuning.agentCallTimeoutMs,
          claimIntervalMs: tuning.claimIntervalMs,
          foreignRefreshMs: tuning.pollIntervalMs,
          claimBatch: tuning.claimBatch,
          leaseLost: halt,
        })
      : null;
  const agentRows = new AgentRows(store, logger);
  const unsubscribeInfo =
    o.agents.onAgentInfo?.((info) => {
      if (info.previousBootId) {
        logger.warn(
          { agentId: info.agentId, bootId: info.bootId, previousBootId: info.previousBootId },
          'agent restarted',
        );
        // What it reports now may differ from what it reported before: look at once.
        dispatcher.pollSoon(info.agentId);
      }
      events.emit('agent-info', info);
      // Coalesced (the latest state of each agent) and written in batches, off the event loop.
      agentRows.save({
        id: info.agentId,
        address: info.address,
        state: info.up ? 'up' : 'down',
        bootId: info.bootId,
        lastSeenAt: info.lastSeenAt,
        lastError: info.error ?? null,
        updatedAt: clock.now(),
      });
    }) ?? (() => undefined);
  const stopInfo = (): void => {
    unsubscribeInfo();
    // What is pending goes out before the store closes (the engine closes it after draining).
    void agentRows.flush();
  };
  return Object.freeze({
    committer,
    coordinator,
    dispatcher,
    cluster,
    agentRows,
    pauses,
    stopInfo,
  });
}

/**
 * Marks the trees whose changes the store refused on their own held in the store (see
 * committer.ts), each logged. A mark that cannot be written is logged: the tree is refused again
 * after the restart, and marked then.
 */
async function holdRefused(o: CompiledEngineOptions, trees: readonly RefusedTree[]): Promise<void> {
  const { store, clock, logger, nodeId } = o;
  for (const t of trees)
    logger.error(
      { rootId: t.rootId, error: t.error.toInfo() },
      'the store refused the changes of a tree of commands on their own: the tree is held',
    );
  try {
    await store.holdTrees(
      nodeId,
      trees.map((t) => ({ rootId: t.rootId, error: t.error.toInfo() })),
      clock.now(),
    );
  } catch (error) {
    logger.error(
      { error },
      'could not mark the refused trees held: they are refused again after the restart',
    );
  }
}

/** Why an engine halts after trees were refused (`TREE_REFUSED`, one of {@link HALTING_CODES}). */
function treesRefused(trees: readonly RefusedTree[]): CocoError {
  const first = trees[0]!;
  return new CocoError(
    ErrorCode.TreeRefused,
    `the store refused the changes of ${trees.length === 1 ? 'a tree' : `${trees.length} trees`} of ` +
      `commands on their own (root ${trees.map((t) => t.rootId).join(', ')}; ${first.error.message}): ` +
      'marked held, the engine halts; loaded again, nothing of such a tree runs until a release runs ' +
      'it on or a cancel ends it',
    { details: { trees: trees.map((t) => ({ rootId: t.rootId, error: t.error.toInfo() })) } },
  );
}
