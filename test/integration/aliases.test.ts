/**
 * Renamed command types: a type declares its former names (`aliases`), and stored rows of a
 * former name load under it — in-flight commands resume and end under the new code, keeping
 * the name they were stored with.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { CommandRegistry } from '../../src/core/registry.js';
import type { EngineEventMap } from '../../src/engine/events.js';
import { assertNoLeakedEngines, holdVerbs, startEnv, whenCommitted } from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const schema = z.object({ disk: z.string() });

describe('command type aliases', () => {
  it('an in-flight command of a former name resumes and ends under the renamed type', async () => {
    const hold = holdVerbs();
    const old = defineCommand({
      name: 'disk.migrate',
      schema,
      execute(ctx) {
        ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.disk } });
      },
    });
    const seen: string[] = [];
    const renamed = defineCommand({
      name: 'disk.move',
      aliases: ['disk.migrate'],
      schema,
      execute(ctx) {
        ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.disk } });
      },
      onSuccess(ctx) {
        seen.push(`${ctx.command.type}:${ctx.params.disk}`);
        return { moved: ctx.params.disk };
      },
    });
    let env = await startEnv({ commands: [old], verbs: hold.verbs });
    try {
      const { id } = await env.engine.submit(old, { disk: 'd1' });
      await whenCommitted(
        env.engine,
        async () => (await env.engine.inspect(id))?.tasks[0]?.status === 'running',
      );
      const failures: EngineEventMap['load-failed'][] = [];
      env = await env.restart({
        commands: [renamed],
        beforeStart: (e) => e.on('load-failed', (f) => failures.push(f)),
      });
      expect(failures).toEqual([]);
      hold.release('d1');
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('succeeded');
      expect(ended.result).toEqual({ moved: 'd1' });
      expect(seen).toEqual(['disk.move:d1']);
      // The row keeps the name it was stored with; new commands take the new name.
      expect(ended.type).toBe('disk.migrate');
      const fresh = await env.engine.submit(renamed, { disk: 'd2' });
      hold.release('d2');
      expect((await env.engine.waitFor(fresh.id)).type).toBe('disk.move');
    } finally {
      await env.cleanup();
    }
  });

  it("an alias that is another type's name, or two types sharing an alias, are refused", () => {
    const a = defineCommand({ name: 'a.one', aliases: ['a.old'], schema, execute() {} });
    const b = defineCommand({ name: 'b.one', aliases: ['a.one'], schema, execute() {} });
    const c = defineCommand({ name: 'c.one', aliases: ['a.old'], schema, execute() {} });
    const d = defineCommand({ name: 'a.old', schema, execute() {} });
    for (const pair of [
      [a, b],
      [b, a],
      [a, c],
      [a, d],
      [d, a],
    ]) {
      expect(() => new CommandRegistry(pair)).toThrow(
        expect.objectContaining({ code: 'INVALID_DEFINITION' }) as unknown,
      );
    }
    expect(() =>
      defineCommand({ name: 'x.one', aliases: ['x.one'], schema, execute() {} }),
    ).toThrow(/alias/);
    expect(new CommandRegistry([a]).resolve('a.old')).toBe(a);
    expect(new CommandRegistry([a]).get('a.old')).toBeUndefined();
  });
});
