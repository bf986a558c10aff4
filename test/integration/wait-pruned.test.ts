/**
 * `waitFor` on a command that retention prunes as soon as its end is durable (a very short
 * `maxAge`): the waiter is answered from the engine's own copy of the ended command, not told
 * that the command does not exist.
 */
import { afterEach, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import { Journal, testCommands } from '../support/commands.js';
import { rejection } from '../support/errors.js';
import { assertNoLeakedEngines, holdVerbs, settled, startEnv } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

it('answers a waiter whose command was pruned between its durable end and the read', async () => {
  const t = testCommands(new Journal());
  const hold = holdVerbs();
  const env = await startEnv({ commands: t.all, verbs: hold.verbs });
  try {
    const { engine, store } = env;
    const { id } = await engine.submit(t.leaf, {
      name: 'quick',
      verb: 'hold',
      args: { key: 'k' },
    });
    // The waiter's read of the command waits until its tree has settled and a retention pass
    // has pruned it: the widest form of the race (a scheduled pass with a tiny maxAge landing
    // between the durable end and the read).
    const read = store.getCommand.bind(store);
    let pruned = 0;
    store.getCommand = async (which) => {
      if (which === id) {
        await settled(engine, id);
        pruned += (await engine.prune({ olderThanMs: 0 })).trees;
      }
      return read(which);
    };
    const waiting = engine.waitFor(id);
    hold.release('k');
    const ended = await waiting;
    expect(pruned).toBe(1);
    expect(await read(id)).toBeNull();
    expect(ended).toMatchObject({ id, status: 'succeeded', result: { name: 'quick', tasks: 1 } });
    expect(ended.endedAt).toBeGreaterThan(0);

    // A command that never existed is still not found.
    expect((await rejection(engine.waitFor(id + 1000))).code).toBe(ErrorCode.CommandNotFound);
  } finally {
    await env.cleanup();
  }
});
