/**
 * In-memory engine objects for unit tests of engine parts (committer, dispatcher): commands and
 * tasks built without an engine.
 */
import type { CommandType } from '../../src/core/command-type.js';
import type { DispatcherEvents, DispatcherOptions } from '../../src/engine/dispatcher.js';
import { LiveCommand, LiveTask } from '../../src/engine/live.js';

/** A pending command: a root, or a child of `parent` (concurrent children, wait-all). */
export function liveCommand(
  type: CommandType,
  id: number,
  options: { parent?: LiveCommand | null; persisted?: boolean } = {},
): LiveCommand {
  const parent = options.parent ?? null;
  return new LiveCommand({
    id,
    type,
    paramsVersion: 1,
    rawParams: {},
    params: {},
    parentId: parent?.id ?? null,
    rootId: parent?.rootId ?? id,
    seq: parent ? parent.journalSeq++ : null,
    originStage: parent ? 0 : null,
    childMode: 'concurrent',
    failurePolicy: 'wait-all',
    idempotencyKey: null,
    createdAt: 0,
    persisted: options.persisted ?? false,
  });
}

/** A created task of `c` (verb `v`, task id `x-<command>-<ordinal>`), added to it. */
export function liveTask(
  c: LiveCommand,
  ordinal: number,
  options: { agentId?: string; result?: unknown; persisted?: boolean } = {},
): LiveTask {
  const t = new LiveTask(
    c,
    ordinal,
    0,
    options.agentId ?? 'a',
    'v',
    null,
    `x-${c.id}-${ordinal}`,
    'created',
    options.result ?? null,
    null,
    null,
    false,
    0,
    null,
    options.persisted ?? false,
  );
  c.addTask(t);
  return t;
}

/** Dispatcher events that do nothing (every task known), with `overrides` for what a test watches. */
export function dispatcherEvents(overrides: Partial<DispatcherEvents> = {}): DispatcherEvents {
  return {
    started: () => {},
    rejected: () => {},
    failed: () => {},
    agentUnknown: () => {},
    report: () => {},
    vanished: () => {},
    cleared: () => {},
    agentState: () => {},
    isKnown: () => true,
    ...overrides,
  };
}

/** Dispatcher settings for unit tests on a manual clock (1 s polls, long timeouts). */
export function dispatcherOptions(overrides: Partial<DispatcherOptions> = {}): DispatcherOptions {
  return {
    pollIntervalMs: 1_000,
    callTimeoutMs: 60_000,
    backoffBaseMs: 10,
    backoffMaxMs: 100,
    vanishGraceMs: 30_000,
    reconcileIntervalMs: 3_600_000,
    ...overrides,
  };
}

/** Lets promise chains and immediates run: ten turns of the event loop. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}
