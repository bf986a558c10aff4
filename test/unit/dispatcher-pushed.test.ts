/**
 * While the broker pushes every status change of an agent (`pushesStatuses`: a live, complete
 * long-poll feed), a poll cycle asks only about the tasks no report has vouched for — just
 * started or watched, being stopped, unknown to the agent — so its cost follows them, not the
 * tasks in flight. Nothing is lost: a pushed end is acted on at once, a dropped feed (or its
 * periodic check) brings back polls of every task, stops are sent again, vanished tasks fail.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
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
import { pushingAgent } from '../support/pushing-agent.js';

const type = defineCommand({ name: 'unit.pushed', schema: z.object({}), execute() {} });

function setup(withPushes = true, tasks = 50) {
  const agent = pushingAgent(withPushes);
  const ended: LiveTask[] = [];
  const vanished: LiveTask[] = [];
  const clock = new ManualClock();
  const dispatcher = new Dispatcher({
    broker: agent.broker,
    clock,
    options: dispatcherOptions(),
    events: dispatcherEvents({
      report: (t, r) => {
        if (r.state !== 'running' && r.state !== 'unknown') {
          t.status = r.state;
          ended.push(t);
        }
      },
      vanished: (t) => {
        t.status = 'failed';
        vanished.push(t);
      },
    }),
    prefix: 'x-',
  });
  const c = liveCommand(type, 1, { persisted: true });
  const all: LiveTask[] = [];
  for (let i = 0; i < tasks; i++) {
    const t = liveTask(c, i, { agentId: 'a', persisted: true });
    t.status = 'running';
    agent.states.set(t.agentTaskId, 'running');
    all.push(t);
  }
  return { ...agent, clock, dispatcher, ended, vanished, tasks: all };
}

/** Task ids asked about since `from` (an index into `asked`). */
function askedSince(asked: readonly string[][], from: number): number {
  return asked.slice(from).reduce((n, ids) => n + ids.length, 0);
}

async function cycles(clock: ManualClock, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    clock.advance(1_000);
    await settle();
  }
}

describe('a poll cycle while the broker pushes every status change', () => {
  it('asks about no task once each is vouched for, and counts what it asked', async () => {
    const { dispatcher, clock, asked, tasks } = setup();
    for (const t of tasks) dispatcher.watch(t);
    await settle();
    // Watched tasks are asked about once: their state may have been pushed before they were.
    expect(askedSince(asked, 0)).toBe(50);
    let mark = asked.length;
    await cycles(clock, 5);
    expect(askedSince(asked, mark)).toBe(0);

    // The counter for metrics tells the same.
    mark = asked.length;
    const before = dispatcher.pollCounts();
    await cycles(clock, 5);
    expect(askedSince(asked, mark)).toBe(0);
    const after = dispatcher.pollCounts();
    expect(after.tasks).toBe(before.tasks);
    expect(after.polls).toBeGreaterThanOrEqual(before.polls + 5);
    dispatcher.stopAll();
  });

  it('asks about every task each cycle without pushes (the port method absent)', async () => {
    const { dispatcher, clock, asked, tasks } = setup(false);
    for (const t of tasks) dispatcher.watch(t);
    await settle();
    const mark = asked.length;
    await cycles(clock, 3);
    expect(askedSince(asked, mark)).toBe(150);
    dispatcher.stopAll();
  });

  it('acts on a pushed end at once, and asks about every task once the feed drops', async () => {
    const { dispatcher, clock, asked, tasks, states, feed, push, ended } = setup();
    for (const t of tasks) dispatcher.watch(t);
    await settle();
    const first = tasks[0]!;
    push(first.agentTaskId, 'succeeded');
    expect(ended).toEqual([first]);

    const second = tasks[1]!;
    states.set(second.agentTaskId, 'failed'); // a change the feed missed (no push)
    const mark = asked.length;
    feed.live = false; // the long-poll dropped, or its periodic check is due
    await cycles(clock, 1);
    expect(askedSince(asked, mark)).toBe(49);
    expect(ended).toEqual([first, second]);
    dispatcher.stopAll();
  });

  it('asks about every task after an activity hint (e.g. the agent restarted)', async () => {
    const { dispatcher, clock, asked, tasks } = setup();
    for (const t of tasks) dispatcher.watch(t);
    await settle();
    await cycles(clock, 1);
    const mark = asked.length;
    dispatcher.pollSoon('a');
    await settle();
    expect(askedSince(asked, mark)).toBe(50);
    await cycles(clock, 2);
    expect(askedSince(asked, mark)).toBe(50);
    dispatcher.stopAll();
  });

  it('keeps asking about a stopping task, sending the stop again, until it ends', async () => {
    const { dispatcher, clock, asked, tasks, stops, push, ended } = setup();
    for (const t of tasks) dispatcher.watch(t);
    await settle();
    const t = tasks[3]!;
    t.stopRequested = true;
    dispatcher.stop(t);
    await settle();
    expect(stops).toHaveLength(1);
    const mark = asked.length;
    await cycles(clock, 3);
    // Only the stopping task is asked about; it still runs, so the stop goes out again.
    expect(asked.slice(mark).every((ids) => ids.length === 1 && ids[0] === t.agentTaskId)).toBe(
      true,
    );
    expect(stops.length).toBeGreaterThanOrEqual(3);
    push(t.agentTaskId, 'cancelled');
    expect(ended).toEqual([t]);
    const after = asked.length;
    const sent = stops.length;
    await cycles(clock, 3);
    expect(askedSince(asked, after)).toBe(0);
    expect(stops).toHaveLength(sent);
    dispatcher.stopAll();
  });

  it('asks about a started task until a report vouches for it', async () => {
    const { dispatcher, clock, asked, tasks } = setup();
    const t = tasks[0]!;
    t.status = 'created';
    dispatcher.start(t);
    await settle();
    // The start was accepted, then the task was asked about once (its first report).
    expect(asked.flat()).toEqual([t.agentTaskId]);
    const mark = asked.length;
    await cycles(clock, 3);
    expect(askedSince(asked, mark)).toBe(0);
    dispatcher.stopAll();
  });

  it('fails a task the agent lost after the grace period, asking about it alone each cycle', async () => {
    const { dispatcher, clock, asked, tasks, states, feed, vanished } = setup();
    for (const t of tasks) dispatcher.watch(t);
    await settle();
    const lost = tasks[7]!;
    states.delete(lost.agentTaskId); // the agent lost it: no push tells of that
    feed.live = false; // the periodic check: every task asked about once
    await cycles(clock, 1);
    feed.live = true;
    expect(lost.unknownSince).not.toBeNull();
    const mark = asked.length;
    await cycles(clock, 5);
    expect(asked.slice(mark).every((ids) => ids.length === 1 && ids[0] === lost.agentTaskId)).toBe(
      true,
    );
    expect(asked.length - mark).toBeGreaterThanOrEqual(5);
    await cycles(clock, 30);
    expect(vanished).toEqual([lost]);
    dispatcher.stopAll();
  });
});
