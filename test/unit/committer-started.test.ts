/**
 * The deferred write of a task's `running` status (Committer.taskStarted): a task that changes
 * again within the delay is written once, with its latest state; one that does not is written
 * when the delay ends; a drain (engine stop) writes whatever is still deferred.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ManualClock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import { Committer, STARTED_WRITE_DELAY_MS } from '../../src/engine/committer.js';
import type { LiveTask } from '../../src/engine/live.js';
import type { ChangeBatch, Store, TaskUpdate } from '../../src/store/port.js';
import { liveCommand, liveTask } from '../support/live.js';

const type = defineCommand({ name: 'unit.started', schema: z.object({}), execute() {} });

/** Records every task update it is given. */
class RecordingStore {
  readonly taskUpdates: TaskUpdate[] = [];
  apply(b: ChangeBatch): Promise<void> {
    this.taskUpdates.push(...b.taskUpdates);
    return Promise.resolve();
  }
}

async function setup(): Promise<{
  store: RecordingStore;
  clock: ManualClock;
  committer: Committer;
  task: LiveTask;
  settle: () => Promise<void>;
}> {
  const store = new RecordingStore();
  const clock = new ManualClock();
  const committer = new Committer(
    store as unknown as Store,
    clock,
    { retryBaseMs: 1, retryMaxMs: 4, maxInFlight: 2, maxBatchRows: 100 },
    () => {},
  );
  const c = liveCommand(type, 1);
  const task = liveTask(c, 0);
  committer.command(c);
  committer.task(task);
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  };
  await settle();
  expect(task.persisted).toBe(true);
  return { store, clock, committer, task, settle };
}

describe('deferred running writes', () => {
  it('a task that ends within the delay is written once, ended', async () => {
    const { store, clock, committer, task, settle } = await setup();
    task.status = 'running';
    committer.taskStarted(task);
    await settle();
    expect(store.taskUpdates).toEqual([]);
    task.status = 'succeeded';
    task.endedAt = 5;
    committer.task(task);
    await settle();
    clock.advance(STARTED_WRITE_DELAY_MS);
    await settle();
    expect(store.taskUpdates.map((u) => u.status)).toEqual(['succeeded']);
  });

  it('a task still running when the delay ends gets its running write then', async () => {
    const { store, clock, committer, task, settle } = await setup();
    task.status = 'running';
    committer.taskStarted(task);
    clock.advance(STARTED_WRITE_DELAY_MS - 1);
    await settle();
    expect(store.taskUpdates).toEqual([]);
    clock.advance(1);
    await settle();
    expect(store.taskUpdates.map((u) => u.status)).toEqual(['running']);
  });

  it('a drain writes the deferred status at once', async () => {
    const { store, committer, task } = await setup();
    task.status = 'running';
    committer.taskStarted(task);
    await committer.drain();
    expect(store.taskUpdates.map((u) => u.status)).toEqual(['running']);
  });
});
