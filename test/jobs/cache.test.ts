import { rmSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CommandStatus, CompensationStatus, TaskStatus } from '../../src/core/states.js';
import { EngineEvents } from '../../src/engine/events.js';
import type { MonitoredEngine } from '../../src/jobs/engine-reads.js';
import { createJobMonitor } from '../../src/jobs/monitor.js';
import { sqliteJobStore } from '../../src/jobs/sqlite/job-store.js';
import { JobCache } from '../../src/jobs/tree.js';
import type { CommandRecord, TaskRecord } from '../../src/core/records.js';
import { emptyBatch, type CommandUpdate } from '../../src/store/port.js';
import { tempDir } from '../support/harness.js';
import { pageOf } from './support.js';

function record(
  id: number,
  parentId: number | null,
  status: CommandStatus,
  updatedAt: number,
  more: Partial<CommandRecord> = {},
): CommandRecord {
  return {
    id, type: parentId === null ? 'root' : 'child', paramsVersion: 1, params: {}, status, parentId,
    rootId: more.rootId ?? (parentId ?? id), seq: parentId === null ? null : id, originStage: parentId === null ? null : 0,
    childMode: 'concurrent', failurePolicy: 'wait-all', expectedTasks: 0, expectedChildren: 0, taskCount: 0, childCount: 0,
    undoCount: 0, journalSeq: 0, stage: 0, stageDone: true, chainDone: false, cancelRequested: false, error: null, result: null,
    compensation: 'none', compensationError: null, data: null, attempts: 0, nextAttemptAt: null, lastError: null,
    deadlineAt: null, priority: 0, queuedSince: null, idempotencyKey: null, createdAt: 1, updatedAt, endedAt: status === 'succeeded' || status === 'failed' || status === 'cancelled' ? updatedAt : null,
    tasksCleared: false, owner: null, leaseUntil: null, ...more,
  }; // prettier-ignore
}

function update(r: CommandRecord): CommandUpdate {
  const {
    type: _t,
    paramsVersion: _v,
    params: _p,
    parentId: _pa,
    rootId: _r,
    seq: _s,
    originStage: _o,
    childMode: _c,
    failurePolicy: _f,
    idempotencyKey: _i,
    createdAt: _ca,
    ...rest
  } = r;
  return rest;
}

function task(commandId: number, ordinal: number, status: TaskStatus, origin = 0): TaskRecord {
  return {
    commandId,
    ordinal,
    origin,
    agentId: 'a1',
    verb: 'v',
    args: null,
    status,
    result: null,
    error: null,
    deadlineAt: null,
    stopRequested: false,
    createdAt: 1,
    endedAt: status === 'created' || status === 'running' ? null : 2,
  };
}

describe('job cache: monotone merges', () => {
  it('an older snapshot applied after a newer event does not move a step back', () => {
    const cache = new JobCache();
    cache.mergeCommand(record(1, null, 'waiting', 10, { expectedChildren: 2 }));
    cache.mergeCommand(record(2, 1, 'succeeded', 20));
    cache.mergeTask(task(2, 0, 'succeeded'));
    // The snapshot read earlier: child still waiting, its task running, fewer declared children.
    cache.mergeCommand(record(1, null, 'pending', 5, { expectedChildren: 1 }));
    cache.mergeCommand(record(2, 1, 'waiting', 15));
    cache.mergeTask(task(2, 0, 'running'));
    const job = cache.job(1)!;
    expect(job.root!.status).toBe('waiting');
    expect(job.root!.expectedChildren).toBe(2);
    expect(job.commands.get(2)!.status).toBe('succeeded');
    expect(job.commands.get(2)!.progress).toBe(1000);
    expect(job.commands.get(2)!.tasks.get(0)!.status).toBe('succeeded');
    expect(job.root!.progress).toBe(500);
  });

  it('same-millisecond updates apply in order; compensation of a succeeded step moves it forward', () => {
    const cache = new JobCache();
    cache.mergeCommand(record(1, null, 'waiting', 10, { expectedChildren: 1 }));
    cache.mergeCommand(record(2, 1, 'succeeded', 10));
    cache.updateCommand(update(record(2, 1, 'succeeded', 11, { compensation: 'compensating' })));
    cache.updateCommand(update(record(2, 1, 'succeeded', 11, { compensation: 'compensated' })));
    cache.updateCommand(update(record(2, 1, 'succeeded', 9, { compensation: 'none' })));
    expect(cache.job(1)!.commands.get(2)!.compensation).toBe('compensated');
  });

  it('whatever order records arrive in, the final state is the newest one', () => {
    const path: [CommandStatus, CompensationStatus][] = [
      ['pending', 'none'],
      ['waiting', 'none'],
      ['aborting', 'none'],
      ['compensating', 'compensating'],
      ['compensating', 'compensated'],
      ['failed', 'compensated'],
    ];
    fc.assert(
      fc.property(
        fc.shuffledSubarray(
          path.map((_, i) => i),
          { minLength: 1 },
        ),
        (order) => {
          const cache = new JobCache();
          for (const i of order) {
            const [status, compensation] = path[i]!;
            cache.mergeCommand(record(1, null, status, 100 + i, { compensation }));
          }
          const newest = Math.max(...order);
          expect([cache.job(1)!.root!.status, cache.job(1)!.root!.compensation]).toEqual(
            path[newest],
          );
        },
      ),
    );
  });

  it('children whose parent arrives later are attached then; an ended job leaves the cache', () => {
    const cache = new JobCache();
    cache.mergeCommand(record(1, null, 'waiting', 1, { expectedChildren: 1 }));
    cache.mergeCommand(record(3, 2, 'succeeded', 2, { rootId: 1 }));
    expect(cache.incomplete()).toEqual([1]);
    cache.mergeCommand(record(2, 1, 'waiting', 2, { expectedChildren: 1 }));
    expect(cache.incomplete()).toEqual([]);
    expect(cache.job(1)!.commands.get(2)!.progress).toBe(999);
    cache.updateCommand(update(record(2, 1, 'succeeded', 3)));
    cache.updateCommand(update(record(1, null, 'succeeded', 4)));
    const changes = cache.collect(5);
    expect(changes.ended).toEqual([1]);
    expect(changes.jobs).toMatchObject([
      { id: 1, status: 'succeeded', progress: 100, updatedAt: 5 },
    ]);
    expect(changes.steps.map((s) => s.key).sort()).toEqual(['c1', 'c2', 'c3']);
    expect(cache.size).toBe(0);
    expect(cache.updateCommand(update(record(2, 1, 'succeeded', 5)))).toBe(false);
  });
});

/** An engine double: events by hand, queries from a fixed (possibly newer) snapshot. */
function fakeEngine(
  commands: CommandRecord[],
  tasks: TaskRecord[],
): MonitoredEngine & { events: EngineEvents } {
  const events = new EngineEvents();
  return {
    events,
    on: (event, listener) => events.on(event, listener),
    get: async (id) => commands.find((c) => c.id === id) ?? null,
    list: async (q = {}) =>
      pageOf(
        commands
          .filter(
            (c) =>
              (q.rootId === undefined || c.rootId === q.rootId) &&
              (!q.rootsOnly || c.parentId === null),
          )
          .filter(
            (c) =>
              (q.status === undefined || q.status.includes(c.status)) &&
              (q.beforeId === undefined || c.id < q.beforeId),
          ),
        q.limit,
      ),
    inspect: async (id) => {
      const command = commands.find((c) => c.id === id);
      return command
        ? {
            command,
            tasks: tasks.filter((t) => t.commandId === id),
            undo: [],
            queued: [],
            rootQueue: null,
            children: commands.filter((c) => c.parentId === id),
            unreadableChildren: [],
            statusHistory: [],
            unloadable: null,
            releasable: false,
            reruns: { rerunOf: null, reruns: [] },
          }
        : null;
    },
  };
}

describe('job monitor: start-up ordering', () => {
  it('batches queued before start (older than the snapshot) do not regress the reconciled job', async () => {
    const dir = tempDir('coco-jobs-');
    const root = record(1, null, 'succeeded', 30, { expectedChildren: 1 });
    const child = record(2, 1, 'succeeded', 25, { expectedTasks: 1, taskCount: 1 });
    const engine = fakeEngine([root, child], [task(2, 0, 'succeeded')]);
    const monitor = createJobMonitor({ engine, store: sqliteJobStore({ path: `${dir}/coco.db` }) });
    const progress: number[] = [];
    const statuses: string[] = [];
    monitor.on('job', (j) => {
      progress.push(j.progress);
      statuses.push(j.status);
    });
    // Committed after the monitor subscribed, before it started: older than what start() reads.
    engine.events.emit('committed', {
      ...emptyBatch(),
      commandInserts: [record(1, null, 'pending', 10), record(2, 1, 'pending', 10)],
    });
    engine.events.emit('committed', {
      ...emptyBatch(),
      taskInserts: [task(2, 0, 'created')],
      commandUpdates: [update(record(2, 1, 'waiting', 12, { expectedTasks: 1 }))],
    });
    engine.events.emit('progress', { commandId: 2, ordinal: 0, taskId: 'x', progress: 40 });
    await monitor.start();
    await monitor.flush();
    const tree = await monitor.getTree(1);
    expect(tree!.job).toMatchObject({ status: 'succeeded', progress: 100 });
    expect(tree!.root!.children[0]!.step).toMatchObject({ status: 'succeeded', progress: 100 });
    expect(tree!.root!.children[0]!.tasks[0]).toMatchObject({ status: 'succeeded', progress: 100 });
    expect(statuses.every((s) => s === 'succeeded')).toBe(true);
    expect(progress.every((p) => p === 100)).toBe(true);
    await monitor.stop();
    rmSync(dir, { recursive: true, force: true });
  });
});
