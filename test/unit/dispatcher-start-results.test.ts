/**
 * The results of a start call are matched to their tasks. Brokers answer one result per request,
 * in request order (the port says so), and the dispatcher then takes them by position; a broker
 * that answers out of order, or leaves a task out, is matched by task id.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AgentBroker, StartRequest, StartResult } from '../../src/brokers/port.js';
import { ManualClock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import { ErrorCode } from '../../src/core/errors.js';
import { Dispatcher } from '../../src/engine/dispatcher.js';
import type { LiveTask } from '../../src/engine/live.js';
import {
  dispatcherEvents,
  dispatcherOptions,
  liveCommand,
  liveTask,
  settle,
} from '../support/live.js';

const type = defineCommand({ name: 'unit.start-results', schema: z.object({}), execute() {} });

/** Starts 5 tasks in one call; the agent refuses the second; `answer` orders the results. */
async function startFive(
  answer: (results: StartResult[]) => StartResult[],
): Promise<{ tasks: LiveTask[]; started: LiveTask[]; rejected: LiveTask[]; retried: number }> {
  let calls = 0;
  const broker: AgentBroker = {
    agentIds: () => Promise.resolve(['a']),
    startTasks: (_agent, requests: readonly StartRequest[]) => {
      calls++;
      const results = requests.map((r, i): StartResult =>
        i === 1 && calls === 1
          ? {
              taskId: r.taskId,
              accepted: false,
              error: { code: ErrorCode.TaskRejected, message: 'no' },
            }
          : { taskId: r.taskId, accepted: true },
      );
      return Promise.resolve(calls === 1 ? answer(results) : results);
    },
    getStatuses: (_agent, ids) =>
      Promise.resolve(ids.map((taskId) => ({ taskId, state: 'running' as const }))),
    stopTasks: () => Promise.resolve(),
    clearTasks: () => Promise.resolve(),
    listTasks: () => Promise.resolve([]),
  };
  const started: LiveTask[] = [];
  const rejected: LiveTask[] = [];
  const dispatcher = new Dispatcher({
    broker,
    clock: new ManualClock(),
    options: dispatcherOptions(),
    events: dispatcherEvents({
      started: (t) => void started.push(t),
      rejected: (t) => void rejected.push(t),
    }),
    prefix: 'x-',
  });
  const tasks: LiveTask[] = [];
  for (let i = 0; i < 5; i++) {
    const c = liveCommand(type, i + 1, { persisted: true });
    const t = liveTask(c, 0, { agentId: 'a', persisted: true });
    tasks.push(t);
    dispatcher.start(t);
  }
  await settle();
  dispatcher.stopAll();
  return { tasks, started, rejected, retried: calls - 1 };
}

describe('start results', () => {
  it('in request order: each task gets its own', async () => {
    const { tasks, started, rejected, retried } = await startFive((r) => r);
    expect(rejected).toEqual([tasks[1]]);
    expect(started).toEqual([tasks[0], tasks[2], tasks[3], tasks[4]]);
    expect(retried).toBe(0);
  });

  it('out of order: matched by task id', async () => {
    const { tasks, started, rejected, retried } = await startFive((r) => [...r].reverse());
    expect(rejected).toEqual([tasks[1]]);
    expect(started).toEqual([tasks[0], tasks[2], tasks[3], tasks[4]]);
    expect(retried).toBe(0);
  });

  it('with a task left out: the others matched by id, the one left out sent again', async () => {
    const { tasks, started, rejected, retried } = await startFive((r) => [
      r[4]!,
      r[1]!,
      r[0]!,
      r[2]!,
    ]);
    expect(rejected).toEqual([tasks[1]]);
    expect(started).toEqual(expect.arrayContaining([tasks[0], tasks[2], tasks[4]]));
    expect(retried).toBeGreaterThanOrEqual(1);
  });
});
