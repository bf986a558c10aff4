/**
 * coco — a durable command coordinator.
 *
 * Terminology:
 * - **command**: a unit of work with versioned parameters, stored in the commands table. It runs
 *   in *stages* (`execute`, then `next` for serial commands) that create *tasks* and *children*.
 * - **task**: an async operation on an **agent** (a host), started under an id the engine chooses
 *   and polled in batches (one call per agent per cycle).
 * - **child**: a command created by another; children of one stage run concurrently, stages run
 *   one after another.
 * - **undo step**: recorded by a stage, run in reverse order when the command (or a later step
 *   of its parent) fails: **compensation**.
 * - **settled**: ended, compensation finished, every task cleared on its agent.
 *
 * @example
 * ```ts
 * import { createEngine, defineCommand } from 'coco-engine';
 * import { sqliteStore } from 'coco-engine/sqlite';
 * import { inProcessAgents } from 'coco-engine/in-process';
 * import { z } from 'zod';
 *
 * const copy = defineCommand({
 *   name: 'volume.copy',
 *   schema: z.object({ from: z.string(), to: z.string() }),
 *   execute(ctx) {
 *     ctx.startTask({ agent: 'host-1', verb: 'sleep', args: { ms: 10 } });
 *   },
 * });
 * const engine = createEngine({
 *   store: sqliteStore({ path: 'coco.db' }),
 *   agents: inProcessAgents(['host-1']),
 *   commands: [copy],
 * });
 * await engine.start();
 * const { id } = await engine.submit(copy, { from: 'a', to: 'b' });
 * ```
 * @module
 */
export * from './core/errors.js';
export * from './core/states.js';
export { defineCommand, DEFAULT_MAX_STAGES } from './core/command-type.js';
export type * from './core/command-type.js';
export { ManualClock, systemClock, type Clock, type TimerHandle } from './core/clock.js';
export { CommandRegistry } from './core/registry.js';
export { validateParams, upgradeParams, assertJson } from './core/params.js';
export {
  createEngine,
  Engine,
  type SubmitOptions,
  type StartReport,
  type CommandDetails,
} from './engine/engine.js';
export type { EngineOptions, EngineTuning } from './engine/options.js';
export {
  DEFAULT_PRUNE_BATCH,
  DEFAULT_PRUNE_BUDGET_MS,
  pruneTrees,
  type OnPruned,
  type PruneRequest,
  type PruneTotals,
} from './engine/retention.js';
export type {
  EngineEventMap,
  EngineEventName,
  EndedCommand,
  AgentCallEvent,
  BatchEvent,
} from './engine/events.js';
export type { EngineFigures, StoreOutage } from './engine/engine.js';
export { MAX_PAUSE_REASON, type PauseOptions } from './engine/pauses.js';
export { TRACER_NAME } from './engine/tracing.js';
export { formatTraceParent, parseTraceParent, type TraceParent } from './core/trace-context.js';
export {
  createNodeMetrics,
  NodeMetrics,
  SCRAPED,
  type NodeMetricsOptions,
  type ScrapeSource,
  type ScrapedGauge,
} from './observability/metrics.js';
export type * from './core/records.js';
export { agentTaskId, parseAgentTaskId } from './core/records.js';
export type * from './store/port.js';
export type * from './store/shared-port.js';
export { isSharedStore } from './store/shared-port.js';
export type * from './brokers/port.js';
export {
  DEFAULT_STORE_URL,
  parseStoreUrl,
  redact,
  storeFromUrl,
  type StoreUrl,
} from './config/store-url.js';
