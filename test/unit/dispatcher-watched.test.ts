/**
 * Tasks watched after a restart are unvouched until a poll's report vouches for them, like any
 * other, but they are listed apart (not in the link's set of unvouched ids: see
 * `AgentLink.watch`). What the first poll could not settle stays unvouched: a failed poll, an
 * answer without a report for some of them, or one out of order; and a watched task that ended,
 * or was stopped, before that poll is asked about as before.
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

const type = defineCommand({ name: 'unit.watched', schema: z.object({}), execute() {} });

function setup(n = 20, pushes = true) {
  const agent = pushingAgent(pushes);
  const { broker, states } = agent;
  const ended: LiveTask[] = [];
  const reported: string[] = [];
  const clock = new ManualClock();
  const dispatcher = new Dispatcher({
    broker,
    clock,
    options: dispatcherOptions(),
    events: dispatcherEvents({
      report: (t, r) => {
        reported.push(`${t.agentTaskId} ${r.state}`);
        if (r.state !== 'running' && r.state !== 'unknown') {
          t.status = r.state;
          ended.push(t);
        }
      },
    }),
    prefix: 'x-',
    random: () => 0.5,
  });
  const c = liveCommand(type, 1, { persisted: true });
  const tasks: LiveTask[] = [];
  for (let i = 0; i < n; i++) {
    const t = liveTask(c, i, { agentId: 'a', persisted: true });
    t.status = 'running';
    states.set(t.agentTaskId, 'running');
    tasks.push(t);
  }
  return { ...agent, dispatcher, clock, tasks, ended, reported };
}

async function cycles(clock: ManualClock, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    clock.advance(1_000);
    await settle();
  }
}

const ids = (tasks: readonly LiveTask[]): string[] => tasks.map((t) => t.agentTaskId);

describe('tasks watched after a restart', () => {
  it('are asked about once, then no more while their statuses are pushed', async () => {
    const { dispatcher, clock, asked, tasks } = setup();
    for (const t of tasks) dispatcher.watch(t);
    await settle();
    expect(asked).toEqual([ids(tasks)]);
    await cycles(clock, 5);
    expect(asked).toHaveLength(1);
    dispatcher.stopAll();
  });

  it('are all asked about again when the first poll fails', async () => {
    const { dispatcher, clock, asked, tasks, answerNext } = setup();
    answerNext('fail');
    for (const t of tasks) dispatcher.watch(t);
    await settle();
    expect(asked).toHaveLength(1);
    await cycles(clock, 1); // past the back-off
    expect(asked).toHaveLength(2);
    expect([...asked[1]!].sort()).toEqual(ids(tasks).sort());
    await cycles(clock, 5);
    expect(asked).toHaveLength(2);
    dispatcher.stopAll();
  });

  it('without a report in the first answer stay unvouched; out of order, they are vouched for', async () => {
    const omitted = setup();
    omitted.answerNext('omit-first');
    for (const t of omitted.tasks) omitted.dispatcher.watch(t);
    await settle();
    await cycles(omitted.clock, 3);
    // The answer was not one report per id in order: the watched tasks went back to the set of
    // unvouched ones, the reports vouched for those they named, the one left was asked again.
    expect(omitted.asked.slice(1).flat()).toEqual([omitted.tasks[0]!.agentTaskId]);
    omitted.dispatcher.stopAll();

    const reversed = setup();
    reversed.answerNext('reversed');
    for (const t of reversed.tasks) reversed.dispatcher.watch(t);
    await settle();
    await cycles(reversed.clock, 3);
    expect(reversed.asked).toHaveLength(1);
    reversed.dispatcher.stopAll();
  });

  it('that ended or were stopped before the first poll are asked about as before', async () => {
    const { dispatcher, clock, asked, stops, tasks, ended, push } = setup();
    for (const t of tasks) dispatcher.watch(t);
    const done = tasks[0]!;
    push(done.agentTaskId, 'succeeded'); // pushed before any poll: no longer polled
    expect(ended).toEqual([done]);
    const stopping = tasks[1]!;
    stopping.stopRequested = true;
    dispatcher.stop(stopping);
    await settle();
    expect(stops).toEqual([[stopping.agentTaskId]]);
    // Each of the others once (the stopping one not twice), the ended one not at all.
    expect(asked[0]!.slice().sort()).toEqual(ids(tasks.slice(1)).sort());
    const mark = asked.length;
    await cycles(clock, 3);
    // The stopping task still runs: asked about each cycle until it ends.
    expect(asked.slice(mark).every((a) => a.length === 1 && a[0] === stopping.agentTaskId)).toBe(
      true,
    );
    expect(asked.length - mark).toBeGreaterThanOrEqual(3);
    dispatcher.stopAll();
  });

  it('one the agent does not know is asked about alone each cycle', async () => {
    const { dispatcher, clock, asked, tasks, states } = setup();
    const lost = tasks[4]!;
    states.delete(lost.agentTaskId);
    for (const t of tasks) dispatcher.watch(t);
    await settle();
    expect(lost.unknownSince).not.toBeNull();
    const mark = asked.length;
    await cycles(clock, 3);
    expect(asked.slice(mark)).toEqual([[lost.agentTaskId], [lost.agentTaskId], [lost.agentTaskId]]);
    dispatcher.stopAll();
  });

  it('a poll answered in order is applied to the tasks asked about, but not to one that ended meanwhile', async () => {
    const { dispatcher, clock, asked, tasks, ended, reported, push, answerNext, release } = setup(
      5,
      false,
    );
    for (const t of tasks) dispatcher.watch(t);
    await settle();
    expect(reported).toEqual(ids(tasks).map((id) => `${id} running`));
    reported.length = 0;
    answerNext('held');
    await cycles(clock, 1);
    expect(asked).toHaveLength(2); // every task, asked about: the answer is held
    const done = tasks[2]!;
    push(done.agentTaskId, 'succeeded'); // the end pushed while the poll waits
    expect(ended).toEqual([done]);
    release();
    await settle();
    // The held answer still says `running` of it: not applied (it is no longer polled).
    expect(reported).toEqual([
      `${done.agentTaskId} succeeded`,
      ...ids(tasks)
        .filter((id) => id !== done.agentTaskId)
        .map((id) => `${id} running`),
    ]);
    await cycles(clock, 1);
    expect(asked[2]).toEqual(ids(tasks).filter((id) => id !== done.agentTaskId));
    dispatcher.stopAll();
  });

  it('a stale `running` in a held answer does not bring back a stopped task that ended meanwhile', async () => {
    const { dispatcher, clock, asked, stops, tasks, ended, push, answerNext, release } = setup(5);
    for (const t of tasks) dispatcher.watch(t);
    await settle();
    const s = tasks[1]!;
    s.stopRequested = true;
    dispatcher.stop(s);
    await settle();
    await cycles(clock, 2); // asked about alone, the stop sent again
    answerNext('held');
    dispatcher.pollSoon('a'); // every task asked about: the answer is held
    await settle();
    push(s.agentTaskId, 'cancelled'); // its end pushed while the poll waits
    expect(ended).toEqual([s]);
    const sent = stops.length;
    clock.advance(5_000);
    release(); // still says `running` of it
    await settle();
    const mark = asked.length;
    await cycles(clock, 3);
    expect(asked.slice(mark)).toEqual([]);
    expect(stops).toHaveLength(sent);
    dispatcher.stopAll();
  });

  it('watched later, beside a task already unvouched: each report goes to its own task', async () => {
    const { dispatcher, clock, asked, tasks, states } = setup(4);
    const [lost, ...later] = tasks as [LiveTask, ...LiveTask[]];
    states.delete(lost.agentTaskId);
    dispatcher.watch(lost);
    await settle();
    expect(lost.unknownSince).not.toBeNull(); // unknown to the agent: in the set, asked each cycle
    const since = lost.unknownSince;
    for (const t of later) dispatcher.watch(t); // e.g. a claimed tree's tasks
    await cycles(clock, 1);
    expect(asked.at(-1)).toEqual(ids([lost, ...later]));
    expect(lost.unknownSince).toBe(since);
    for (const t of later) expect(t.unknownSince).toBeNull();
    await cycles(clock, 2);
    expect(asked.slice(-2)).toEqual([[lost.agentTaskId], [lost.agentTaskId]]);
    dispatcher.stopAll();
  });
});
