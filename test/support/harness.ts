/**
 * Test harness: an engine on a real SQLite file in a fresh temporary folder, with in-process
 * agents, short timings, and cleanup that fails the test if an engine was left running.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../src/core/clock.js';
import type { CommandType } from '../../src/core/command-type.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import type { EngineEventMap, EngineEventName } from '../../src/engine/events.js';
import type { EngineTuning } from '../../src/engine/options.js';
import type { AdmissionLimits } from '../../src/engine/admission.js';
import type { InProcessAgent } from '../../src/brokers/in-process/agent.js';
import { inProcessAgents, type InProcessBroker } from '../../src/brokers/in-process/broker.js';
import type { VerbRegistry } from '../../src/verbs/model.js';
import { sqliteStore, type SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

/** Timings short enough for tests, long enough not to be flaky on a loaded 2-core machine. */
export const FAST: EngineTuning = {
  pollIntervalMs: 50,
  agentCallTimeoutMs: 2_000,
  agentBackoffBaseMs: 20,
  agentBackoffMaxMs: 200,
  vanishGraceMs: 100,
  commitRetryBaseMs: 10,
  commitRetryMaxMs: 100,
  heartbeatMs: 1_000,
  stopGraceMs: 1_000,
};

/** A temporary folder removed by {@link TestEnv.cleanup}. */
export function tempDir(prefix = 'coco-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface EnvOptions {
  readonly commands: readonly CommandType[];
  readonly agents?: readonly string[];
  readonly verbs?: VerbRegistry;
  readonly tuning?: EngineTuning;
  /** Reuse a folder (for restarts). */
  readonly dir?: string;
  /** Reuse agents (for restarts). */
  readonly broker?: InProcessBroker;
  /** Called before the engine starts (to subscribe to events reported while loading). */
  readonly beforeStart?: (engine: Engine) => void;
  /** The engine's clock (default: the system clock). */
  readonly clock?: Clock;
  /** Admission limits (engine/admission.ts). */
  readonly limits?: AdmissionLimits;
}

export interface TestEnv {
  readonly dir: string;
  readonly dbPath: string;
  readonly engine: Engine;
  readonly store: SqliteStore;
  readonly broker: InProcessBroker;
  agent(id?: string): InProcessAgent;
  /** Collects every payload of an event from now on. */
  record<K extends EngineEventName>(event: K): EngineEventMap[K][];
  /** Starts another engine on the same folder and agents (after this one stopped). */
  restart(options?: Partial<EnvOptions>): Promise<TestEnv>;
  cleanup(): Promise<void>;
}

const running = new Set<Engine>();

/** Fails if a test left an engine running (call from afterEach). */
export async function assertNoLeakedEngines(): Promise<void> {
  const leaked = running.size;
  for (const engine of running) await engine.stop();
  running.clear();
  if (leaked > 0) throw new Error(`${leaked} engine(s) were left running by the test`);
}

/** Builds and starts an engine on a fresh (or given) folder. */
export async function startEnv(options: EnvOptions): Promise<TestEnv> {
  const dir = options.dir ?? tempDir();
  const dbPath = join(dir, 'coco.db');
  const broker =
    options.broker ?? inProcessAgents(options.agents ?? ['a1'], { verbs: options.verbs ?? {} });
  const store = sqliteStore({ path: dbPath });
  const engine = createEngine({
    store,
    agents: broker,
    commands: options.commands,
    tuning: { ...FAST, ...options.tuning },
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
  });
  const recorded: { event: EngineEventName; list: unknown[] }[] = [];
  const cleared = new Set<number>();
  clearedBy.set(engine, cleared);
  engine.on('cleared', ({ commandId }) => cleared.add(commandId));
  options.beforeStart?.(engine);
  await engine.start();
  running.add(engine);
  const env: TestEnv = {
    dir,
    dbPath,
    engine,
    store,
    broker,
    agent: (id = options.agents?.[0] ?? 'a1') => {
      const a = broker.agent(id);
      if (!a) throw new Error(`no agent ${id}`);
      return a;
    },
    record(event) {
      const list: unknown[] = [];
      recorded.push({ event, list });
      engine.on(event, (payload) => list.push(payload));
      return list as never;
    },
    async restart(more = {}) {
      await engine.stop();
      running.delete(engine);
      return startEnv({
        ...options,
        beforeStart: undefined,
        ...more,
        dir,
        broker: more.broker ?? broker,
      });
    },
    async cleanup() {
      await engine.stop();
      running.delete(engine);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

/** A promise with its resolve function, for gating handlers and verbs. */
export function gate<T = void>(): { promise: Promise<T>; open(value: T): void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

/** Resolves when `predicate` holds after a committed batch (no sleeping). */
export function whenCommitted(
  engine: Engine,
  predicate: () => boolean | Promise<boolean>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let checking = false;
    const off = engine.on('committed', () => {
      if (checking) return;
      checking = true;
      Promise.resolve(predicate()).then(
        (ok) => {
          checking = false;
          if (ok) {
            off();
            resolve();
          }
        },
        (error: unknown) => {
          off();
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  });
}

/** Resolves once the command has ended and every task of it was cleared (durably). */
export async function settled(engine: Engine, id: number): Promise<void> {
  const cleared = clearedBy.get(engine);
  if (!cleared) throw new Error('settled(): the engine was not started by startEnv');
  if (cleared.has(id)) return;
  await new Promise<void>((resolve) => {
    const off = engine.on('cleared', ({ commandId }) => {
      if (commandId !== id) return;
      off();
      resolve();
    });
  });
}

/** Commands whose tasks each engine of startEnv has cleared (its `cleared` events). */
const clearedBy = new WeakMap<Engine, Set<number>>();

/**
 * A `hold` verb whose tasks run until the test releases their key (or they are stopped):
 * lets tests keep a task running across an engine restart without sleeping.
 */
export function holdVerbs(): {
  verbs: VerbRegistry;
  release(key: string, result?: unknown): void;
  held(key: string): boolean;
} {
  const gates = new Map<string, { promise: Promise<unknown>; open(value: unknown): void }>();
  const released = new Map<string, unknown>();
  const gateOf = (key: string) => {
    let g = gates.get(key);
    if (!g) {
      g = gate<unknown>();
      gates.set(key, g);
    }
    return g;
  };
  return {
    verbs: {
      hold: (args, ctx) => {
        const key = (args as { key?: string } | null)?.key ?? 'default';
        if (released.has(key)) return released.get(key) ?? null;
        return new Promise((resolve, reject) => {
          void gateOf(key).promise.then(resolve);
          ctx.onStop(() => reject(new Error('stopped')));
        });
      },
    },
    release(key, result = null) {
      released.set(key, result);
      gateOf(key).open(result);
    },
    held: (key) => gates.has(key) && !released.has(key),
  };
}
