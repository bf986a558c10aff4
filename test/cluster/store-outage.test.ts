/**
 * A node whose database is down: once every write has failed for `storeOutageMs`, new
 * submissions and cancellations are refused at once with a retryable `STORE_FAILED` and nothing
 * of them is stored, instead of each waiting in memory for as long as the outage lasts. What was
 * accepted before waits and is stored once the database is back; then the node takes work again.
 */
import { afterAll, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { adminQuery, describePg } from '../support/pg.js';
import { CuttingProxy } from '../store-conformance/pg-harness.js';
import { inProcessCluster } from './fixtures/in-process.js';

const noop = defineCommand({
  name: 'outage.noop',
  schema: z.object({ n: z.number() }),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

// Stopped after the fixture has stopped the engine (afterEach), which needs the database.
const proxy = new CuttingProxy();
afterAll(() => proxy.stop());

describePg('a store taking no write', () => {
  it('refuses new work after storeOutageMs, stores what it took before, and takes work again once back', async () => {
    try {
      const logged: string[] = [];
      const cluster = inProcessCluster({
        prefix: 'coco_outage',
        agents: inProcessAgents(['a1']),
        commands: [noop],
        // A lease far longer than the test: the node must not halt meanwhile.
        leaseMs: 60_000,
        store: { url: await proxy.start() },
        tuning: { storeOutageMs: 400 },
        logger: {
          debug() {},
          info: (_o: unknown, m?: string) => void logged.push(`info ${m}`),
          warn: (_o: unknown, m?: string) => void logged.push(`warn ${m}`),
          error: (_o: unknown, m?: string) => void logged.push(`error ${m}`),
        },
      });
      const engine = await cluster.start('lone');
      const storeEvents: { up: boolean; forMs: number; error: unknown }[] = [];
      engine.on('store', (e) => storeEvents.push(e));
      const before = await engine.submit(noop, { n: 1 });
      expect((await engine.waitFor(before.id)).status).toBe('succeeded');
      expect(engine.storeOutage).toBeNull();

      // The database goes down: open connections cut, new ones refused.
      proxy.refuse = true;
      proxy.cutAll();
      // Taken before the outage is known: it waits for the store.
      let accepted: { id: number } | undefined;
      const taken = engine.submit(noop, { n: 2 }).then((r) => (accepted = r));
      await vi.waitFor(() => expect(engine.storeOutage).not.toBeNull(), {
        timeout: 10_000,
        interval: 20,
      });
      const out = engine.storeOutage!;
      expect(out.forMs).toBeGreaterThanOrEqual(400);
      // The PostgreSQL store reconnects and tries again itself: no failure, no answer.
      expect(out.last).toBeNull();
      expect(accepted).toBeUndefined();

      // New work is refused at once, retryable, naming the outage.
      const refusal = {
        code: 'STORE_FAILED',
        retryable: true,
        message: expect.stringMatching(/taken no write for [\d.]+ s/) as unknown,
      };
      await expect(engine.submit(noop, { n: 3 })).rejects.toMatchObject(refusal);
      await expect(engine.submit(noop, { n: 4 }, { idempotencyKey: 'k4' })).rejects.toMatchObject(
        refusal,
      );
      await expect(engine.submitMany([{ type: noop, params: { n: 5 } }])).rejects.toMatchObject(
        refusal,
      );
      await expect(engine.cancel(before.id)).rejects.toMatchObject(refusal);
      expect(engine.state).toBe('running');

      // The database is back: what was taken is stored and runs; the node takes work again.
      proxy.refuse = false;
      await taken;
      expect((await engine.waitFor(accepted!.id)).status).toBe('succeeded');
      expect(engine.storeOutage).toBeNull();
      const after = await engine.submit(noop, { n: 6 });
      expect((await engine.waitFor(after.id)).status).toBe('succeeded');

      // Said once when counted, once when over: the store's own retries say nothing.
      expect(logged.filter((l) => /no write|takes writes/.test(l))).toEqual([
        expect.stringMatching(
          /^warn the store has taken no write for [\d.]+ s \(no answer\); new submissions and cancellations are refused until it does$/,
        ) as unknown,
        expect.stringMatching(
          /^info the store takes writes again, after [\d.]+ s without$/,
        ) as unknown,
      ]);

      expect(storeEvents).toEqual([
        { up: false, forMs: expect.any(Number) as unknown, error: null },
        { up: true, forMs: expect.any(Number) as unknown, error: null },
      ]);
      expect(storeEvents[0]!.forMs).toBeGreaterThanOrEqual(400);
      expect(storeEvents[1]!.forMs).toBeGreaterThanOrEqual(storeEvents[0]!.forMs);

      // Nothing of the refused work was stored.
      const { rows } = await adminQuery(
        `SELECT (params::jsonb->>'n')::int AS n FROM "${cluster.schema}".commands ORDER BY id`,
      );
      expect(rows).toEqual([{ n: 1 }, { n: 2 }, { n: 6 }]);
    } finally {
      proxy.refuse = false;
    }
  });
});
