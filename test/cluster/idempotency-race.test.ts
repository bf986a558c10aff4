/**
 * One idempotency key submitted to two nodes at the same instant (a client retrying on another
 * node, two schedulers): each node looks for the key and finds none.
 *
 * - With `SharedStore.insertKeyedRoot` (PostgreSQL), each node stores its root alone before it
 *   runs, unless the key is taken: one command, both callers answered with it, no node disturbed.
 *   Before, both roots went in batches and the second commit met the first's key.
 * - Without it (a keyed root in a batch), the second batch is refused (`IDEMPOTENCY_KEY_TAKEN`):
 *   its engine halts, as on a lost lease, and the node rejoins. Before, that node retried the
 *   batch for ever, refused every time, and so stalled: every submission refused as in a store
 *   outage, the commands of the batch never stored.
 *
 * Either way: one command per key, every command ends, both nodes take work again, and a
 * submission tried again finds the one command.
 */
import { expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { parseConfig } from '../../src/config/config.js';
import type { Engine } from '../../src/engine/engine.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import { PostgresStore, postgresStore } from '../../src/store/postgres/pg-store.js';
import { createEngine } from '../../src/engine/engine.js';
import { onCleanup, until } from '../brokers/http-setup.js';
import { PG_URL, adminQuery, describePg, freshSchema } from '../support/pg.js';
import { parsePrometheusText, sampleValue } from '../support/prom-text.js';

const noop = defineCommand({
  name: 'race.noop',
  schema: z.object({ n: z.number() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

/** Keys raced: the two submissions of one key meet in the store for most of them. */
const KEYS = 12;

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

/**
 * Two nodes on a fresh schema race each of {@link KEYS} keys; checks what holds either way and
 * returns the codes the nodes' engines halted with.
 */
async function race(): Promise<string[]> {
  const fresh = freshSchema('coco_keyrace');
  onCleanup(() => fresh.drop());
  const url = new URL(PG_URL);
  url.searchParams.set('schema', fresh.schema);
  const agents = inProcessAgents(['a1']);
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
  const halts: string[] = [];
  const heard = new Set<Engine>();
  const listen = (): void => {
    for (const { engine } of nodes) {
      if (heard.has(engine)) continue;
      heard.add(engine);
      engine.on('halted', ({ error }) => halts.push(error.code));
    }
  };
  const running = (): boolean => nodes.every((n) => n.engine.state === 'running');
  const answers = new Map<string, Set<number>>();
  for (let i = 0; i < KEYS; i++) {
    const key = `k${i}`;
    listen();
    const outcomes = await settledWithin(
      nodes.map((n) => n.engine.submit(noop, { n: i }, { idempotencyKey: key })),
      20_000,
    );
    const ids = new Set<number>();
    for (const o of outcomes) {
      if (o.status === 'fulfilled') ids.add(o.value.id);
      // A node that halted says why to its caller (the API: 503, to try again): nothing of its
      // command was stored.
      else expect(o.reason).toMatchObject({ code: 'IDEMPOTENCY_KEY_TAKEN', retryable: true });
    }
    answers.set(key, ids);
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
    expect([...(answers.get(r.key) ?? [])].every((id) => id === r.id)).toBe(true);
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
    expect(again).toEqual({ id: rows.find((r) => r.key === 'k0')?.id, existing: true });
  }
  // Both take new work.
  for (const n of nodes) {
    const { id } = await n.engine.submit(noop, { n: 99 });
    expect((await n.engine.waitFor(id)).status).toBe('succeeded');
  }
  // Who follows the inserts saw each root stored, once: the metrics, and the job view.
  let submitted = 0;
  for (const n of nodes) {
    const families = parsePrometheusText(await n.metrics.text());
    submitted += sampleValue(families, 'coco_commands_submitted_total', { kind: 'root' });
  }
  expect(submitted).toBe(KEYS + nodes.length);
  const monitor = nodes[0]?.monitor;
  for (const n of nodes) await n.monitor?.flush();
  for (const r of rows) expect((await monitor?.getJob(r.id))?.status).toBe('succeeded');
  return halts;
}

describePg('one idempotency key on two nodes at once', () => {
  it('makes one command, each root stored alone before it runs: no node halts', async () => {
    expect(await race()).toEqual([]);
  }, 120_000);

  it('without insertKeyedRoot, the node whose batch met the key halts and rejoins instead of stalling', async () => {
    const proto = PostgresStore.prototype as { insertKeyedRoot?: unknown };
    const own = Object.getOwnPropertyDescriptor(proto, 'insertKeyedRoot');
    Object.defineProperty(proto, 'insertKeyedRoot', { value: undefined, configurable: true });
    onCleanup(async () => {
      if (own) Object.defineProperty(proto, 'insertKeyedRoot', own);
    });
    const halts = await race();
    // Whether two batches met is the race's to decide (they did for 12 keys of 12 when written).
    expect(halts.length).toBeGreaterThan(0);
    expect(new Set(halts)).toEqual(new Set(['IDEMPOTENCY_KEY_TAKEN']));
  }, 120_000);

  it('with roots limited, a keyed root is stored waiting for admission: a crash before its first batch never admits it past the limit', async () => {
    const fresh = freshSchema('coco_keyqueue');
    onCleanup(() => fresh.drop());
    const store = postgresStore({ url: PG_URL, schema: fresh.schema });
    const stored: (number | null)[] = [];
    const insert = store.insertKeyedRoot.bind(store);
    store.insertKeyedRoot = (nodeId, root) => {
      stored.push(root.queuedSince);
      return insert(nodeId, root);
    };
    const engine = createEngine({
      store,
      agents: inProcessAgents(['a1']),
      commands: [noop],
      limits: { maxRunningRoots: 1 },
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    });
    await engine.start();
    onCleanup(() => engine.stop());
    const { id } = await engine.submit(noop, { n: 1 }, { idempotencyKey: 'queued' });
    expect(stored).toHaveLength(1);
    expect(stored[0]).toBeTypeOf('number');
    // Then admitted at once (there is room), and run.
    expect((await engine.waitFor(id)).status).toBe('succeeded');
    expect((await engine.get(id))?.queuedSince).toBeNull();
  });
});
