/**
 * Rolling upgrades on a shared store: nodes of two code versions side by side. The older node
 * never claims a tree holding a parameter version it does not know; a newer node claims the
 * older node's trees and upgrades their parameters as it loads them.
 */
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { isSharedStore, type SharedStore } from '../../src/store/shared-port.js';
import { postgresStore } from '../../src/store/postgres/pg-store.js';
import { FAST, holdVerbs } from '../support/harness.js';
import { describePg, freshSchema, PG_URL } from '../support/pg.js';
import { until } from './fixtures/nodes.js';

/** Short, so that claims come quickly in the test. */
const LEASE_MS = 1_500;

const v1Schema = z.object({ disk: z.string(), sizeMb: z.number() });
const v2Schema = z.object({ disk: z.string(), sizeGb: z.number() });

const resizeV1 = defineCommand({
  name: 'disk.resize',
  version: 1,
  schema: v1Schema,
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.disk } });
  },
  onSuccess: (ctx) => ({ sizeMb: ctx.params.sizeMb }),
});

const resizeV2 = defineCommand({
  name: 'disk.resize',
  version: 2,
  schema: v2Schema,
  upgrades: { 1: (p: z.infer<typeof v1Schema>) => ({ disk: p.disk, sizeGb: p.sizeMb / 1024 }) },
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.disk } });
  },
  onSuccess: (ctx) => ({ sizeGb: ctx.params.sizeGb }),
});

const engines: Engine[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.stop().catch(() => undefined);
  for (const c of cleanups.splice(0)) await c();
});

/** A store that counts its claims, so the test can wait for a few to have happened. */
function countingStore(schema: string): { store: SharedStore; claims: () => number } {
  const inner = postgresStore({ url: PG_URL, schema, leaseMs: LEASE_MS });
  let claims = 0;
  const store = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'claimOrphans') {
        return async (...args: Parameters<SharedStore['claimOrphans']>) => {
          const ids = await target.claimOrphans(...args);
          claims++;
          return ids;
        };
      }
      const value: unknown = Reflect.get(target, prop);
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value;
    },
  });
  if (!isSharedStore(store)) throw new Error('expected a shared store');
  return { store, claims: () => claims };
}

describePg('rolling upgrades', () => {
  it('an older node leaves newer trees alone; a newer node takes the older trees and upgrades them', async () => {
    const fresh = freshSchema('coco_upgrade');
    const schema = fresh.schema;
    cleanups.push(() => fresh.drop());
    const hold = holdVerbs();
    const agents = inProcessAgents(['a1'], { verbs: hold.verbs });
    const start = async (nodeId: string, type: typeof resizeV1 | typeof resizeV2) => {
      const counted = countingStore(schema);
      const engine = createEngine({
        store: counted.store,
        agents,
        commands: [type],
        nodeId,
        tuning: { ...FAST, agentCallTimeoutMs: 500, claimIntervalMs: 100 },
      });
      engines.push(engine);
      await engine.start();
      return { engine, claims: counted.claims };
    };

    const old = await start('old', resizeV1);
    const neu = await start('new', resizeV2);
    const { id: newer } = await neu.engine.submit(resizeV2, { disk: 'n', sizeGb: 3 });
    const { id: older } = await old.engine.submit(resizeV1, { disk: 'o', sizeMb: 2048 });

    // The new node goes away: its tree (at version 2) is orphaned.
    await neu.engine.stop();
    const seen = old.claims();
    await until(
      'the old node to look for orphans a few times',
      async () => old.claims() >= seen + 5,
      10_000,
      50,
    );
    expect((await old.engine.get(newer))?.owner, 'the old node never claims version 2').toBe('new');
    expect(old.engine.stats().liveCommands).toBe(1);

    // A newer node comes back: it takes the version-2 tree and finishes it.
    const neu2 = await start('new-2', resizeV2);
    await until(
      'the new node to claim its tree',
      async () => (await neu2.engine.get(newer))?.owner === 'new-2',
      10_000,
      50,
    );
    hold.release('n');
    await until(
      'the version-2 command to end',
      async () => (await neu2.engine.get(newer))?.status === 'succeeded',
      10_000,
      50,
    );
    expect((await neu2.engine.get(newer))?.result).toEqual({ sizeGb: 3 });

    // The old node goes away: the new node takes its version-1 tree and upgrades it.
    await old.engine.stop();
    await until(
      'the new node to claim the old tree',
      async () => (await neu2.engine.get(older))?.owner === 'new-2',
      10_000,
      50,
    );
    hold.release('o');
    await until(
      'the version-1 command to end',
      async () => (await neu2.engine.get(older))?.status === 'succeeded',
      10_000,
      50,
    );
    const ended = await neu2.engine.get(older);
    expect(ended?.result).toEqual({ sizeGb: 2 });
    expect(ended?.paramsVersion).toBe(2);
    expect(ended?.params).toEqual({ disk: 'o', sizeGb: 2 });
  });
});
