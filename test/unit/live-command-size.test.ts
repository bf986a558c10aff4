/**
 * A live command's and task's memory (engine/live.ts, live-entries.ts): the fields most never
 * set live in a side object made on the first such value, so that a round of trees in flight
 * (every scavenge copies them) holds less; the accessors read and write them as the fields did.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import type { CommandRecord } from '../../src/core/records.js';
import { LiveCommand, LiveTask } from '../../src/engine/live.js';
import { liveCommand } from '../support/live.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const type = defineCommand({ name: 'size.cmd', schema: z.object({}), execute() {} });

/** The young and old heap's growth per command while `n` of them are held, in bytes. */
function bytesPerCommand(n: number): number {
  const held: LiveCommand[] = [];
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  // As an engine makes them: a clock reading (a double) for its times.
  for (let i = 0; i < n; i++) {
    const c = new LiveCommand({
      id: i + 1,
      type,
      paramsVersion: 1,
      rawParams: null,
      params: null,
      parentId: null,
      rootId: i + 1,
      seq: null,
      originStage: null,
      childMode: 'concurrent',
      failurePolicy: 'wait-all',
      idempotencyKey: null,
      createdAt: Date.now() + 0.5,
      persisted: false,
    });
    c.setStatus('waiting', Date.now() + 0.5);
    held.push(c);
  }
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  expect(held).toHaveLength(n);
  return (after - before - 8 * n) / n;
}

/** The heap's growth per task while `n` of them (of one command) are held, in bytes. */
function bytesPerTask(n: number): number {
  const c = liveCommand(type, 1);
  const held: LiveTask[] = [];
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) {
    const t = new LiveTask(
      c,
      i,
      0,
      'a',
      'v',
      null,
      `x-1-${i}`,
      'created',
      null,
      null,
      null,
      false,
      Date.now() + 0.5,
      null,
      false,
    );
    held.push(t);
  }
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  expect(held).toHaveLength(n);
  // Less the ids (made here, not by the task) and the array's slot.
  return (after - before) / n - 8 - (24 + 8 + 8);
}

describe('live command memory', () => {
  it('a command that sets none of its rare fields stays under 400 bytes', () => {
    // ~355 bytes with its boxed times (Node 20); ~480 with every field its own.
    const per = Math.min(bytesPerCommand(20_000), bytesPerCommand(20_000));
    expect(per).toBeLessThan(400);
  });

  it('a command none of whose tasks has ended here holds no box for that time (under 352 bytes)', () => {
    // ~343 bytes (Node 20); ~360 when the time of its last task end was a double field (a box
    // per command from the start: 1,000,000 at a restart).
    const per = Math.min(bytesPerCommand(20_000), bytesPerCommand(20_000));
    expect(per).toBeLessThan(352);
    const c = liveCommand(type, 1);
    expect(c.lastTaskEndAt).toBe(-1);
  });

  it('a task that sets none of its rare fields stays under 170 bytes', () => {
    // ~144 bytes with its boxed time (Node 20); ~189 with every field its own.
    expect(Math.min(bytesPerTask(20_000), bytesPerTask(20_000))).toBeLessThan(170);
  });

  it('the rare fields read back what was set, and a null set on a command without them makes nothing', () => {
    const c = liveCommand(type, 1);
    expect([c.error, c.result, c.data, c.undo, c.timer, c.span, c.traceContext]).toEqual([
      null, null, null, null, null, null, null,
    ]); // prettier-ignore
    c.error = null;
    c.deadlineAt = null;
    const error = { code: 'E', message: 'm' };
    c.error = error;
    c.result = undefined;
    c.data = { d: 1 };
    c.nextAttemptAt = 5;
    c.queuedSince = 7;
    c.undo ??= [];
    expect(c.error).toBe(error);
    expect(c.result).toBeUndefined();
    expect(c.data).toEqual({ d: 1 });
    expect([c.nextAttemptAt, c.queuedSince, c.deadlineAt, c.lastError]).toEqual([5, 7, null, null]);
    expect(c.undo).toEqual([]);
    c.error = null;
    expect(c.error).toBeNull();
    const r: CommandRecord = { ...c.toRecord(), deadlineAt: 9, compensationError: error };
    const d = liveCommand(type, 1);
    d.restore(r);
    expect(d.toRecord()).toEqual(r);
    const t = new LiveTask(
      d,
      0,
      0,
      'a',
      'v',
      null,
      'x-1-0',
      'created',
      null,
      null,
      50,
      false,
      1,
      null,
      false,
    );
    expect([t.deadlineAt, t.error, t.progress, t.onAgentDone, t.unknownSince]).toEqual([
      50,
      null,
      0,
      null,
      null,
    ]);
    t.progress = 3;
    t.end('failed', null, null, 2);
    expect(t.toRecord()).toMatchObject({
      deadlineAt: 50,
      status: 'failed',
      error: { code: 'TASK_FAILED' },
    });
    expect(t.progress).toBe(3);
  });
});
