/**
 * A stop is repeated until the agent confirms the task ended: an agent that acknowledged a stop
 * but still reports the task running (the stop reached it before a late start, or was lost
 * inside it) is sent the stop again, at most once per poll interval, until it reports an end.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AgentBroker, AgentTaskState, TaskStatusReport } from '../../src/brokers/port.js';
import { ManualClock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import { Dispatcher } from '../../src/engine/dispatcher.js';
import type { LiveTask } from '../../src/engine/live.js';
import {
  dispatcherEvents,
  dispatcherOptions,
  liveCommand,
  liveTask,
  settle,
} from '../support/live.js';

const type = defineCommand({ name: 'unit.stops', schema: z.object({}), execute() {} });

describe('stops', () => {
  it('are sent again while the agent still reports the task running, until it ends', async () => {
    let state: AgentTaskState = 'running';
    const stops: string[][] = [];
    const broker: AgentBroker = {
      agentIds: () => Promise.resolve(['a']),
      startTasks: () => Promise.resolve([]),
      getStatuses: (_agent, ids) =>
        Promise.resolve(ids.map((taskId): TaskStatusReport => ({ taskId, state }))),
      // Acknowledged, but the task goes on running (the stop came before a late start).
      stopTasks: (_agent, ids) => {
        stops.push([...ids]);
        return Promise.resolve();
      },
      clearTasks: () => Promise.resolve(),
      listTasks: () => Promise.resolve([]),
    };
    const ended: LiveTask[] = [];
    const events = dispatcherEvents({
      report: (t, r) => {
        if (r.state !== 'running') ended.push(t);
      },
    });
    const clock = new ManualClock();
    const dispatcher = new Dispatcher({
      broker,
      clock,
      options: dispatcherOptions(),
      events,
      prefix: 'x-',
    });
    const c = liveCommand(type, 1, { persisted: true });
    const t = liveTask(c, 0, { agentId: 'a', persisted: true });
    t.status = 'running';
    dispatcher.watch(t);
    await settle();
    t.stopRequested = true;
    dispatcher.stop(t);
    await settle();
    expect(stops).toHaveLength(1);

    // Polls that still see it running send the stop again, once per poll interval.
    for (let i = 0; i < 3; i++) {
      clock.advance(1_000);
      await settle();
    }
    expect(stops.length).toBeGreaterThanOrEqual(3);
    expect(stops.length).toBeLessThanOrEqual(4);
    expect(stops.every((ids) => ids.length === 1 && ids[0] === t.agentTaskId)).toBe(true);

    // Once the agent reports the end, no more stops.
    state = 'cancelled';
    clock.advance(1_000);
    await settle();
    expect(ended).toEqual([t]);
    expect(t.agentDone).toBe(true);
    const sent = stops.length;
    clock.advance(5_000);
    await settle();
    expect(stops).toHaveLength(sent);
    dispatcher.stopAll();
  });
});
