/**
 * Reports relayed by the node polling an agent (a shared store) are read late: an `unknown` seen
 * before this node's start reached the agent may arrive after the agent accepted the start. Such
 * an `unknown` must begin the grace period, not end the task as "stopped before it started" (which
 * would also clear it on the agent while it runs), and a relayed `running` ends the grace period.
 *
 * Also the cluster's loops on a shared store (cluster.ts, agent-leases.ts): the relay, and the
 * read of the other nodes' tasks, one at a time however slow the store.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AgentBroker, StartRequest, StartResult } from '../../src/brokers/port.js';
import { ManualClock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import { CocoError, ErrorCode } from '../../src/core/errors.js';
import { Dispatcher, type PollGate } from '../../src/engine/dispatcher.js';
import { LiveTask } from '../../src/engine/live.js';
import { AgentLeases } from '../../src/engine/agent-leases.js';
import { Cluster } from '../../src/engine/cluster.js';
import type { Coordinator } from '../../src/engine/coordinator.js';
import { EngineEvents } from '../../src/engine/events.js';
import { CommandRegistry } from '../../src/core/registry.js';
import { agentTaskId } from '../../src/core/records.js';
import type { SharedStore, TaskReportRecord } from '../../src/store/shared-port.js';
import {
  dispatcherEvents,
  dispatcherOptions,
  liveCommand,
  liveTask,
  settle,
} from '../support/live.js';

const type = defineCommand({ name: 'unit.relayed', schema: z.object({}), execute() {} });

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

function setup(): {
  dispatcher: Dispatcher;
  started: LiveTask[];
  vanished: LiveTask[];
  calls: string[];
  stopAnswer: { promise: Promise<void>; resolve: () => void };
  stopCalled: Promise<void>;
  first: LiveTask;
  second: LiveTask;
} {
  const calls: string[] = [];
  const stopAnswer = deferred();
  const stopSeen = deferred();
  const broker: AgentBroker = {
    agentIds: () => Promise.resolve(['agent-1']),
    startTasks: (_agent: string, requests: readonly StartRequest[]) => {
      calls.push('start');
      return Promise.resolve(
        requests.map((r): StartResult => ({ taskId: r.taskId, accepted: true })),
      );
    },
    getStatuses: () => Promise.reject(new Error('this node does not poll agent-1')),
    stopTasks: () => {
      calls.push('stop');
      stopSeen.resolve();
      return stopAnswer.promise;
    },
    clearTasks: (_agent: string, ids: readonly string[]) => {
      calls.push(`clear ${ids.join(',')}`);
      return Promise.resolve();
    },
    listTasks: () => Promise.resolve([]),
  };
  const started: LiveTask[] = [];
  const vanished: LiveTask[] = [];
  const events = dispatcherEvents({
    started: (t) => {
      started.push(t);
      t.status = 'running';
    },
    vanished: (t) => vanished.push(t),
  });
  const clock = new ManualClock();
  // Another node holds agent-1's lease: this node starts, stops and clears, but does not poll.
  const gate: PollGate = {
    mayPoll: () => false,
    wanted: () => {},
    foreignIds: () => [],
    foreignReport: () => {},
    strangers: (ids) => Promise.resolve([...ids]),
  };
  const dispatcher = new Dispatcher({
    broker,
    clock,
    options: dispatcherOptions({ reconcileIntervalMs: 60_000 }),
    events,
    prefix: 'x-',
    gate,
  });
  const c = liveCommand(type, 1, { persisted: true });
  return {
    dispatcher,
    started,
    vanished,
    calls,
    stopAnswer,
    stopCalled: stopSeen.promise,
    first: liveTask(c, 0, { agentId: 'agent-1', persisted: true }),
    second: liveTask(c, 1, { agentId: 'agent-1', persisted: true }),
  };
}

/** Agent leases on a stub store (only what a test calls); a store failure fails the test. */
function stubLeases(store: object, clock: ManualClock): AgentLeases {
  const leases = new AgentLeases({
    nodeId: 'a',
    storeId: 's',
    store: store as SharedStore,
    clock,
    callTimeoutMs: 1_000,
  });
  leases.onFailure((error) => {
    throw error;
  });
  return leases;
}

/** A cluster on a stub store (only what a test's loops call), failures collected. */
function stubCluster(
  store: SharedStore,
  clock: ManualClock,
  failures: unknown[],
  intervalMs: number,
): Cluster {
  return new Cluster({
    nodeId: 'a',
    store,
    registry: new CommandRegistry([]),
    clock,
    logger: {
      debug() {},
      info() {},
      warn: (o: object) => failures.push(o),
      error: (o: object) => failures.push(o),
    },
    events: new EngineEvents(),
    broker: {} as unknown as AgentBroker,
    coordinator: { liveTask: () => undefined } as unknown as Coordinator,
    dispatcher: { agentsWithTasks: () => [] } as unknown as Dispatcher,
    leases: new AgentLeases({ nodeId: 'a', storeId: 's', store, clock, callTimeoutMs: 1_000 }),
    callTimeoutMs: 1_000,
    claimIntervalMs: intervalMs,
    foreignRefreshMs: intervalMs,
    claimBatch: 10,
    leaseLost: (error) => failures.push(error),
  });
}

describe('relayed reports', () => {
  it('a stale relayed unknown read while the start is being accepted begins the grace period', async () => {
    const s = setup();
    // `second` has its stop queued, so the round that starts `first` waits in stopTasks after
    // the start was accepted and before the acceptance is reported.
    s.second.stopRequested = true;
    s.dispatcher.stop(s.second);
    s.dispatcher.start(s.first);
    await s.stopCalled;
    expect(s.calls).toEqual(['start', 'stop']);
    expect(s.first.status).toBe('created');

    s.dispatcher.applyRelayed(s.first, { taskId: s.first.agentTaskId, state: 'unknown' });
    expect(s.vanished).toEqual([]);
    expect(s.first.agentDone).toBe(false);
    expect(s.first.unknownSince).not.toBeNull();

    s.stopAnswer.resolve();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(s.started).toEqual([s.first]);
    expect(s.calls.filter((c) => c.startsWith('clear'))).toEqual([]);

    // The polling node relays `running` once the agent knows the task again.
    s.dispatcher.applyRelayed(s.first, { taskId: s.first.agentTaskId, state: 'running' });
    expect(s.first.unknownSince).toBeNull();
    s.dispatcher.stop(s.first);
  });

  it('an unknown for a task whose start was never sent ends it at once', async () => {
    const s = setup();
    s.second.stopRequested = true;
    s.dispatcher.stop(s.second);
    await s.stopCalled;
    s.dispatcher.applyRelayed(s.second, { taskId: s.second.agentTaskId, state: 'unknown' });
    expect(s.vanished).toEqual([s.second]);
    expect(s.second.agentDone).toBe(true);
    s.stopAnswer.resolve();
  });
});

describe('the relay of the node polling an agent', () => {
  it('relays `running` once after having relayed `unknown` for a task, and not otherwise', async () => {
    const posted: TaskReportRecord[][] = [];
    const clock = new ManualClock();
    const store = {
      foreignTasks: () =>
        Promise.resolve([
          { commandId: 7, ordinal: 0, agentId: 'agent-1', owner: 'b' },
          { commandId: 8, ordinal: 0, agentId: 'agent-1', owner: 'b' },
        ]),
      postReports: (reports: readonly TaskReportRecord[]) => {
        posted.push([...reports]);
        return Promise.resolve();
      },
    };
    const relay = stubLeases(store, clock);
    relay.hold('agent-1', clock.now() + 60_000);
    await relay.refresh();
    const t7 = agentTaskId('s', 7, 0);
    const t8 = agentTaskId('s', 8, 0);
    expect([...relay.foreignIds('agent-1')].sort()).toEqual([t7, t8].sort());
    const statuses = (): string[] => posted.flat().map((r) => `${r.commandId}:${r.status}`);

    relay.foreignReport('agent-1', { taskId: t7, state: 'unknown' });
    relay.foreignReport('agent-1', { taskId: t8, state: 'running' });
    await relay.flush();
    expect(statuses()).toEqual(['7:unknown']);

    relay.foreignReport('agent-1', { taskId: t7, state: 'running' });
    relay.foreignReport('agent-1', { taskId: t7, state: 'running' });
    relay.foreignReport('agent-1', { taskId: t8, state: 'running' });
    await relay.flush();
    expect(statuses()).toEqual(['7:unknown', '7:running']);
  });
});

describe('the read of the other nodes’ tasks', () => {
  it('runs one at a time however often it is asked, and once more for those who asked meanwhile', async () => {
    const clock = new ManualClock();
    const reads: { agents: string[]; answer: () => void }[] = [];
    const store = {
      foreignTasks: (_node: string, agentIds: readonly string[]) =>
        new Promise<[]>((resolve) =>
          reads.push({ agents: [...agentIds], answer: () => resolve([]) }),
        ),
    };
    const leases = stubLeases(store, clock);
    leases.hold('agent-1', clock.now() + 60_000); // reads
    // A store slower than the refresh interval: the timer asks again and again, and a new agent
    // is held, while the first read is in flight.
    const asked = [leases.refresh(), leases.refresh(), leases.refresh()];
    leases.hold('agent-2', clock.now() + 60_000);
    await settle();
    expect(reads.map((r) => r.agents)).toEqual([['agent-1']]);
    let done = 0;
    for (const p of asked) void p.then(() => (done += 1));

    reads[0]!.answer();
    await settle();
    // One more read, for all who asked meanwhile: it sees the agent held since.
    expect(reads.map((r) => r.agents)).toEqual([['agent-1'], ['agent-1', 'agent-2']]);
    expect(done).toBe(0); // they asked after the first read began: they wait for the second

    reads[1]!.answer();
    await settle();
    expect(done).toBe(3);
    expect(reads).toHaveLength(2);
    // Nothing in flight: the next ask reads at once.
    const later = leases.refresh();
    expect(reads).toHaveLength(3);
    reads[2]!.answer();
    await later;
  });
});

describe('tasks loaded from the store', () => {
  it('a task that succeeded is done on its agent even if a stop was requested; a stopped one that failed is not', () => {
    const c = liveCommand(type, 1, { persisted: true });
    const make = (status: 'succeeded' | 'failed', stopRequested: boolean): boolean =>
      new LiveTask(
        c,
        0,
        0,
        'a',
        'v',
        null,
        'x-1-0',
        status,
        null,
        null,
        null,
        stopRequested,
        0,
        1,
        true,
      ).agentDone;
    expect(make('succeeded', true)).toBe(true);
    expect(make('succeeded', false)).toBe(true);
    // Failed with a stop requested: perhaps by the engine (deadline), the agent may still run it.
    expect(make('failed', true)).toBe(false);
    expect(make('failed', false)).toBe(true);
  });
});

describe('relayed reports of commands whose rows cannot be read', () => {
  it('are dropped as stale, and never fail the reading of the other reports', async () => {
    const taken: TaskReportRecord[][] = [];
    const dropped: { commandId: number; ordinal: number }[] = [];
    const failures: unknown[] = [];
    const report = (commandId: number): TaskReportRecord =>
      ({ commandId, ordinal: 0, status: 'succeeded', at: 1 }) as unknown as TaskReportRecord;
    const inbox = [report(5), report(6)];
    const store = {
      takeReports: () => {
        const batch = inbox.splice(0);
        taken.push(batch);
        return Promise.resolve(batch);
      },
      getTasks: (commandId: number) =>
        commandId === 5
          ? Promise.reject(
              new CocoError(ErrorCode.CorruptRow, 'tasks row 5/0 cannot be read: status: bad'),
            )
          : Promise.resolve([{ commandId, ordinal: 0, endedAt: 10 }]),
      dropReports: (keys: { commandId: number; ordinal: number }[]) => {
        dropped.push(...keys);
        return Promise.resolve();
      },
    };
    const clock = new ManualClock();
    const shared = { ...store, leaseMs: 30_000 } as unknown as SharedStore;
    const cluster = stubCluster(shared, clock, failures, 1_000);
    cluster.reportsSoon();
    await cluster.reportsIdle();
    expect(failures).toEqual([]);
    expect(dropped.map((k) => k.commandId).sort()).toEqual([5, 6]);
  });
});
