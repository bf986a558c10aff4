/**
 * Builds the engine's parts for one run and connects them: the committer (group commit), the
 * coordinator (the command repository and its loop), the task tracker and the dispatcher (agent
 * calls); on a shared store, the cluster membership (leases, claims, relayed reports). The engine
 * facade calls these once the store is open.
 *
 * @module
 */
import { CocoError, ErrorCode } from '../core/errors.js';
import type { CommandRegistry } from '../core/registry.js';
import type { ActiveSnapshot } from '../store/port.js';
import type { SharedStore } from '../store/shared-port.js';
import { Cluster } from './cluster.js';
import { Committer } from './committer.js';
import { Coordinator } from './coordinator.js';
import { Dispatcher } from './dispatcher.js';
import type { EngineEvents } from './events.js';
import { IdAllocator } from './ids.js';
import type { CompiledEngineOptions } from './options.js';

/** The connected parts of a running engine. */
export interface EngineParts {
  readonly committer: Committer;
  readonly coordinator: Coordinator;
  readonly dispatcher: Dispatcher;
  /** Unsubscribes from the broker's agent information. */
  readonly stopInfo: () => void;
}

/** Builds and connects the parts (the store is open; `storeId` is its identity). */
export async function wireEngine(
  o: CompiledEngineOptions,
  registry: CommandRegistry,
  events: EngineEvents,
  storeId: string,
  /** A store error after which this node must stop (its lease was lost). */
  fatal: (error: CocoError) => void = () => undefined,
): Promise<EngineParts> {
  const { store, clock, tuning, logger } = o;
  const ids = new IdAllocator(store, tuning.idBlockSize);
  await ids.init();
  const committer = new Committer(
    store,
    clock,
    {
      retryBaseMs: tuning.commitRetryBaseMs,
      retryMaxMs: tuning.commitRetryMaxMs,
      maxInFlight: tuning.commitsInFlight,
      maxBatchRows: tuning.maxBatchRows,
    },
    (error, attempt) => {
      if (error instanceof CocoError && error.code === ErrorCode.LeaseLost) {
        fatal(error);
        return;
      }
      const info =
        error instanceof CocoError
          ? error.toInfo()
          : { code: ErrorCode.StoreFailed, message: String(error) };
      logger.error({ error: info, attempt }, 'store commit failed; retrying');
      events.emit('error', { error: info, context: 'commit' });
    },
  );
  committer.onCommit((batch) => {
    if (events.has('committed')) events.emit('committed', batch);
  });
  const coordinator = new Coordinator(o, store, committer, events, ids, registry, storeId);
  const dispatcher = new Dispatcher(
    o.agents,
    clock,
    {
      pollIntervalMs: tuning.pollIntervalMs,
      callTimeoutMs: tuning.agentCallTimeoutMs,
      backoffBaseMs: tuning.agentBackoffBaseMs,
      backoffMaxMs: tuning.agentBackoffMaxMs,
      vanishGraceMs: tuning.vanishGraceMs,
      reconcileIntervalMs: tuning.reconcileIntervalMs,
    },
    coordinator.tasks,
    `${storeId}-`,
  );
  coordinator.tasks.dispatcher = dispatcher;
  committer.setChildLookup((id) => coordinator.live.get(id));
  const stopInfo =
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
      store
        .saveAgent({
          id: info.agentId,
          address: info.address,
          state: info.up ? 'up' : 'down',
          bootId: info.bootId,
          lastSeenAt: info.lastSeenAt,
          lastError: info.error ?? null,
          updatedAt: clock.now(),
        })
        .catch((error: unknown) =>
          logger.warn({ agentId: info.agentId, error }, 'could not save agent state'),
        );
    }) ?? (() => undefined);
  return { committer, coordinator, dispatcher, stopInfo };
}

/**
 * Joins the nodes sharing the store: the cluster takes orphaned trees, holds agent leases and
 * relays task reports, and becomes the dispatcher's poll gate.
 */
export function wireCluster(
  o: CompiledEngineOptions,
  store: SharedStore,
  registry: CommandRegistry,
  storeId: string,
  parts: {
    readonly coordinator: Coordinator;
    readonly committer: Committer;
    readonly dispatcher: Dispatcher;
    /** Resumes claimed trees; resolves with how many commands were resumed. */
    readonly adopt: (snapshot: ActiveSnapshot) => Promise<number>;
    /** This node lost its lease: it must stop. */
    readonly leaseLost: (error: CocoError) => void;
    /** Trees taken over from a node that left. */
    readonly claimed: (rootIds: readonly number[]) => void;
  },
): Cluster {
  const { coordinator: co, committer, dispatcher } = parts;
  const cluster = new Cluster({
    nodeId: o.nodeId,
    storeId,
    store,
    registry,
    clock: o.clock,
    logger: o.logger,
    dispatcher,
    callTimeoutMs: o.tuning.agentCallTimeoutMs,
    claimIntervalMs: o.tuning.claimIntervalMs,
    foreignRefreshMs: o.tuning.pollIntervalMs,
    claimBatch: o.tuning.claimBatch,
    adopt: parts.adopt,
    // A held command's reports wait in the store until a cancel ends it (nothing of it runs).
    liveTask: (commandId, ordinal) => {
      const c = co.live.get(commandId);
      return c?.held ? undefined : c?.tasks[ordinal];
    },
    leaseLost: parts.leaseLost,
    claimed: parts.claimed,
    cancel: async (id) => {
      const c = co.live.get(id);
      if (!c) return false;
      co.cancel(c);
      await committer.durable(c);
      return true;
    },
    ...(o.agents.pollOnly ? { pollOnly: o.agents.pollOnly.bind(o.agents) } : {}),
  });
  dispatcher.gate = cluster;
  return cluster;
}
