/**
 * Test support for the job monitor: an engine environment (test/support/harness.ts) with a
 * monitor on the same SQLite file, restarts of both, and the engine's truth in step terms.
 */
import { join } from 'node:path';
import { expect } from 'vitest';
import { isTerminal } from '../../src/core/states.js';
import type { Engine } from '../../src/engine/engine.js';
import type { CommandRecord } from '../../src/core/records.js';
import type { CommandPage } from '../../src/store/port.js';
import { readJob } from '../../src/jobs/engine-reads.js';
import {
  createJobMonitor,
  type JobMonitor,
  type JobMonitorOptions,
} from '../../src/jobs/monitor.js';
import { commandStepKey, jobStatusOf, taskStepKey, type Step } from '../../src/jobs/port.js';
import { sqliteJobStore } from '../../src/jobs/sqlite/job-store.js';
import type { JobTree, StepNode } from '../../src/jobs/view.js';
import { startEnv, tempDir, type EnvOptions, type TestEnv } from '../support/harness.js';

export interface MonitoredEnv {
  readonly env: TestEnv;
  readonly monitor: JobMonitor;
  /** Stops engine and monitor (in that order), then starts both again on the same file. */
  restart(options?: Partial<EnvOptions>): Promise<MonitoredEnv>;
  /** Stops both and removes the folder. */
  cleanup(): Promise<void>;
}

type MonitorTuning = Partial<Omit<JobMonitorOptions, 'engine' | 'store'>>;

/** An engine with a monitor created before the engine starts (as documented), both started. */
export async function startMonitored(
  options: EnvOptions,
  tuning: MonitorTuning = {},
): Promise<MonitoredEnv> {
  const dir = options.dir ?? tempDir('coco-jobs-');
  let monitor: JobMonitor | undefined;
  const env = await startEnv({
    ...options,
    dir,
    beforeStart: (engine) => {
      options.beforeStart?.(engine);
      monitor = createJobMonitor({
        engine,
        store: sqliteJobStore({ path: join(dir, 'coco.db') }),
        ...tuning,
      });
    },
  });
  await monitor!.start();
  return wrap(env, monitor!, options, tuning);
}

function wrap(
  env: TestEnv,
  monitor: JobMonitor,
  options: EnvOptions,
  tuning: MonitorTuning,
): MonitoredEnv {
  return {
    env,
    monitor,
    async restart(more = {}) {
      await env.engine.stop();
      await monitor.stop();
      let next: JobMonitor | undefined;
      const env2 = await env.restart({
        ...more,
        beforeStart: (engine) => {
          next = createJobMonitor({
            engine,
            store: sqliteJobStore({ path: env.dbPath }),
            ...tuning,
          });
        },
      });
      await next!.start();
      return wrap(env2, next!, { ...options, ...more }, tuning);
    },
    async cleanup() {
      await env.engine.stop();
      await monitor.stop();
      await env.cleanup();
    },
  };
}

/** The steps of a tree, flattened (root first, depth first). */
export function flatten(tree: JobTree): Step[] {
  const out: Step[] = [];
  const walk = (node: StepNode): void => {
    out.push(node.step, ...node.tasks);
    for (const child of node.children) walk(child);
  };
  if (tree.root) walk(tree.root);
  return [...out, ...tree.orphans];
}

/** What the engine's stored state says each step of a job must show (progress aside). */
export async function truthOf(engine: Engine, jobId: number): Promise<Map<string, Partial<Step>>> {
  const snapshot = await readJob(engine, jobId);
  if (!snapshot) throw new Error(`no root command ${jobId}`);
  const truth = new Map<string, Partial<Step>>();
  for (const c of snapshot.commands) {
    truth.set(commandStepKey(c.id), {
      parentKey: c.parentId === null ? null : commandStepKey(c.parentId),
      kind: 'command',
      name: c.type,
      status: c.status,
      compensation: c.compensation,
      expectedTasks: c.expectedTasks,
      expectedChildren: c.expectedChildren,
      error: c.error,
      startedAt: c.createdAt,
      endedAt: c.endedAt,
      ...(c.status === 'succeeded' ? { progress: 100 } : {}),
    });
  }
  for (const t of snapshot.tasks) {
    truth.set(taskStepKey(t.commandId, t.ordinal), {
      parentKey: commandStepKey(t.commandId),
      kind: 'task',
      name: `${t.verb}@${t.agentId}`,
      status: t.status,
      undo: t.origin < 0,
      error: t.error,
      startedAt: t.createdAt,
      endedAt: t.endedAt,
      ...(t.status === 'succeeded' ? { progress: 100 } : {}),
    });
  }
  return truth;
}

/** Asserts that the monitor's job and steps equal the engine's stored truth. */
export async function expectTruthful(
  engine: Engine,
  monitor: JobMonitor,
  jobId: number,
): Promise<JobTree> {
  await monitor.flush();
  const root = await engine.get(jobId);
  const tree = await monitor.getTree(jobId);
  expect(tree, `job ${jobId} exists`).not.toBeNull();
  expect(root).not.toBeNull();
  expect(tree!.job.status).toBe(jobStatusOf(root!.status));
  expect(tree!.job.compensation).toBe(root!.compensation);
  expect(tree!.job.endedAt).toBe(root!.endedAt);
  expect(tree!.job.startedAt).toBe(root!.createdAt);
  expect(tree!.job.progress).toBe(tree!.root?.step.progress);
  expect(tree!.orphans).toEqual([]);
  const truth = await truthOf(engine, jobId);
  const shown = new Map(flatten(tree!).map((s) => [s.key, s]));
  expect([...shown.keys()].sort()).toEqual([...truth.keys()].sort());
  for (const [key, expected] of truth) expect(shown.get(key), key).toMatchObject(expected);
  if (isTerminal(root!.status) && root!.status === 'succeeded')
    expect(tree!.job.progress).toBe(100);
  return tree!;
}

/** Collects the progress values notified for a job. */
export function recordJobProgress(monitor: JobMonitor, jobId: number): number[] {
  const values: number[] = [];
  monitor.on('job', (job) => {
    if (job.id === jobId) values.push(job.progress);
  });
  return values;
}

/** Resolves once the monitor has committed a job state matching `predicate`. */
export function whenJob(
  monitor: JobMonitor,
  jobId: number,
  predicate: (tree: JobTree) => boolean,
): Promise<JobTree> {
  return new Promise((resolve, reject) => {
    let checking = false;
    let again = false;
    const check = (): void => {
      if (checking) {
        again = true;
        return;
      }
      checking = true;
      monitor.getTree(jobId).then(
        (tree) => {
          checking = false;
          if (tree && predicate(tree)) {
            off();
            resolve(tree);
          } else if (again) {
            again = false;
            check();
          }
        },
        (error: unknown) => {
          off();
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    };
    const offJob = monitor.on('job', (job) => job.id === jobId && check());
    const offStep = monitor.on('step', (step) => step.jobId === jobId && check());
    const off = (): void => {
      offJob();
      offStep();
    };
    check();
  });
}

/** The step of a command in a tree. */
export function stepOf(tree: JobTree, commandId: number): StepNode {
  const find = (node: StepNode | null): StepNode | null => {
    if (!node) return null;
    if (node.step.commandId === commandId && node.step.kind === 'command') return node;
    for (const child of node.children) {
      const found = find(child);
      if (found) return found;
    }
    return null;
  };
  const found = find(tree.root);
  if (!found) throw new Error(`no step for command ${commandId}`);
  return found;
}

/** A list page of an engine double: the records (newest first) up to `limit`, none unreadable. */
export function pageOf(records: readonly CommandRecord[], limit = 100): CommandPage {
  const commands = [...records].sort((a, b) => b.id - a.id).slice(0, limit);
  return {
    commands,
    unreadable: [],
    nextBeforeId: records.length > limit ? (commands.at(-1)?.id ?? null) : null,
  };
}
