/**
 * A lone node whose database stops answering without closing its connections (a failed-over
 * primary behind an address that stays up, a dropped route): the statements in flight meet the
 * store's deadline, their connections are dropped as lost, and the node goes on through new
 * ones — every command ends, once — instead of waiting for TCP to give up (~15 min). And a node
 * stopped while its database is down stops within its bound, and another node ends its work.
 */
import { afterAll, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { adminQuery, describePg } from '../support/pg.js';
import { CuttingProxy } from '../store-conformance/pg-harness.js';
import { inProcessCluster } from './fixtures/in-process.js';

const noop = defineCommand({
  name: 'silent.noop',
  schema: z.object({}),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

const hold = defineCommand({
  name: 'silent.hold',
  schema: z.object({}),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'hold' });
  },
});

let proxy: CuttingProxy | undefined;
afterAll(() => proxy?.stop());

describePg('a database gone silent', () => {
  it('a lone node goes on through new connections once the deadline has passed', async () => {
    proxy = new CuttingProxy();
    try {
      const cluster = inProcessCluster({
        prefix: 'coco_silent',
        agents: inProcessAgents(['a1']),
        commands: [noop],
        store: { url: await proxy.start(), statementTimeoutMs: 1_000 },
      });
      const engine = await cluster.start('lone');
      const first = await engine.submit(noop, {});
      expect((await engine.waitFor(first.id)).status).toBe('succeeded');

      // Every connection the node holds goes silent: apply lanes, listener, idle reads.
      proxy.silenceAll();
      const ids: number[] = [];
      for (let i = 0; i < 3; i++) ids.push((await engine.submit(noop, {})).id);
      for (const id of ids) expect((await engine.waitFor(id)).status).toBe('succeeded');
      expect(proxy.silenced).toBeGreaterThan(0);
      expect(engine.state).toBe('running');

      const { rows } = await adminQuery(
        `SELECT id, status FROM "${cluster.schema}".commands ORDER BY id`,
      );
      expect(rows).toEqual(
        [first.id, ...ids].map((id) => ({ id: String(id), status: 'succeeded' })),
      );
    } finally {
      // Before the fixture stops the engine: a pool ending a connection still silenced would
      // wait for the server's goodbye (over a real network, until keepalive gives up, ~20 s).
      proxy.cutAll();
    }
  });
});

describePg('a node stopped while its database is down', () => {
  it('stops within stopTimeoutMs, and another node ends its command, once', async () => {
    const down = new CuttingProxy();
    let release = (): void => {};
    const released = new Promise<void>((r) => (release = r));
    try {
      const agents = inProcessAgents(['a1'], {
        verbs: { hold: () => released.then(() => 'done') },
      });
      const warnings: string[] = [];
      const cluster = inProcessCluster({
        prefix: 'coco_stopdown',
        agents,
        commands: [hold],
        // No deadline: the store would wait on the silent server for ever.
        store: { url: await down.start(), statementTimeoutMs: 0 },
        tuning: { stopTimeoutMs: 1_000 },
        logger: {
          debug() {},
          info() {},
          warn: (_o: unknown, m?: string) => void warnings.push(m ?? ''),
          error() {},
        },
      });
      const ended: number[] = [];
      const first = await cluster.start('first');
      first.on('ended', (c) => ended.push(c.id));
      const { id } = await first.submit(hold, {});
      await vi.waitFor(
        async () => expect((await first.inspect(id))?.tasks[0]?.status).toBe('running'),
        { timeout: 10_000, interval: 20 },
      );
      // The database goes down: what is open goes silent, new connections are refused. A
      // submit's batch is in flight, never to be stored; the task ends on its agent.
      down.silenceAll();
      down.refuse = true;
      const late = first.submit(hold, {}).then(
        () => 'stored',
        (error: unknown) => error,
      );
      release();
      const began = Date.now();
      await first.stop();
      expect(Date.now() - began).toBeLessThan(5_000);
      expect(first.state).toBe('stopped');
      expect(warnings.some((w) => w.includes('did not answer within 1000 ms'))).toBe(true);
      expect(await late).toMatchObject({ code: 'ENGINE_STOPPED' });
      const stored = async (): Promise<string | undefined> =>
        (
          (await adminQuery(`SELECT status FROM "${cluster.schema}".commands WHERE id = ${id}`))
            .rows[0] as { status?: string } | undefined
        )?.status;
      expect(await stored()).toBe('waiting');
      const count = await adminQuery(`SELECT count(*)::int AS n FROM "${cluster.schema}".commands`);
      expect(count.rows).toEqual([{ n: 1 }]);

      // The database is back; another node claims the tree once the first's lease lapses.
      down.refuse = false;
      const second = await cluster.start('second');
      expect((await second.waitFor(id)).status).toBe('succeeded');
      expect(await stored()).toBe('succeeded');
      // Ended on the second node, not on the first (its end was never stored).
      expect(ended).toEqual([]);
      expect((await second.get(id))?.owner).toBe('second');
    } finally {
      release();
      down.cutAll();
      await down.stop();
    }
  });
});
