/**
 * Admission on one node on PostgreSQL, where the agent's lease holder admits through the store
 * (engine/shared-admission.ts) even alone: the limit holds on the agent's own count, a cancelled
 * queued task is never started and gives back any slot granted to it, a limit lowered at run
 * time holds from then on, a raised one admits at once, and where a task waits is visible.
 */
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { postgresStore } from '../../src/store/postgres/pg-store.js';
import { FAST } from '../support/harness.js';
import { adminQuery, describePg, freshSchema, PG_URL } from '../support/pg.js';

/** The `n` of a `SELECT count(*) AS n …`. */
async function countOf(sql: string): Promise<number> {
  const row = (await adminQuery(sql)).rows[0] as { n: string };
  return Number(row.n);
}

const migrate = defineCommand({
  name: 'test.migrate',
  schema: z.object({ n: z.number().int() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'work', args: { n: ctx.params.n } });
  },
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Resolves once `check` holds, looking again after each commit (and every 50 ms). */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describePg('admission on PostgreSQL (one node)', () => {
  it('holds the limit through the store; cancel, run-time limits and positions', async () => {
    const fresh = freshSchema('coco_adm_pg');
    cleanups.push(() => fresh.drop());
    let running = 0;
    let max = 0;
    const starts: number[] = [];
    const waiting: (() => void)[] = [];
    const agents = inProcessAgents(['a1'], {
      verbs: {
        work: (args) => {
          running++;
          max = Math.max(max, running);
          starts.push((args as { n: number }).n);
          return new Promise((resolve) =>
            waiting.push(() => {
              running--;
              resolve(null);
            }),
          );
        },
      },
    });
    const releaseOne = (): void => waiting.shift()?.();
    const engine: Engine = createEngine({
      store: postgresStore({ url: PG_URL, schema: fresh.schema, leaseMs: 6_000 }),
      agents,
      commands: [migrate],
      nodeId: 'solo',
      tuning: { ...FAST, claimIntervalMs: 200 },
      limits: { agents: { a1: { maxRunning: 2 } } },
    });
    await engine.start();
    cleanups.push(async () => {
      for (const done of waiting.splice(0)) done();
      await engine.stop();
    });

    const ids = [];
    for (let n = 0; n < 8; n++) ids.push((await engine.submit(migrate, { n })).id);
    await until(() => starts.length === 2, 'two starts');
    const queued = async (): Promise<number> =>
      countOf(`SELECT count(*) AS n FROM "${fresh.schema}".tasks WHERE status = 'queued'`);
    await until(async () => (await queued()) === 6, 'six queued');
    expect(starts).toEqual([0, 1]);
    const third = await engine.inspect(ids[2]!);
    expect(third?.queued[0]?.position).toMatchObject({ agentId: 'a1', ahead: 0, limit: 2 });
    // Positions come from the store (the cluster's queue): 2, 3 and 4 wait before 5.
    expect((await engine.inspect(ids[5]!))?.queued[0]?.position).toEqual({
      agentId: 'a1',
      verb: 'work',
      ahead: 3,
      limit: 2,
      verbLimit: null,
      running: 2,
      text: 'queued for a1: 3 ahead, limit 2',
    });

    // A queued task cancelled never starts.
    await engine.cancel(ids[2]!);
    expect((await engine.waitFor(ids[2]!)).status).toBe('cancelled');
    releaseOne();
    await until(() => starts.length === 3, 'a third start');
    expect(starts[2]).toBe(3);

    // Lowered to 1: the two running go on, none starts until fewer than 1 run.
    expect(max).toBe(2);
    engine.setLimits({ agents: { a1: { maxRunning: 1 } } });
    releaseOne();
    // Nothing to await for an absence: a few admission rounds' time (claim interval 200 ms).
    await new Promise((r) => setTimeout(r, 300));
    expect(running).toBe(1);
    expect(starts).toHaveLength(3);
    releaseOne();
    await until(() => starts.length === 4, 'a fourth start');
    expect(running).toBe(1);
    // Raised to 10: the rest start at once.
    engine.setLimits({ agents: { a1: { maxRunning: 10 } } });
    await until(() => starts.length === 7, 'the rest to start');
    while (waiting.length > 0) releaseOne();
    for (const id of ids)
      expect((await engine.waitFor(id)).status).toBe(id === ids[2] ? 'cancelled' : 'succeeded');
    expect(new Set(starts).size).toBe(7);
    expect(starts).not.toContain(2);
    await until(
      async () =>
        (await countOf(`SELECT count(*) AS n FROM "${fresh.schema}".admission_slots`)) === 0,
      'every slot released',
    );
  }, 60_000);

  it('a lowered limit is not exceeded by a grant in flight when a slot frees', async () => {
    // The race (seen once in CI): an admission round starts with limit 2, the limit is lowered
    // to 1 and a running task ends; if its slot were freed in the store before that round's
    // statement ran, the round would count 1 slot against limit 2 and grant a second task.
    const fresh = freshSchema('coco_adm_pg_race');
    cleanups.push(() => fresh.drop());
    let running = 0;
    const starts: number[] = [];
    const waiting = new Map<number, () => void>();
    const agents = inProcessAgents(['a1'], {
      verbs: {
        work: (args) => {
          const n = (args as { n: number }).n;
          running++;
          starts.push(n);
          return new Promise((resolve) =>
            waiting.set(n, () => {
              running--;
              resolve(null);
            }),
          );
        },
      },
    });
    const store = postgresStore({ url: PG_URL, schema: fresh.schema, leaseMs: 6_000 });
    // A gate on the admission statement, and a record of what it was asked and of slots freed.
    let gate: Promise<void> | null = null;
    let openGate = (): void => {};
    const asked: { maxRunning: number | null; granted: number }[] = [];
    let gatedCall: (() => void) | null = null;
    const gatedReached = new Promise<void>((r) => (gatedCall = r));
    const admitQueued = store.admitQueued.bind(store);
    store.admitQueued = async (nodeId, agentId, limits) => {
      const held = gate;
      if (held) {
        gatedCall?.();
        await held;
      }
      let maxRunning: number | null = null;
      const grants = await admitQueued(nodeId, agentId, () => {
        const l = typeof limits === 'function' ? limits() : limits;
        maxRunning = l?.maxRunning ?? null;
        return l;
      });
      asked.push({ maxRunning, granted: grants?.length ?? 0 });
      return grants;
    };
    let freed = 0;
    let slotFreed = (): void => {};
    const releaseSlots = store.releaseSlots.bind(store);
    store.releaseSlots = async (keys) => {
      await releaseSlots(keys);
      freed += keys.length;
      slotFreed();
    };
    const engine: Engine = createEngine({
      store,
      agents,
      commands: [migrate],
      nodeId: 'solo',
      tuning: { ...FAST, claimIntervalMs: 100 },
      limits: { agents: { a1: { maxRunning: 2 } } },
    });
    await engine.start();
    cleanups.push(async () => {
      for (const done of waiting.values()) done();
      await engine.stop();
    });
    const ids = [];
    for (let n = 0; n < 3; n++) ids.push((await engine.submit(migrate, { n })).id);
    await until(() => starts.length === 2, 'two starts');
    await until(
      async () =>
        (await countOf(
          `SELECT count(*) AS n FROM "${fresh.schema}".tasks WHERE status = 'queued'`,
        )) === 1,
      'one queued',
    );

    // The next round (the safety-net tick, 100 ms) is held before its statement, with limit 2.
    const beforeGate = asked.length;
    gate = new Promise<void>((r) => (openGate = r));
    await gatedReached;
    engine.setLimits({ agents: { a1: { maxRunning: 1 } } });
    const first = starts[0]!;
    waiting.get(first)?.();
    expect((await engine.waitFor(ids[first]!)).status).toBe('succeeded');
    // Give the freed slot time to reach the store (it must not, while the old round is held).
    await Promise.race([
      new Promise<void>((r) => (slotFreed = r)),
      new Promise((r) => setTimeout(r, 500)),
    ]);
    gate = null;
    openGate();
    await until(() => freed === 1, 'the slot freed');
    // A round after the free, by the new limit, has run and granted nothing.
    const after = asked.length;
    await until(() => asked.length > after, 'a round after the free');
    expect(asked.slice(beforeGate).filter((a) => a.granted > 0)).toEqual([]);
    expect(starts).toHaveLength(2);
    expect(running).toBe(1);
  }, 60_000);
});
