/**
 * prepareMany (engine/submission.ts), what `submitMany` checks first: parameters are validated
 * and parsed in one synchronous pass when every schema allows it (no promise and no await per
 * item: a submitMany of 1,000 commands made 1,000 of each), awaited for an async schema, and a
 * bad item is named by its index either way.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { ValidationError } from '../../src/core/errors.js';
import { CommandRegistry } from '../../src/core/registry.js';
import { prepareMany } from '../../src/engine/submission.js';

const syncType = defineCommand({
  name: 'unit.sync',
  schema: z.object({ i: z.number().transform((i) => i * 2) }),
  execute() {},
});
const asyncType = defineCommand({
  name: 'unit.async',
  schema: z.object({ i: z.number() }).refine(async (p) => p.i >= 0, 'negative'),
  execute() {},
});
const registry = new CommandRegistry([syncType, asyncType]);

/** Counts the microtasks that run until `p` settles. */
async function microtasksUntil(p: Promise<unknown>): Promise<number> {
  let ticks = 0;
  let settled = false;
  const tick = (): void => {
    if (settled) return;
    ticks++;
    queueMicrotask(tick);
  };
  queueMicrotask(tick);
  await p.finally(() => (settled = true));
  return ticks;
}

describe('prepareMany', () => {
  it('validates 1,000 items of a synchronous schema without a microtask per item', async () => {
    const items = Array.from({ length: 1_000 }, (_, i) => ({ type: syncType, params: { i } }));
    let prepared: Awaited<ReturnType<typeof prepareMany>> = [];
    const ticks = await microtasksUntil(prepareMany(registry, items).then((p) => (prepared = p)));
    expect(ticks).toBeLessThan(10);
    expect(prepared).toHaveLength(1_000);
    expect(prepared[7]).toEqual({ type: syncType, raw: { i: 7 }, parsed: { i: 14 } });
  });

  it('awaits an async schema, and names a bad item by its index', async () => {
    const prepared = await prepareMany(registry, [
      { type: syncType, params: { i: 1 } },
      { type: asyncType, params: { i: 2 } },
    ]);
    expect(prepared.map((p) => p.parsed)).toEqual([{ i: 2 }, { i: 2 }]);
    for (const bad of [
      { type: asyncType, params: { i: -1 } },
      { type: syncType, params: { i: 'x' } },
      { type: syncType, params: { i: Number.NaN } },
    ]) {
      const error = await prepareMany(registry, [{ type: syncType, params: { i: 0 } }, bad]).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).issues[0]?.path).toMatch(/^1\./);
      expect((error as ValidationError).message).toMatch(/item 1: invalid parameters/);
    }
  });
});
