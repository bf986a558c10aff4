/**
 * A round the broker refuses for want of capacity of its own (`BROKER_SATURATED`: no call slot
 * within the budget, no file descriptor) does not blame the agent: it is not reported down, not
 * backed off exponentially, and its round comes again about a second later.
 */
import { expect, it } from 'vitest';
import { z } from 'zod';
import type { AgentBroker, TaskStatusReport } from '../../src/brokers/port.js';
import { ManualClock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import { CocoError, ErrorCode } from '../../src/core/errors.js';
import { Dispatcher } from '../../src/engine/dispatcher.js';
import type { LiveTask } from '../../src/engine/live.js';
import {
  dispatcherEvents,
  dispatcherOptions,
  liveCommand,
  liveTask,
  settle,
} from '../support/live.js';

const type = defineCommand({ name: 'unit.saturated', schema: z.object({}), execute() {} });

it.each([
  ['BROKER_SATURATED', ErrorCode.BrokerSaturated, false],
  ['another failure', ErrorCode.AgentUnavailable, true],
])('a poll refused with %s: the agent reported down: %s', async (_what, code, reportedDown) => {
  let refusals = 3;
  const asked: number[] = [];
  const broker: AgentBroker = {
    agentIds: () => Promise.resolve(['a']),
    startTasks: () => Promise.resolve([]),
    getStatuses: (_agent, ids) => {
      asked.push(ids.length);
      if (refusals-- > 0) return Promise.reject(new CocoError(code, 'refused'));
      return Promise.resolve(
        ids.map((taskId): TaskStatusReport => ({ taskId, state: 'succeeded', result: null })),
      );
    },
    stopTasks: () => Promise.resolve(),
    clearTasks: () => Promise.resolve(),
    listTasks: () => Promise.resolve([]),
  };
  const states: boolean[] = [];
  const ended: LiveTask[] = [];
  const clock = new ManualClock();
  const dispatcher = new Dispatcher({
    broker,
    clock,
    // A long back-off for a failing agent: a saturated node must not wait for it.
    options: dispatcherOptions({ backoffBaseMs: 30_000, backoffMaxMs: 60_000 }),
    events: dispatcherEvents({
      agentState: (_id, up) => states.push(up),
      report: (t, r) => {
        if (r.state === 'succeeded') ended.push(t);
      },
    }),
    prefix: 'x-',
    random: () => 0.5,
  });
  const c = liveCommand(type, 1, { persisted: true });
  const t = liveTask(c, 0, { agentId: 'a', persisted: true });
  t.status = 'running';
  dispatcher.watch(t);
  await settle();
  // Three refused rounds, each retried about a second later.
  for (let i = 0; i < 3; i++) {
    clock.advance(1_000);
    await settle();
  }
  if (reportedDown) {
    expect(states).toContain(false);
    expect(ended).toEqual([]);
  } else {
    expect(states).not.toContain(false);
    expect(asked.length).toBeGreaterThanOrEqual(4);
    expect(ended).toEqual([t]);
  }
  dispatcher.stopAll();
});
