import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COMMAND_STATUSES, TASK_STATUSES, type CommandStatus } from '../../src/core/states.js';
import {
  MAX_UNFINISHED,
  commandProgress,
  rollUp,
  taskProgress,
  toPercent,
} from '../../src/jobs/progress.js';
import { JobCache } from '../../src/jobs/tree.js';
import type { CommandRecord, TaskRecord } from '../../src/core/records.js';

const oneDecimal = (x: number): boolean => Math.abs(x * 10 - Math.round(x * 10)) < 1e-9;
const percent = fc.double({ min: -50, max: 150, noNaN: true });

describe('progress roll-up (pure)', () => {
  it('toPercent rounds down to one decimal within 0..100', () => {
    expect(toPercent(25)).toBe(25);
    expect(toPercent(33.333)).toBe(33.3);
    expect(toPercent(0.1 + 0.2 + 29.7)).toBe(30);
    expect(toPercent(-3)).toBe(0);
    expect(toPercent(170)).toBe(100);
    expect(toPercent(Number.NaN)).toBe(0);
  });

  it('a command that declared 4 tasks with 1 done shows 25, not 100', () => {
    const tasks = [{ progress: 100, undo: false }];
    expect(commandProgress('waiting', 0, { tasks: 4, children: 0 }, tasks, [])).toBe(25);
    // Without a declaration, one task of one created is all the known work (but not success).
    expect(commandProgress('waiting', 0, { tasks: 0, children: 0 }, tasks, [])).toBe(
      MAX_UNFINISHED,
    );
    expect(commandProgress('succeeded', 0, { tasks: 0, children: 0 }, tasks, [])).toBe(100);
  });

  it('weights tasks and children together by the declared counts; undo tasks do not count', () => {
    const tasks = [
      { progress: 100, undo: false },
      { progress: 50, undo: false },
      { progress: 100, undo: true },
    ];
    // (100 + 50 + 30) / (max(2, 2) + max(4, 1)) = 180 / 6 = 30
    expect(commandProgress('waiting', 0, { tasks: 2, children: 4 }, tasks, [30])).toBe(30);
    expect(commandProgress('pending', 0, { tasks: 0, children: 0 }, [], [])).toBe(0);
  });

  it('failed or cancelled keeps the last value instead of jumping to 100', () => {
    expect(
      commandProgress(
        'failed',
        40,
        { tasks: 4, children: 0 },
        [{ progress: 100, undo: false }],
        [],
      ),
    ).toBe(40);
    expect(
      commandProgress(
        'cancelled',
        10,
        { tasks: 1, children: 0 },
        [{ progress: 100, undo: false }],
        [],
      ),
    ).toBe(MAX_UNFINISHED);
    expect(taskProgress('failed', 42.5, 90)).toBe(42.5);
    expect(taskProgress('cancelled', 12)).toBe(12);
  });

  it('bounds: always 0..100 with one decimal, and 100 only on success', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...COMMAND_STATUSES),
        percent,
        fc.nat(20),
        fc.nat(20),
        fc.array(
          fc.record({ progress: fc.double({ min: 0, max: 100, noNaN: true }), undo: fc.boolean() }),
          { maxLength: 20 },
        ),
        fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { maxLength: 20 }),
        (status, previous, et, ec, tasks, children) => {
          const p = commandProgress(status, previous, { tasks: et, children: ec }, tasks, children);
          expect(p).toBeGreaterThanOrEqual(0);
          expect(p).toBeLessThanOrEqual(100);
          expect(oneDecimal(p)).toBe(true);
          expect(p === 100).toBe(status === 'succeeded');
        },
      ),
    );
  });

  it('task progress: 0..100, 100 only once succeeded, never below what was shown', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...TASK_STATUSES),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.option(percent, { nil: undefined }),
        (status, previous, reported) => {
          const p = taskProgress(status, previous, reported);
          expect(p).toBeGreaterThanOrEqual(0);
          expect(p).toBeLessThanOrEqual(100);
          expect(p === 100).toBe(status === 'succeeded');
          if (status !== 'succeeded')
            expect(p).toBeGreaterThanOrEqual(Math.min(MAX_UNFINISHED, toPercent(previous)));
        },
      ),
    );
  });

  it('weighting: k of n declared tasks succeeded (the rest not started) shows floor(k/n), whatever was created', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.nat(50),
        fc.nat(50),
        (n, kRaw, createdRaw) => {
          const k = Math.min(kRaw, n);
          const created = Math.min(n, Math.max(k, createdRaw));
          const tasks = Array.from({ length: created }, (_, i) => ({
            progress: i < k ? 100 : 0,
            undo: false,
          }));
          const p = rollUp({
            status: 'waiting',
            previous: 0,
            expectedTasks: n,
            expectedChildren: 0,
            workTasks: created,
            workTaskSum: k * 100,
            children: 0,
            childSum: 0,
          });
          expect(p).toBe(Math.min(MAX_UNFINISHED, Math.floor((k * 1000) / n) / 10));
          expect(commandProgress('waiting', 0, { tasks: n, children: 0 }, tasks, [])).toBe(p);
        },
      ),
    );
  });

  it('monotone as tasks report and end, in any order (running sums of a command, then its parent)', () => {
    type Event =
      { task: number; kind: 'report'; value: number } | { task: number; kind: 'end'; ok: boolean };
    const event = (n: number): fc.Arbitrary<Event> =>
      fc.oneof(
        fc.record({
          task: fc.nat(n - 1),
          kind: fc.constant('report' as const),
          value: fc.double({ min: 0, max: 100, noNaN: true }),
        }),
        fc.record({ task: fc.nat(n - 1), kind: fc.constant('end' as const), ok: fc.boolean() }),
      );
    const scenario = fc
      .integer({ min: 1, max: 8 })
      .chain((n) => fc.tuple(fc.constant(n), fc.nat(4), fc.array(event(n), { maxLength: 60 })));
    fc.assert(
      fc.property(scenario, ([n, extra, events]) => {
        const cache = new JobCache();
        const t0 = 1_000;
        const root = command(1, null, 1, 'waiting', 0, 1, t0);
        cache.mergeCommand(root);
        cache.mergeCommand(command(2, 1, 1, 'waiting', n + extra, 0, t0));
        for (let i = 0; i < n; i++) cache.mergeTask(task(2, i, 'running', t0));
        const shown = (): { root: number; child: number } => ({
          root: cache.job(1)!.root!.progress / 10,
          child: cache.job(1)!.commands.get(2)!.progress / 10,
        });
        let last = shown();
        const ended = new Set<number>();
        for (const e of events) {
          if (e.kind === 'report') cache.reportProgress(2, e.task, e.value);
          else if (!ended.has(e.task)) {
            ended.add(e.task);
            cache.updateTask({
              commandId: 2,
              ordinal: e.task,
              status: e.ok ? 'succeeded' : 'failed',
              result: null,
              error: null,
              stopRequested: false,
              endedAt: t0 + 1,
              deadlineAt: null,
            });
          }
          const now = shown();
          expect(now.child).toBeGreaterThanOrEqual(last.child);
          expect(now.root).toBeGreaterThanOrEqual(last.root);
          expect(now.root).toBeLessThanOrEqual(MAX_UNFINISHED);
          last = now;
        }
        // Everything succeeded and declared work is all there: the child shows (n·100)/(n+extra).
        if (ended.size === n && events.every((e) => e.kind === 'report' || e.ok)) {
          expect(last.child).toBe(
            Math.min(MAX_UNFINISHED, Math.floor((n * 1000) / (n + extra)) / 10),
          );
        }
      }),
    );
  });
});

function command(
  id: number,
  parentId: number | null,
  rootId: number,
  status: CommandStatus,
  expectedTasks: number,
  expectedChildren: number,
  at: number,
): CommandRecord {
  return {
    id, type: 'test', paramsVersion: 1, params: {}, status, parentId, rootId, seq: parentId === null ? null : 0,
    originStage: parentId === null ? null : 0, childMode: 'concurrent', failurePolicy: 'wait-all', expectedTasks,
    expectedChildren, taskCount: 0, childCount: 0, undoCount: 0, journalSeq: 0, stage: 0, stageDone: true,
    chainDone: false, cancelRequested: false, error: null, result: null, compensation: 'none', compensationError: null,
    data: null, attempts: 0, nextAttemptAt: null, lastError: null, deadlineAt: null, priority: 0, queuedSince: null, idempotencyKey: null,
    createdAt: at, updatedAt: at, endedAt: null, tasksCleared: false, owner: null, leaseUntil: null,
  }; // prettier-ignore
}

function task(
  commandId: number,
  ordinal: number,
  status: TaskRecord['status'],
  at: number,
): TaskRecord {
  return {
    commandId,
    ordinal,
    origin: 0,
    agentId: 'a1',
    verb: 'sleep',
    args: null,
    status,
    result: null,
    error: null,
    deadlineAt: null,
    stopRequested: false,
    createdAt: at,
    endedAt: null,
  };
}
