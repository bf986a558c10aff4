/**
 * Cancel through any node: a command run by another node is cancelled by its owner, which hears
 * of the request through the store (and its signal), stops the task, and ends it as cancelled.
 */
import { expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { ErrorCode } from '../../src/core/errors.js';
import { rejectsWith } from '../store-conformance/harness.js';
import { holdVerbs } from '../support/harness.js';
import { describePg } from '../support/pg.js';
import { inProcessCluster } from './fixtures/in-process.js';

const held = defineCommand({
  name: 'cancel.held',
  schema: z.object({ key: z.string() }),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.key } });
  },
});

describePg('cancel across nodes', () => {
  it('a node cancels a command another node runs; ended and unknown ones are refused', async () => {
    const hold = holdVerbs();
    const cluster = inProcessCluster({
      prefix: 'coco_cancel',
      agents: inProcessAgents(['a1'], { verbs: hold.verbs }),
      commands: [held],
    });
    const a = await cluster.start('a');
    const b = await cluster.start('b');
    const { id } = await a.submit(held, { key: 'k' });
    const cancelled = new Promise<void>((resolve) => {
      const off = a.on('committed', (batch) => {
        if (batch.commandUpdates.some((u) => u.id === id && u.status === 'cancelled')) {
          off();
          resolve();
        }
      });
    });

    const waited = b.waitFor(id); // b does not run it: it waits on the store
    await b.cancel(id);
    await cancelled;
    expect((await waited).status).toBe('cancelled');
    const record = await b.get(id);
    expect(record).toMatchObject({ status: 'cancelled', owner: 'a' });
    expect((await b.inspect(id))?.tasks[0]?.status).toBe('cancelled');

    await rejectsWith(b.cancel(id), ErrorCode.CommandState);
    await rejectsWith(b.cancel(999_999), ErrorCode.CommandNotFound);
  });
});
