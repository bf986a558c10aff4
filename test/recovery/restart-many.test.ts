/**
 * A restart with more than one chunk of commands in flight: the store reads them with the reader
 * thread it started at open (src/store/sqlite/reader.ts), and every command is resumed, not run
 * again, and ends exactly once.
 */
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { LOAD_CHUNK } from '../../src/store/sqlite/statements.js';
import {
  assertNoLeakedEngines,
  holdVerbs,
  settled,
  startEnv,
  whenCommitted,
} from '../support/harness.js';

afterEach(assertNoLeakedEngines);

it('resumes more than a chunk of in-flight commands after a restart; each ends once', async () => {
  const hold = holdVerbs();
  let executes = 0;
  const held = defineCommand({
    name: 'test.held',
    schema: z.object({ i: z.number() }),
    execute(ctx) {
      executes++;
      ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: 'all' } });
    },
  });
  const n = LOAD_CHUNK + 25;
  let env = await startEnv({ commands: [held], verbs: hold.verbs });
  const ids: number[] = [];
  try {
    for (let i = 0; i < n; i += 1000) {
      const submitted = await env.engine.submitMany(
        Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({
          type: held,
          params: { i: i + k },
        })),
      );
      ids.push(...submitted.map((s) => s.id));
    }
    await whenCommitted(env.engine, () => env.engine.stats().watchedTasks >= n);
    expect(executes).toBe(n);

    env = await env.restart();
    const ended = new Map<number, number>();
    env.engine.on('ended', ({ id }) => ended.set(id, (ended.get(id) ?? 0) + 1));
    expect(env.engine.stats().watchedTasks).toBe(n);
    hold.release('all', { ok: true });
    await Promise.all(ids.map((id) => settled(env.engine, id)));
    expect(executes).toBe(n); // resumed, never run again
    expect([...ended.keys()].sort((a, b) => a - b)).toEqual(ids);
    expect([...ended.values()].every((times) => times === 1)).toBe(true);
    expect((await env.engine.get(ids.at(-1)!))?.status).toBe('succeeded');
  } finally {
    await env.cleanup();
  }
}, 120_000);
