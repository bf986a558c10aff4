/**
 * Renamed command types on a shared store: a node claims the orphaned trees of a type it knows
 * under a former name (its aliases count as known types), and runs them to their end.
 */
import { expect, it, vi } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { describePg } from '../support/pg.js';
import { inProcessCluster } from './fixtures/in-process.js';

const schema = z.object({});
const before = defineCommand({
  name: 'alias.before',
  schema,
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'hold' });
  },
});
const after = defineCommand({
  name: 'alias.after',
  aliases: ['alias.before'],
  schema,
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'hold' });
  },
  onSuccess: (ctx) => ({ ranAs: ctx.command.type }),
});

describePg('renamed types on many nodes', () => {
  it("a node claims a departed node's tree of a type it knows by a former name", async () => {
    let release = (): void => {};
    const released = new Promise<void>((r) => (release = r));
    const agents = inProcessAgents(['a1'], { verbs: { hold: () => released.then(() => 'done') } });
    const cluster = inProcessCluster({ prefix: 'coco_alias', agents, commands: [before] });
    try {
      const old = await cluster.start('old');
      const { id } = await old.submit(before, {});
      await vi.waitFor(
        async () => expect((await old.inspect(id))?.tasks[0]?.status).toBe('running'),
        { timeout: 10_000, interval: 20 },
      );
      await old.stop();

      const neu = await cluster.start('new', [after]);
      const claimed: number[] = [];
      neu.on('claimed', ({ rootIds }) => claimed.push(...rootIds));
      await vi.waitFor(async () => expect((await neu.get(id))?.owner).toBe('new'), {
        timeout: 10_000,
        interval: 20,
      });
      release();
      const ended = await neu.waitFor(id);
      expect(ended).toMatchObject({
        status: 'succeeded',
        type: 'alias.before',
        result: { ranAs: 'alias.after' },
      });
    } finally {
      release();
    }
  });
});
