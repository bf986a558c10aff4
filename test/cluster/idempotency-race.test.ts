/**
 * One idempotency key submitted to two nodes at the same instant (a client retrying on another
 * node, two schedulers): each node looks for the key, finds none, and creates a command. The
 * second commit meets the first's key in the store's unique index. Before, that node retried the
 * batch for ever — refused every time — and so stalled: every submission refused as in a store
 * outage, the commands of the batch never stored. Now the refusal (`IDEMPOTENCY_KEY_TAKEN`) halts
 * its engine as a lost lease does, and the node rejoins: one command per key, every command
 * ends, both nodes take work again, and a submission tried again finds the one command.
 */
import { expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { parseConfig } from '../../src/config/config.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import { onCleanup, until } from '../brokers/http-setup.js';
import { PG_URL, adminQuery, describePg, freshSchema } from '../support/pg.js';

const noop = defineCommand({
  name: 'race.noop',
  schema: z.object({ n: z.number() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

/** The outcomes of `promises`, or a failure naming the stall when one has not settled in `ms`. */
async function settledWithin<T>(
  promises: readonly Promise<T>[],
  ms: number,
): Promise<PromiseSettledResult<T>[]> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`a submission did not settle within ${ms} ms: its node stalled`)),
      ms,
    );
  });
  try {
    return await Promise.race([Promise.allSettled(promises), stalled]);
  } finally {
    clearTimeout(timer);
  }
}

/** Keys raced: enough that the two submissions meet in the store at least once. */
const KEYS = 12;

describePg('one idempotency key on two nodes at once', () => {
  it('makes one command; a node whose commit met the key halts and rejoins instead of stalling', async () => {
    const fresh = freshSchema('coco_keyrace');
    onCleanup(() => fresh.drop());
    const url = new URL(PG_URL);
    url.searchParams.set('schema', fresh.schema);
    const agents = inProcessAgents(['a1']);
    const halts: string[] = [];
    const start = async (nodeId: string): Promise<CocoNode> => {
      const node = await startNode({
        config: parseConfig(
          { store: url.toString(), nodeId, api: { port: 0 }, agents: [] },
          process.cwd(),
        ),
        broker: agents,
        commands: [noop],
        logger: { debug() {}, info() {}, warn() {}, error() {} },
        listen: false,
      });
      onCleanup(() => node.close());
      return node;
    };
    const nodes = [await start('race-a'), await start('race-b')];
    const running = (): boolean => nodes.every((n) => n.engine.state === 'running');
    const ids = new Map<string, Set<number>>();
    for (let i = 0; i < KEYS; i++) {
      const key = `k${i}`;
      for (const n of nodes) n.engine.on('halted', ({ error }) => halts.push(error.code));
      const outcomes = await settledWithin(
        nodes.map((n) => n.engine.submit(noop, { n: i }, { idempotencyKey: key })),
        20_000,
      );
      const seen = new Set<number>();
      for (const o of outcomes) {
        if (o.status === 'fulfilled') seen.add(o.value.id);
        // The node that halted says why to its caller (the API: 503, to try again): nothing of its
        // command was stored.
        else expect(o.reason).toMatchObject({ code: 'IDEMPOTENCY_KEY_TAKEN', retryable: true });
      }
      ids.set(key, seen);
      await until(running, 20_000, 'both nodes running again');
    }

    // One command per key, the one every caller that was answered got; each ends.
    const rows = (
      await adminQuery(
        `SELECT idempotency_key AS key, count(*)::int AS n, min(id)::int AS id
           FROM "${fresh.schema}".commands WHERE idempotency_key IS NOT NULL GROUP BY 1`,
      )
    ).rows as { key: string; n: number; id: number }[];
    expect(rows).toHaveLength(KEYS);
    for (const r of rows) {
      expect(r.n).toBe(1);
      expect([...(ids.get(r.key) ?? [])].every((id) => id === r.id)).toBe(true);
    }
    const unended = async (): Promise<number> =>
      (
        (
          await adminQuery(
            `SELECT count(*)::int AS n FROM "${fresh.schema}".commands WHERE status <> 'succeeded'`,
          )
        ).rows as { n: number }[]
      )[0]?.n ?? -1;
    await until(async () => (await unended()) === 0, 20_000, 'every command ended');
    // Tried again, on either node, the key finds its command.
    for (const n of nodes) {
      const again = await n.engine.submit(noop, { n: 0 }, { idempotencyKey: 'k0' });
      expect(again).toEqual({
        id: rows.find((r) => r.key === 'k0')?.id,
        existing: true,
      });
    }
    // Both take new work.
    for (const n of nodes) {
      const { id } = await n.engine.submit(noop, { n: 99 });
      expect((await n.engine.waitFor(id)).status).toBe('succeeded');
    }
    // Whether a commit met the other's key is the race's to decide; when one did, it halted so.
    expect(halts.every((code) => code === 'IDEMPOTENCY_KEY_TAKEN')).toBe(true);
  }, 120_000);
});
