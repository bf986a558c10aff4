/**
 * How often the engine reads its clock for a one-task command, from its submit to its tasks'
 * clear (issue 15: a reading of the system clock costs ~80 ns of CPU on a KVM guest, and the
 * engine made 15 per command). A step that just read the clock hands its reading on (a root's
 * creation and its first mark, a task's creation and its command's mark, a command's end and the
 * mark that its tasks are cleared), and a stage that moves the command to `waiting` marks it
 * once.
 */
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { systemClock, type Clock } from '../../src/core/clock.js';
import { defineCommand } from '../../src/core/command-type.js';
import { assertNoLeakedEngines, settled, startEnv } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const one = defineCommand({
  name: 'clock.one',
  schema: z.object({ i: z.number() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

it('a one-task command costs at most 12 readings of the engine clock', async () => {
  let reads = 0;
  const clock: Clock = {
    now: () => {
      reads++;
      return systemClock.now();
    },
    setTimer: (ms, fn) => systemClock.setTimer(ms, fn),
  };
  const env = await startEnv({ commands: [one], clock });
  try {
    const n = 200;
    reads = 0;
    const ids = await env.engine.submitMany(
      Array.from({ length: n }, (_, i) => ({ type: one, params: { i } })),
    );
    for (const { id } of ids) await settled(env.engine, id);
    // 11 on the path itself (15 before); polls and timers add a little, shared by the batch
    expect(reads / n).toBeLessThanOrEqual(12);
  } finally {
    await env.cleanup();
  }
});
