import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { assertNoLeakedEngines, holdVerbs, startEnv, whenCommitted } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const v1Schema = z.object({ disk: z.string(), sizeMb: z.number() });
interface V2 {
  disk: string;
  sizeGb: number;
}
const v3Schema = z.object({ disk: z.string(), sizeGb: z.number(), thin: z.boolean() });

function resizeV1() {
  return defineCommand({
    name: 'disk.resize',
    version: 1,
    schema: v1Schema,
    execute(ctx) {
      ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.disk } });
    },
  });
}

function resizeV3(seen: unknown[]) {
  return defineCommand({
    name: 'disk.resize',
    version: 3,
    schema: v3Schema,
    upgrades: {
      1: (p: z.infer<typeof v1Schema>): V2 => ({ disk: p.disk, sizeGb: p.sizeMb / 1024 }),
      2: (p: V2): z.infer<typeof v3Schema> => ({ ...p, thin: true }),
    },
    execute(ctx) {
      ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.disk } });
    },
    onSuccess(ctx) {
      seen.push(ctx.params);
      return { sizeGb: ctx.params.sizeGb, thin: ctx.params.thin };
    },
  });
}

describe('parameter versions', () => {
  it('an in-flight command stored at version 1 resumes and ends under code at version 3', async () => {
    const hold = holdVerbs();
    const env = await startEnv({ commands: [resizeV1()], verbs: hold.verbs });
    const seen: unknown[] = [];
    let env2 = env;
    try {
      const { id } = await env.engine.submit(resizeV1(), { disk: 'd1', sizeMb: 2048 });
      await whenCommitted(
        env.engine,
        async () => (await env.engine.inspect(id))?.tasks[0]?.status === 'running',
      );
      expect((await env.engine.get(id))?.paramsVersion).toBe(1);
      env2 = await env.restart({ commands: [resizeV3(seen)] });
      hold.release('d1');
      const ended = await env2.engine.waitFor(id);
      expect(ended.status).toBe('succeeded');
      expect(seen).toEqual([{ disk: 'd1', sizeGb: 2, thin: true }]);
      expect(ended.result).toEqual({ sizeGb: 2, thin: true });
      // The next write stored the upgraded parameters at version 3.
      expect(ended.paramsVersion).toBe(3);
      expect(ended.params).toEqual({ disk: 'd1', sizeGb: 2, thin: true });
    } finally {
      await env2.cleanup();
    }
  });

  it('a row at a newer version is refused with a clear error, left untouched, the others run, and a cancel ends it', async () => {
    const hold = holdVerbs();
    const v5 = defineCommand({
      name: 'disk.resize',
      version: 5,
      schema: z.object({ disk: z.string(), bytes: z.number() }),
      upgrades: { 1: (p: never) => p, 2: (p: never) => p, 3: (p: never) => p, 4: (p: never) => p },
      execute(ctx) {
        ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: 'newer' } });
      },
    });
    const env = await startEnv({ commands: [v5], verbs: hold.verbs });
    let env2 = env;
    try {
      const { id } = await env.engine.submit(v5, { disk: 'd9', bytes: 1 });
      await whenCommitted(
        env.engine,
        async () => (await env.engine.inspect(id))?.tasks[0]?.status === 'running',
      );
      const before = await env.engine.inspect(id);
      const seen: unknown[] = [];
      const failures: { commandId: number | null; error: { code: string; message: string } }[] = [];
      env2 = await env.restart({
        commands: [resizeV3(seen)],
        beforeStart: (e) => e.on('load-failed', (f) => failures.push(f)),
      });
      expect(failures).toHaveLength(1);
      expect(failures[0]?.commandId).toBe(id);
      expect(failures[0]?.error.code).toBe('PARAMETER_VERSION_TOO_NEW');
      expect(failures[0]?.error.message).toMatch(/"disk\.resize".*version 5.*versions up to 3/);
      const after = await env2.engine.inspect(id);
      expect(after).toEqual({ ...before, unloadable: failures[0]?.error });
      // The held task of the newer command was not stopped by reconciliation.
      expect(env2.agent().counters().stops).toBe(0);
      expect(hold.held('newer')).toBe(true);
      // Others still run.
      const other = await env2.engine.submit(resizeV3(seen), {
        disk: 'd2',
        sizeGb: 1,
        thin: false,
      });
      hold.release('d2');
      expect((await env2.engine.waitFor(other.id)).status).toBe('succeeded');
      expect(await env2.engine.inspect(id)).toEqual({ ...before, unloadable: failures[0]?.error });
      // A cancel ends it; none of the code runs (this code is older than the command's).
      await env2.engine.cancel(id);
      expect(await env2.engine.waitFor(id)).toMatchObject({
        status: 'failed',
        error: {
          code: 'COMMAND_UNLOADABLE',
          message: expect.stringMatching(/version 5.*none of its code runs/) as unknown,
        },
      });
      expect(env2.agent().counters().stops).toBe(1);
    } finally {
      await env2.cleanup();
    }
  });
});
