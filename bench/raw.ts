/**
 * The raw-store limit: the same row operations the engine committed in a run, done directly
 * with better-sqlite3 prepared statements (the store's own SQL and schema, triggers included),
 * `perTx` commands' worth of operations per transaction, WAL + synchronous=FULL. The ratio of
 * a benchmark's figure to this limit is the share of the storage's capacity coco delivers.
 */
import Database from 'better-sqlite3';
import { sqliteStore } from '../src/store/sqlite/sqlite-store.js';
import {
  SQL,
  commandInsertValues,
  commandUpdateValues,
  taskInsertValues,
  taskUpdateValues,
} from '../src/store/sqlite/statements.js';
import type { CommandRecord, TaskRecord } from '../src/core/records.js';
import type { ThreadUsage } from '../src/store/sqlite/writer.js';
import { tempDb, type OpCounts } from './lib.js';
import { threadUsage } from './tree-trace.js';

/**
 * The shape of the raw rows. `roots` (the default, as the figures in BENCHMARKS.md were taken):
 * every command a root, and ends that keep it in the index of active commands. `trees`
 * (`BENCH_RAW_MODEL=trees`): each unit's first command is a root and the others its children
 * (parent, root and seq set, so the children's partial indexes get their entries), and a
 * command's end says its tasks are cleared (it leaves the index of active commands, a root joins
 * the index of ended roots) — the index entries coco's own rows make. Measured 2026-12-05 (CPU
 * per unit, schedstat): within a few percent of each other (BENCHMARKS.md).
 */
const RAW_MODEL = process.env.BENCH_RAW_MODEL === 'trees' ? 'trees' : 'roots';

function commandRow(id: number): CommandRecord {
  const now = Date.now();
  return {
    id,
    type: 'bench.raw',
    paramsVersion: 1,
    params: { i: id },
    status: 'waiting',
    parentId: null,
    rootId: id,
    seq: null,
    originStage: null,
    childMode: 'concurrent',
    failurePolicy: 'wait-all',
    expectedTasks: 1,
    expectedChildren: 0,
    taskCount: 1,
    childCount: 0,
    undoCount: 0,
    journalSeq: 0,
    stage: 0,
    stageDone: true,
    chainDone: false,
    cancelRequested: false,
    error: null,
    result: null,
    compensation: 'none',
    compensationError: null,
    data: null,
    attempts: 0,
    nextAttemptAt: null,
    lastError: null,
    deadlineAt: null,
    priority: 0,
    queuedSince: null,
    idempotencyKey: null,
    createdAt: now,
    updatedAt: now,
    endedAt: null,
    tasksCleared: false,
    owner: null,
    leaseUntil: null,
  };
}

function taskRow(commandId: number): TaskRecord {
  return {
    commandId,
    ordinal: 0,
    origin: 0,
    agentId: 'a1',
    verb: 'noop',
    args: null,
    status: 'created',
    result: null,
    error: null,
    deadlineAt: null,
    stopRequested: false,
    createdAt: Date.now(),
    endedAt: null,
  };
}

/**
 * Commands per second the raw store sustains for `units` commands whose writes total `ops`
 * (scaled to `sampleUnits` commands so it takes a few seconds).
 */
export async function rawLimit(
  ops: OpCounts,
  units: number,
  perTx = 100,
  sampleUnits = 20_000,
  onUsage?: (usage: ThreadUsage, units: number) => void,
): Promise<number> {
  const db0 = tempDb();
  const store = sqliteStore({ path: db0.path });
  await store.migrate();
  await store.close();
  const db = new Database(db0.path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  const insC = db.prepare(SQL.insertCommand);
  const updC = db.prepare(SQL.updateCommand);
  const setC = db.prepare(SQL.settleCommand);
  const insT = db.prepare(SQL.insertTask);
  const updT = db.prepare(SQL.updateTask);
  const per = (n: number) => n / units;
  const k = {
    ci: per(ops.commandInserts),
    cu: per(ops.commandUpdates),
    cs: per(ops.commandsSettled),
    ti: per(ops.taskInserts),
    tu: per(ops.taskUpdates),
  };
  // Pre-build the values so the timed loop measures the database, not record building.
  const txs = Math.ceil(sampleUnits / perTx);
  const plans: (() => void)[] = [];
  let nextId = 1;
  for (let t = 0; t < txs; t++) {
    const ci = Math.round(k.ci * perTx);
    const ti = Math.round(k.ti * perTx);
    const tu = Math.round(k.tu * perTx);
    const cu = Math.round(k.cu * perTx);
    const cs = Math.round(k.cs * perTx);
    const ids = Array.from({ length: ci }, () => nextId++);
    const tasksPer = Math.max(1, Math.round(ti / Math.max(1, ci)));
    // Each unit's first command is a root, the others its children (RAW_MODEL).
    const perUnit = Math.max(1, Math.round(k.ci));
    const cmdInserts = ids.map((id, i) => {
      const root = ids[i - (i % perUnit)]!;
      return commandInsertValues(
        RAW_MODEL === 'roots' || id === root
          ? commandRow(id)
          : { ...commandRow(id), parentId: root, rootId: root, seq: i % perUnit },
      );
    });
    const taskInserts = Array.from({ length: ti }, (_, i) =>
      taskInsertValues({ ...taskRow(ids[i % ci]!), ordinal: Math.floor(i / ci) }),
    );
    const taskUpdates = Array.from({ length: tu }, (_, i) =>
      taskUpdateValues({
        commandId: ids[i % ci]!,
        ordinal: Math.floor(i / ci) % tasksPer,
        status: 'succeeded',
        result: null,
        error: null,
        stopRequested: false,
        endedAt: Date.now(),
        deadlineAt: null,
      }),
    );
    // The updates beyond one per command are a parent's steps (chains: its stage moves on);
    // the last one of each command is its end, which says its tasks are cleared (so it leaves
    // the index of active commands), as coco's ends do (RAW_MODEL).
    const steps = Math.max(0, cu - ci);
    const cmdUpdates = Array.from({ length: cu }, (_, i) =>
      RAW_MODEL === 'roots'
        ? commandUpdateValues({
            ...commandRow(ids[i % ci]!),
            status: 'succeeded',
            endedAt: Date.now(),
            result: { ok: true },
          })
        : i < steps
          ? commandUpdateValues({ ...commandRow(ids[(i * perUnit) % ci]!), stage: 1 })
          : commandUpdateValues({
              ...commandRow(ids[(i - steps) % ci]!),
              status: 'succeeded',
              endedAt: Date.now(),
              result: { ok: true },
              tasksCleared: true,
            }),
    );
    const settles = Array.from({ length: cs }, (_, i) => ids[i % ci]!);
    plans.push(() => {
      // Values as arguments, as the store's writer binds them (cheaper than one array).
      db.transaction(() => {
        for (const v of cmdInserts) insC.run(...v);
        for (const v of taskInserts) insT.run(...v);
      }).immediate();
      db.transaction(() => {
        for (const v of taskUpdates) updT.run(...v);
        for (const v of cmdUpdates) updC.run(...v);
      }).immediate();
      db.transaction(() => {
        for (const id of settles) setC.run(id);
      }).immediate();
    });
  }
  const use0 = threadUsage();
  const t0 = performance.now();
  for (const plan of plans) plan();
  const seconds = (performance.now() - t0) / 1000;
  const use = threadUsage();
  if (use && use0)
    onUsage?.(
      { cpuMs: use.cpuMs - use0.cpuMs, runQueueMs: use.runQueueMs - use0.runQueueMs },
      txs * perTx,
    );
  db.close();
  db0.cleanup();
  return (txs * perTx) / seconds;
}
