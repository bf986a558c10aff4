/**
 * Task ids are single-use on the in-process agents too: a start held back (the fault `hang`)
 * until after a stop or a clear of its id is refused with TASK_ID_USED and its verb never runs,
 * while a repeated start of a held id stays idempotent. The memory of used ids is bounded in
 * count and age.
 */
import { describe, expect, it } from 'vitest';
import { InProcessAgent } from '../../../src/brokers/in-process/agent.js';
import { inProcessAgents } from '../../../src/brokers/in-process/broker.js';
import { ManualClock } from '../../../src/core/clock.js';
import { STOPPED_BEFORE_START, usedIdError } from '../../../src/protocol/used-ids.js';
import type { VerbContext } from '../../../src/verbs/model.js';

/** An agent whose verb `count` counts its runs per task id. */
function counting(options: { clock?: ManualClock; usedIds?: object } = {}) {
  const runs = new Map<string, number>();
  const count = (_args: unknown, ctx: VerbContext) => {
    runs.set(ctx.taskId, (runs.get(ctx.taskId) ?? 0) + 1);
    return 'ran';
  };
  return { agent: new InProcessAgent({ id: 'a', verbs: { count }, ...options }), runs };
}
const start = (taskId: string) => ({ taskId, verb: 'count', args: null });
const refused = (taskId: string, how: 'stopped' | 'cleared') => ({
  taskId,
  accepted: false,
  error: usedIdError(taskId, how),
});

describe('single-use task ids on an in-process agent', () => {
  it('a start applied after a stop of its id is refused; the id reports cancelled', async () => {
    const { agent, runs } = counting();
    agent.faults.hang('startTasks');
    const late = agent.startTasks([start('late')]);
    await agent.stopTasks(['late']); // the engine gave up on the start and stopped the task
    agent.faults.resume();
    expect(await late).toEqual([refused('late', 'stopped')]);
    expect(runs.size).toBe(0);
    expect(await agent.getStatuses(['late'])).toEqual([
      { taskId: 'late', state: 'cancelled', error: STOPPED_BEFORE_START },
    ]);
    expect(agent.size).toBe(0);
    expect(agent.counters()).toMatchObject({ starts: 0, rejectedStarts: 1 });
  });

  it('a start applied after a clear of its id is refused, whether the task ran or not', async () => {
    const { agent, runs } = counting();
    await agent.startTasks([start('ran')]);
    agent.faults.hang('startTasks');
    const late = agent.startTasks([start('ran'), start('never-arrived')]);
    await agent.clearTasks(['ran', 'never-arrived']);
    agent.faults.resume();
    expect(await late).toEqual([refused('ran', 'cleared'), refused('never-arrived', 'cleared')]);
    expect(runs).toEqual(new Map([['ran', 1]]));
    expect(await agent.getStatuses(['ran', 'never-arrived'])).toEqual([
      { taskId: 'ran', state: 'unknown' },
      { taskId: 'never-arrived', state: 'unknown' },
    ]);
  });

  it('a clear of a stopped id keeps it used and makes it unknown', async () => {
    const { agent } = counting();
    await agent.stopTasks(['x']);
    await agent.clearTasks(['x']);
    await agent.stopTasks(['x']);
    expect(await agent.getStatuses(['x'])).toEqual([{ taskId: 'x', state: 'unknown' }]);
    expect(await agent.startTasks([start('x')])).toEqual([refused('x', 'cleared')]);
  });

  it('a repeated start of a held id stays idempotent, a stopped one included', async () => {
    const { agent, runs } = counting();
    await agent.startTasks([
      { taskId: 'held', verb: 'sleep', args: { ms: 60_000 } },
      start('done'),
    ]);
    await agent.stopTasks(['held']);
    expect(await agent.startTasks([start('held'), start('done')])).toEqual([
      { taskId: 'held', accepted: true },
      { taskId: 'done', accepted: true },
    ]);
    expect(runs).toEqual(new Map([['done', 1]]));
    expect(agent.counters()).toMatchObject({ duplicateStarts: 2, rejectedStarts: 0 });
  });

  it('the broker of in-process agents answers the same', async () => {
    const broker = inProcessAgents(['a1']);
    await broker.stopTasks('a1', ['late']);
    expect(await broker.startTasks('a1', [{ taskId: 'late', verb: 'noop', args: null }])).toEqual([
      refused('late', 'stopped'),
    ]);
  });
});

describe('the memory of used ids is bounded', () => {
  it('forgets ids older than the retention', async () => {
    const clock = new ManualClock(0);
    const { agent } = counting({ clock, usedIds: { retentionMs: 1_000 } });
    await agent.clearTasks(['old']);
    clock.advance(999);
    expect(await agent.startTasks([start('old')])).toEqual([refused('old', 'cleared')]);
    clock.advance(1);
    expect(await agent.startTasks([start('old')])).toEqual([{ taskId: 'old', accepted: true }]);
  });

  it('remembers once the id of a task started after its id expired, when it is cleared', async () => {
    const clock = new ManualClock(0);
    const { agent } = counting({ clock, usedIds: { maxIds: 2, retentionMs: 1_000 } });
    await agent.stopTasks(['old']);
    clock.advance(1_000); // expired, not yet dropped: nothing was marked since
    expect(await agent.startTasks([start('old')])).toEqual([{ taskId: 'old', accepted: true }]);
    await agent.clearTasks(['old']);
    expect(await agent.startTasks([start('old')])).toEqual([refused('old', 'cleared')]);
    // it takes one place of two: one more id keeps it, a second drops it
    await agent.clearTasks(['x']);
    expect(await agent.startTasks([start('old')])).toEqual([refused('old', 'cleared')]);
    await agent.clearTasks(['y']);
    expect(await agent.startTasks([start('old')])).toEqual([{ taskId: 'old', accepted: true }]);
  });

  it('keeps at most maxIds, forgetting the oldest first', async () => {
    const { agent } = counting({ usedIds: { maxIds: 2 } });
    await agent.stopTasks(['a', 'b', 'c']);
    expect(await agent.getStatuses(['a', 'b'])).toMatchObject([
      { state: 'unknown' },
      { state: 'cancelled' },
    ]);
    expect(await agent.startTasks([start('a'), start('b')])).toEqual([
      { taskId: 'a', accepted: true },
      refused('b', 'stopped'),
    ]);
  });

  it('refuses bounds that are not positive integers', () => {
    expect(() => counting({ usedIds: { maxIds: -1 } })).toThrow(/maxIds/);
  });
});
