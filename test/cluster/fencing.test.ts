/**
 * A node that lost its lease (fenced by another node, as after a long pause) halts at once: its
 * next write is refused by the store in the same transaction, the engine emits `halted`, and a
 * submit waiting on that write is rejected instead of hanging. Nothing it wrote after the fence
 * is stored.
 */
import { expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { CocoError } from '../../src/core/errors.js';
import { adminQuery, describePg } from '../support/pg.js';
import { inProcessCluster } from './fixtures/in-process.js';

const noop = defineCommand({
  name: 'fence.noop',
  schema: z.object({}),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

describePg('fencing', () => {
  it('a fenced node halts at its next write; the write is refused and the submit rejected', async () => {
    // Long lease and claim periods: the node's own timers must not find the fence before the
    // submit's write does (that write is what the test is about).
    const cluster = inProcessCluster({
      prefix: 'coco_fence',
      agents: inProcessAgents(['a1']),
      commands: [noop],
      leaseMs: 60_000,
      tuning: { claimIntervalMs: 60_000 },
    });
    const engine = await cluster.start('paused');
    const { id: before } = await engine.submit(noop, {});
    // The first command runs to its end and leaves memory: no write of it comes after the fence.
    // (It leaves after its tasks were cleared: a commit or the `cleared` event comes last.)
    await new Promise<void>((resolve) => {
      if (engine.stats().liveCommands === 0) return resolve();
      const check = (): void => {
        setImmediate(() => {
          if (engine.stats().liveCommands > 0) return;
          offCommitted();
          offCleared();
          resolve();
        });
      };
      const offCommitted = engine.on('committed', check);
      const offCleared = engine.on('cleared', check);
    });
    const halted = new Promise<unknown>((resolve) => engine.on('halted', resolve));

    // What another node does to a node whose lease expired.
    await adminQuery(
      `UPDATE "${cluster.schema}".coco_nodes SET fenced = true WHERE node_id = 'paused'`,
    );

    const error = await engine.submit(noop, {}).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CocoError);
    expect((error as CocoError).code).toBe('LEASE_LOST');
    expect(await halted).toMatchObject({ error: { code: 'LEASE_LOST' } });
    const { rows } = await adminQuery(`SELECT id FROM "${cluster.schema}".commands ORDER BY id`);
    expect(rows.map((r: { id: string }) => Number(r.id))).toEqual([before]);
  });
});
