/**
 * A lone node whose database stops answering without closing its connections (a failed-over
 * primary behind an address that stays up, a dropped route): the statements in flight meet the
 * store's deadline, their connections are dropped as lost, and the node goes on through new
 * ones — every command ends, once — instead of waiting for TCP to give up (~15 min).
 */
import { afterAll, expect, it } from 'vitest';
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
