/**
 * Shared benchmark plumbing: temporary databases, the engine under test, a broker that holds
 * tasks without storing anything per task, op counting, the raw-store limit, and the report
 * format (human lines, then one JSON object as the last line).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  AgentBroker,
  StartRequest,
  StartResult,
  TaskStatusReport,
} from '../src/brokers/port.js';
import { z } from 'zod';
import { defineCommand, type CommandType } from '../src/core/command-type.js';
import { createEngine, type Engine } from '../src/engine/engine.js';
import { LiveCommand } from '../src/engine/live.js';
import type { EngineOptions, EngineTuning } from '../src/engine/options.js';
import type { AdmissionLimits } from '../src/engine/admission.js';
import type { ChangeBatch } from '../src/store/port.js';
import { sqliteStore } from '../src/store/sqlite/sqlite-store.js';

/** A folder removed at exit. */
export function tempDb(): { dir: string; path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'coco-bench-'));
  return {
    dir,
    path: join(dir, 'coco.db'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Engine timings for benchmarks: polls are driven by activity hints; the interval is the net. */
export const BENCH_TUNING: EngineTuning = {
  pollIntervalMs: 1000,
  idBlockSize: 50_000,
  ...(JSON.parse(process.env.BENCH_TUNING ?? '{}') as EngineTuning),
};

/**
 * Admission limits of the benchmark engines, from `BENCH_LIMITS` (JSON): for example
 * `{"agents":{"a1":{"maxRunning":1000000}}}` measures the cost of a limit never reached.
 */
export const BENCH_LIMITS: AdmissionLimits = JSON.parse(
  process.env.BENCH_LIMITS ?? '{}',
) as AdmissionLimits;

/** An engine on SQLite (WAL, synchronous=FULL: durable) with the given broker. */
export function benchEngine(
  path: string,
  agents: AgentBroker,
  commands: readonly CommandType[],
  tuning: EngineTuning = {},
  more: Pick<EngineOptions, 'tracer'> & { store?: EngineOptions['store'] } = {},
): Engine {
  return createEngine({
    store: sqliteStore({ path, synchronous: 'FULL' }),
    agents,
    commands: commands,
    tuning: { ...BENCH_TUNING, ...tuning },
    limits: BENCH_LIMITS,
    ...more,
  });
}

/** Row operations the engine committed, by kind. */
export interface OpCounts {
  commandInserts: number;
  commandUpdates: number;
  commandsSettled: number;
  taskInserts: number;
  taskUpdates: number;
  batches: number;
}

/** Row operation counts, all zero. */
export const zeroOps = (): OpCounts => ({
  commandInserts: 0,
  commandUpdates: 0,
  commandsSettled: 0,
  taskInserts: 0,
  taskUpdates: 0,
  batches: 0,
});

/** Counts the row operations of committed batches, and the commands that ended. */
export function countOps(engine: Engine): { ops: OpCounts; ended: Set<number> } {
  const ops = zeroOps();
  const ended = new Set<number>();
  engine.on('committed', (b: ChangeBatch) => {
    ops.batches++;
    ops.commandInserts += b.commandInserts.length;
    ops.commandUpdates += b.commandUpdates.length;
    ops.commandsSettled += b.commandsSettled.length;
    ops.taskInserts += b.taskInserts.length;
    ops.taskUpdates += b.taskUpdates.length;
    for (const c of b.commandInserts) if (c.endedAt !== null) ended.add(c.id);
    for (const c of b.commandUpdates) if (c.endedAt !== null) ended.add(c.id);
  });
  return { ops, ended };
}

/**
 * A broker whose agent accepts every start and reports every task running, storing nothing
 * per task: what remains on the heap is the engine's. Counts status calls and ids asked.
 */
export class HoldingBroker implements AgentBroker {
  statusCalls = 0;
  statusIds = 0;
  onStatus: ((ids: number) => void) | null = null;
  async agentIds(): Promise<readonly string[]> {
    return ['hold'];
  }
  async startTasks(
    _agent: string,
    requests: readonly StartRequest[],
  ): Promise<readonly StartResult[]> {
    return requests.map((r) => ({ taskId: r.taskId, accepted: true as const }));
  }
  async getStatuses(
    _agent: string,
    taskIds: readonly string[],
  ): Promise<readonly TaskStatusReport[]> {
    this.statusCalls++;
    this.statusIds += taskIds.length;
    this.onStatus?.(taskIds.length);
    return taskIds.map((taskId) => ({ taskId, state: 'running' as const }));
  }
  async stopTasks(): Promise<void> {}
  async clearTasks(): Promise<void> {}
  async listTasks(): Promise<readonly string[]> {
    return [];
  }
}

/** The machine, for the record. */
export function machine(): string {
  const cpu = cpus();
  return `${cpu.length} x ${cpu[0]?.model.trim() ?? 'cpu'}, node ${process.version}`;
}

/** Median of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Prints the human lines, then the JSON line scripts read (always last). */
export function report(
  result: Record<string, unknown> & { bench: string; value: number; unit: string },
  lines: string[],
): void {
  for (const line of lines) console.log(line);
  console.log(JSON.stringify({ store: 'sqlite', ...result }));
}

/** Resolves once `predicate` holds, checking after each committed batch. */
export function untilCommitted(engine: Engine, predicate: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (predicate()) return resolve();
    const off = engine.on('committed', () => {
      if (predicate()) {
        off();
        resolve();
      }
    });
  });
}

/** A one-task command whose task the {@link HoldingBroker} keeps running (memory, recovery). */
export const heldCommand = defineCommand({
  name: 'bench.held',
  schema: z.object({ i: z.number() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'hold', verb: 'hold', args: { i: ctx.params.i } });
  },
});

/** A stored root command as an engine holds it, built without one (benchmarks of one part). */
export function liveRoot(type: CommandType, id: number, createdAt = 0): LiveCommand {
  return new LiveCommand({
    id,
    type,
    paramsVersion: 1,
    rawParams: {},
    params: {},
    parentId: null,
    rootId: id,
    seq: null,
    originStage: null,
    childMode: 'concurrent',
    failurePolicy: 'wait-all',
    idempotencyKey: null,
    createdAt,
    persisted: true,
  });
}
