/**
 * Text that a store keeps raw (not inside JSON) with U+0000 in it: PostgreSQL's `text` cannot
 * hold it, so a batch carrying one was refused on every try and the node stalled behind it —
 * every later submission refused as in a store outage — from one submission whose parameters
 * named an agent `"a\u0000"`. Now such text is refused where it enters, with an error naming it:
 * an idempotency key at the submission (nothing created), a task's agent or verb and an entity's
 * kind or id in the handler (its command fails). The node takes work as before, on both stores.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { postgresStore } from '../../src/store/postgres/pg-store.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FAST, tempDir } from '../support/harness.js';
import { PG_URL, describePg, freshSchema } from '../support/pg.js';

const task = defineCommand({
  name: 'nul.task',
  schema: z.object({ agent: z.string(), verb: z.string() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: ctx.params.agent, verb: ctx.params.verb, args: { text: 'a\u0000b' } });
  },
});

const entity = defineCommand({
  name: 'nul.entity',
  schema: z.object({ kind: z.string(), id: z.string() }),
  execute(ctx) {
    ctx.entities.put(ctx.params.kind, ctx.params.id, { text: 'a\u0000b' });
  },
});

const counted = defineCommand({
  name: 'nul.counted',
  schema: z.object({ tasks: z.number() }),
  execute(ctx) {
    ctx.expect({ tasks: ctx.params.tasks });
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function started(engine: Engine): Promise<Engine> {
  await engine.start();
  cleanups.push(() => engine.stop());
  return engine;
}

/** The outcome of one submission: its end's status and error code, or the refusal's code. */
async function outcome(engine: Engine, submit: () => Promise<{ id: number }>): Promise<string> {
  try {
    const { id } = await submit();
    const ended = await engine.waitFor(id);
    return `${ended.status} ${ended.error?.code ?? ''}`.trim();
  } catch (error) {
    return `refused ${(error as { code?: string }).code ?? String(error)}`;
  }
}

function suite(make: () => Promise<Engine>): void {
  it('is refused where it enters, naming it; the node takes work as before', async () => {
    const engine = await make();
    const run = (agent: string, verb: string, key?: string): Promise<string> =>
      outcome(engine, () =>
        engine.submit(task, { agent, verb }, key === undefined ? {} : { idempotencyKey: key }),
      );
    // In JSON (the task's arguments) it is kept, escaped: this one succeeds.
    expect(await run('a1', 'noop')).toBe('succeeded');
    expect(await run('a\u0000', 'noop')).toBe('failed PARAMETERS_INVALID');
    expect(await run('a1', 'no\u0000op')).toBe('failed PARAMETERS_INVALID');
    expect(await run('a1', 'noop', 'key\u0000')).toBe('refused PARAMETERS_INVALID');
    expect(await outcome(engine, () => engine.submit(entity, { kind: 'k\u0000', id: 'x' }))).toBe(
      'failed PARAMETERS_INVALID',
    );
    expect(await outcome(engine, () => engine.submit(entity, { kind: 'k', id: '\u0000' }))).toBe(
      'failed PARAMETERS_INVALID',
    );
    // The failure names the field.
    const { id } = await engine.submit(task, { agent: 'a\u0000', verb: 'noop' });
    expect((await engine.waitFor(id)).error?.message).toMatch(/agent.*U\+0000/s);
    // A declared count past a safe integer: refused so (it was stored, then read back as a
    // corrupt row: CORRUPT_ROW).
    expect(await outcome(engine, () => engine.submit(counted, { tasks: 1e300 }))).toBe(
      'failed PARAMETERS_INVALID',
    );
    expect(await outcome(engine, () => engine.submit(counted, { tasks: 1 }))).toBe('succeeded');
    // Nothing stalled: the store takes writes, the node takes work.
    expect(engine.storeOutage).toBeNull();
    expect(await run('a1', 'noop', 'key')).toBe('succeeded');
  });
}

describe('text with U+0000 stored raw (SQLite)', () => {
  suite(async () => {
    const dir = tempDir('coco-nul-');
    return started(
      createEngine({
        store: sqliteStore({ path: `${dir}/coco.db` }),
        agents: inProcessAgents(['a1']),
        commands: [task, entity, counted],
        tuning: FAST,
      }),
    );
  });
});

describePg('text with U+0000 stored raw (PostgreSQL)', () => {
  suite(async () => {
    const fresh = freshSchema('coco_nul');
    cleanups.push(() => fresh.drop());
    return started(
      createEngine({
        store: postgresStore({ url: PG_URL, schema: fresh.schema }),
        agents: inProcessAgents(['a1']),
        commands: [task, entity, counted],
        tuning: { ...FAST, storeOutageMs: 2_000 },
      }),
    );
  });
});
