/**
 * Objects the engine makes per command, per task or per agent keep the hidden class (V8 "map")
 * they were built with when a field that started empty gets its first time: a field that first
 * holds a small integer (0, -1) and later a timestamp or a `performance.now()` changes its
 * representation, which deprecates the map of every such object once and deoptimizes all the
 * code that had seen them — a cost paid in the first seconds after a start (issue 15).
 *
 * Checked with V8's `%HaveSameMap` on an object made before the change and the changed one
 * (natives syntax enabled for this test file only).
 */
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { AgentLink } from '../../src/engine/dispatch-ports.js';
import { TaskRecord } from '../../src/brokers/in-process/task-record.js';
import { liveCommand, liveTask } from '../support/live.js';

setFlagsFromString('--allow-natives-syntax');
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- natives syntax needs its own parse
const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (
  a: object,
  b: object,
) => boolean;

const type = defineCommand({ name: 'unit.shape', schema: z.object({}), execute() {} });

describe('hidden classes stay put when a time is first set', () => {
  it('a command whose task ended keeps the map of a fresh one', () => {
    const fresh = liveCommand(type, 2);
    const ended = liveCommand(type, 1);
    const task = liveTask(ended, 0);
    task.markRunning();
    task.end('succeeded', null, null, Date.now());
    ended.taskEnded(task, Date.now());
    expect(ended.lastTaskEndAt).toBeGreaterThan(0);
    expect(sameMap(fresh, ended)).toBe(true);
    // the event's documented value when no task ended here
    expect(liveCommand(type, 3).lastTaskEndAt).toBe(-1);
  });

  it('an agent link that was polled and blocked keeps the map of a fresh one', () => {
    const fresh = new AgentLink('b');
    const used = new AgentLink('a');
    used.lastPollAt = Date.now() + 0.5;
    used.blockedUntil = Date.now() + 1_000.5;
    used.timerAt = Date.now() + 2_000.5;
    expect(sameMap(fresh, used)).toBe(true);
  });

  it("an in-process agent's ended task record keeps the map of a running one", () => {
    const running = new TaskRecord('t2', 'noop', null, Date.now());
    const ended = new TaskRecord('t1', 'noop', null, Date.now());
    ended.cancel(Date.now() + 0.5);
    expect(sameMap(running, ended)).toBe(true);
  });
});
