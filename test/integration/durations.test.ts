/**
 * Durations given to tasks and command types, on both stores. A task deadline of 30 days failed
 * its task at once (`TASK_DEADLINE_EXCEEDED`: Node fires a timer past 24.8 days at once); a
 * fractional deadline (0.5 ms) or an endless one made a time the PostgreSQL store refused on every
 * try, and the node stalled behind the batch. Now a long deadline is waited in full, a fractional
 * one is rounded up to a whole ms, and one that is not a positive number of ms up to 100 years is
 * refused where it is given, naming it — as are such a type's `timeoutMs` and retry back-offs.
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

const DAY = 24 * 3_600_000;

const timed = defineCommand({
  name: 'durations.task',
  schema: z.object({ deadlineMs: z.number() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'noop', deadlineMs: ctx.params.deadlineMs });
  },
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function suite(make: () => Promise<Engine>): void {
  it('a long deadline is waited in full, a fractional one rounded up; a bad one refused, naming it', async () => {
    const engine = await make();
    const run = async (deadlineMs: number): Promise<string> => {
      const { id } = await engine.submit(timed, { deadlineMs });
      const ended = await engine.waitFor(id);
      return `${ended.status} ${ended.error?.code ?? ''}`.trim();
    };
    expect(await run(30 * DAY)).toBe('succeeded');
    const { id } = await engine.submit(timed, { deadlineMs: 30 * DAY });
    await engine.waitFor(id);
    const [task] = (await engine.inspect(id))?.tasks ?? [];
    expect(task?.deadlineAt).toBeGreaterThanOrEqual(Date.now() + 29 * DAY);
    // Whole ms: it may pass before the agent answers, but the store keeps it.
    expect(await run(1.5)).toMatch(/^(succeeded|failed TASK_DEADLINE_EXCEEDED)$/);
    for (const bad of [1e300, 101 * 365 * DAY]) {
      const { id: badId } = await engine.submit(timed, { deadlineMs: bad });
      const ended = await engine.waitFor(badId);
      expect(ended.error?.code).toBe('PARAMETERS_INVALID');
      expect(ended.error?.message).toContain('deadlineMs');
    }
    // Nothing stalled.
    expect(engine.storeOutage).toBeNull();
    expect(await run(1_000)).toBe('succeeded');
  });
}

describe('durations (SQLite)', () => {
  suite(async () => {
    const engine = createEngine({
      store: sqliteStore({ path: `${tempDir('coco-durations-')}/coco.db` }),
      agents: inProcessAgents(['a1']),
      commands: [timed],
      tuning: FAST,
    });
    await engine.start();
    cleanups.push(() => engine.stop());
    return engine;
  });

  it("a type's timeoutMs and retry back-offs are refused unless a positive number of ms up to 100 years", () => {
    const define = (over: object) => () =>
      defineCommand({ name: 'durations.bad', schema: z.object({}), execute() {}, ...over });
    for (const over of [
      { timeoutMs: Number.POSITIVE_INFINITY },
      { timeoutMs: 0 },
      { retry: { backoffMs: Number.NaN } },
      { retry: { maxBackoffMs: -1 } },
      { retry: { backoffMs: 1e300 } },
    ])
      expect(define(over), JSON.stringify(over)).toThrow(/at most 100 years/);
    expect(define({ timeoutMs: 30 * DAY + 0.5, retry: { backoffMs: 0 } })().timeoutMs).toBe(
      30 * DAY + 1,
    );
  });
});

describePg('durations (PostgreSQL)', () => {
  suite(async () => {
    const fresh = freshSchema('coco_durations');
    cleanups.push(() => fresh.drop());
    const engine = createEngine({
      store: postgresStore({ url: PG_URL, schema: fresh.schema }),
      agents: inProcessAgents(['a1']),
      commands: [timed],
      tuning: { ...FAST, storeOutageMs: 2_000 },
    });
    await engine.start();
    cleanups.push(() => engine.stop());
    return engine;
  });
});
