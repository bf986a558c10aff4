/**
 * A node applying through two connections (`applyConnections: 2`, src/store/postgres/lanes.ts):
 * batches touching different commands run side by side and still commit in call order; a batch
 * waiting for an earlier one on the other lane is rolled back when that one fails; fencers pass
 * a node by while it applies and never wait for it; and connections lost at each step — a
 * COMMIT that never arrived, a COMMIT whose answer was lost, a lane cut while its batch waits
 * for the other lane, a lane terminated mid-statement, an outage — still apply every batch once.
 * Batches are held at a chosen point by a row lock the test takes (a batch updating that command
 * waits for it on the server).
 */
import pg from 'pg';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import {
  DEFAULT_APPLY_CONNECTIONS,
  compileOptions,
  type PostgresStoreOptions,
} from '../../src/store/postgres/options.js';
import type { PostgresStore } from '../../src/store/postgres/pg-store.js';
import { PG_URL, describePg } from '../support/pg.js';
import { batch, command, commandUpdate } from './fixtures.js';
import { rejectsWith } from './harness.js';
import {
  CuttingProxy,
  admin,
  commitComplete,
  commitQuery,
  endAdmin,
  raw,
  schemaStores,
  until,
} from './pg-harness.js';

afterAll(endAdmin);

const LANES = { applyConnections: 2, poolSize: 6 } as const;

describePg('postgres store, two apply connections', () => {
  let env: ReturnType<typeof schemaStores>;
  let proxy: CuttingProxy;
  let url: string;
  const held: pg.PoolClient[] = [];
  beforeEach(async () => {
    env = schemaStores('coco_l');
    proxy = new CuttingProxy();
    url = await proxy.start();
  });
  afterEach(async () => {
    for (const c of held.splice(0)) {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    }
    await env.cleanup();
    await proxy.stop();
  });

  /** Each lane's last committed batch, by lane. */
  const lanes = async (node: string): Promise<number[]> =>
    (
      await raw<{ last_batch: string }>(
        env.schema,
        'SELECT last_batch FROM coco_apply_lanes WHERE node_id = $1 ORDER BY lane',
        [node],
      )
    ).map((r) => Number(r.last_batch));

  /** Takes command `id`'s row lock in a transaction of the test's own; resolves a release. */
  const holdRow = async (id: number): Promise<() => Promise<void>> => {
    const client = await admin().connect();
    held.push(client);
    await client.query('BEGIN');
    await client.query(`SELECT 1 FROM "${env.schema}".commands WHERE id = $1 FOR UPDATE`, [id]);
    return async () => {
      await client.query('COMMIT');
    };
  };

  /**
   * The apply connections' backends: `waiting` for a lock, or `parked` — idle in a transaction
   * whose last statement was a batch's insert (its statements all run, waiting for its turn to
   * commit; a backend between two messages of a batch can read idle in transaction too, but its
   * last statement is then BEGIN or the lane's own).
   */
  const applyBackends = async (): Promise<
    { pid: number; state: string; waiting: boolean; parked: boolean }[]
  > => {
    const r = await admin().query<{
      pid: number;
      state: string;
      wait_event_type: string | null;
      query: string;
    }>(
      'SELECT pid, state, wait_event_type, query FROM pg_stat_activity WHERE application_name = $1',
      [`coco/apply/${env.schema}`],
    );
    return r.rows.map((b) => ({
      pid: b.pid,
      state: b.state,
      waiting: b.wait_event_type === 'Lock',
      parked: b.state === 'idle in transaction' && /^\s*INSERT\b/i.test(b.query),
    }));
  };

  /** Applies `first` (which waits on the held row of command 1), then `second` on the other lane, which waits for `first` in the client. */
  const holdTwo = async (
    store: PostgresStore,
    second: Parameters<PostgresStore['apply']>[0],
  ): Promise<{
    first: Promise<void>;
    second: Promise<void>;
    release: () => Promise<void>;
    order: string[];
  }> => {
    const release = await holdRow(1);
    const order: string[] = [];
    const first = store
      .apply(batch({ commandUpdates: [commandUpdate(command(1, { status: 'waiting' }))] }))
      .then(() => void order.push('first'));
    const later = store.apply(second).then(() => void order.push('second'));
    await until('one batch waiting for the lock, the other for its turn to commit', async () => {
      const b = await applyBackends();
      return b.some((x) => x.waiting) && b.some((x) => x.parked);
    });
    return { first, second: later, release, order };
  };

  /** Releases the held row: both batches of {@link holdTwo} apply once each, the first first. */
  const bothApplied = async (
    store: PostgresStore,
    held: Awaited<ReturnType<typeof holdTwo>>,
  ): Promise<void> => {
    await held.release();
    await Promise.all([held.first, held.second]);
    expect(held.order).toEqual(['first', 'second']);
    expect((await store.getCommand(1))?.status).toBe('waiting');
    expect((await store.getCommand(2))?.id).toBe(2);
    expect((await lanes('n')).reduce((a, b) => a + b, 0)).toBe(3);
  };

  it('batches on different commands run side by side, yet a later one commits only after the earlier', async () => {
    const store = env.make(LANES);
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    const held = await holdTwo(store, batch({ commandInserts: [command(2)] }));
    // The second batch's statements have run on the other lane, but it is not committed.
    expect(await store.getCommand(2)).toBeNull();
    await bothApplied(store, held);
  });

  it('when the earlier batch fails, the later one waiting on the other lane is rolled back; the next call applies', async () => {
    const store = env.make(LANES);
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    const release = await holdRow(1);
    // Updates command 1 (held) and 99 (missing): fails once the lock is released.
    const first = store.apply(
      batch({
        commandUpdates: [
          commandUpdate(command(1, { status: 'waiting' })),
          commandUpdate(command(99, { status: 'waiting' })),
        ],
      }),
    );
    const second = store.apply(batch({ commandInserts: [command(2)] }));
    await until('the second batch waiting for the first', async () =>
      (await applyBackends()).some((x) => x.parked),
    );
    await release();
    const failed = await rejectsWith(first, ErrorCode.BatchRefused);
    expect(failed.message).toMatch(/99/);
    const doomed = await rejectsWith(second, ErrorCode.StoreFailed);
    expect(doomed.message).toMatch(/earlier batch failed/);
    expect(await store.getCommand(2)).toBeNull();
    // Both lanes number on from their last committed batch.
    await Promise.all([3, 4, 5].map((id) => store.apply(batch({ commandInserts: [command(id)] }))));
    expect((await store.listCommands()).commands.map((c) => c.id)).toEqual([5, 4, 3, 1]);
  });

  it('a batch on rows of an unsettled batch goes behind it on its lane, and applies', async () => {
    const store = env.make(LANES);
    await store.open('n');
    // Each pair: an insert, and at once an update of what it inserted (found only after it).
    const calls: Promise<void>[] = [];
    for (let id = 1; id <= 40; id++) {
      calls.push(store.apply(batch({ commandInserts: [command(id)] })));
      calls.push(
        store.apply(batch({ commandUpdates: [commandUpdate(command(id, { status: 'waiting' }))] })),
      );
    }
    await Promise.all(calls);
    const listed = (await store.listCommands({ limit: 100 })).commands;
    expect(listed).toHaveLength(40);
    expect(listed.every((c) => c.status === 'waiting')).toBe(true);
    const perLane = await lanes('n');
    expect(perLane.reduce((a, b) => a + b, 0)).toBe(80);
    // Both lanes carried batches.
    expect(perLane.every((n) => n > 0)).toBe(true);
  });

  it('a fencer passes by a node whose lanes are applying, without waiting, and fences it after', async () => {
    const store = env.make(LANES);
    const other = env.make();
    await store.open('a');
    await other.open('b');
    await store.apply(batch({ commandInserts: [command(1)] }));
    const { first, second, release } = await holdTwo(
      store,
      batch({ commandInserts: [command(2)] }),
    );
    await raw(
      env.schema,
      "UPDATE coco_nodes SET lease_until = now() - interval '1 hour' WHERE node_id = 'a'",
    );
    const t0 = performance.now();
    await other.claimOrphans('b', [], 10);
    expect(performance.now() - t0).toBeLessThan(2_000);
    const fenced = async (): Promise<boolean> =>
      (
        await raw<{ fenced: boolean }>(
          env.schema,
          "SELECT fenced FROM coco_nodes WHERE node_id = 'a'",
        )
      )[0]!.fenced;
    expect(await fenced()).toBe(false);
    await release();
    await Promise.all([first, second]);
    await other.claimOrphans('b', [], 10);
    expect(await fenced()).toBe(true);
    await rejectsWith(store.apply(batch({ commandInserts: [command(3)] })), ErrorCode.LeaseLost);
    expect(await store.getCommand(3)).toBeNull();
  });

  it('an id is not taken over from a process still applying through lanes; once it stops, it is', async () => {
    const store = env.make(LANES);
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    const { first, second, release } = await holdTwo(
      store,
      batch({ commandInserts: [command(2)] }),
    );
    await raw(
      env.schema,
      "UPDATE coco_nodes SET lease_until = now() - interval '1 hour' WHERE node_id = 'n'",
    );
    const successor = env.make(LANES);
    await rejectsWith(successor.open('n'), ErrorCode.StoreInUse);
    await release();
    await Promise.all([first, second]);
    await successor.open('n');
    // The earlier process is out: its next batch is refused, the successor's applies.
    await rejectsWith(store.apply(batch({ commandInserts: [command(3)] })), ErrorCode.LeaseLost);
    await successor.apply(batch({ commandInserts: [command(4)] }));
    expect(await successor.getCommand(3)).toBeNull();
    expect((await successor.getCommand(4))?.id).toBe(4);
    expect(await lanes('n')).toEqual([1, 0]);
  });

  it('COMMIT answer lost on a lane: recognised as committed, not applied again; the other lane goes on', async () => {
    const store = env.make({ ...LANES, url });
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    const cut = proxy.arm(false, commitComplete);
    // Applied twice, an insert would fail on its primary key.
    await Promise.all([
      store.apply(
        batch({
          commandInserts: [command(2)],
          commandUpdates: [commandUpdate(command(1, { status: 'waiting' }))],
        }),
      ),
      store.apply(batch({ commandInserts: [command(3)] })),
      store.apply(batch({ commandInserts: [command(4)] })),
    ]);
    await cut;
    expect(proxy.cuts).toBe(1);
    expect((await store.listCommands()).commands.map((c) => c.id)).toEqual([4, 3, 2, 1]);
    expect((await store.getCommand(1))?.status).toBe('waiting');
    expect((await lanes('n')).reduce((a, b) => a + b, 0)).toBe(4);
    await store.apply(batch({ commandInserts: [command(5)] }));
    expect((await lanes('n')).reduce((a, b) => a + b, 0)).toBe(5);
  });

  it('COMMIT never reached the server on a lane: applied on a new connection, in order', async () => {
    const store = env.make({ ...LANES, url });
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    const cut = proxy.arm(true, commitQuery);
    await Promise.all([2, 3, 4].map((id) => store.apply(batch({ commandInserts: [command(id)] }))));
    await cut;
    expect(proxy.cuts).toBe(1);
    expect((await store.listCommands()).commands.map((c) => c.id)).toEqual([4, 3, 2, 1]);
    expect((await lanes('n')).reduce((a, b) => a + b, 0)).toBe(4);
  });

  /**
   * Records the order in which inserted commands COMMIT: a deferred constraint trigger runs at
   * each transaction's COMMIT and numbers its rows from a sequence.
   */
  const commitOrderProbe = async (): Promise<void> => {
    const s = `"${env.schema}"`;
    await admin().query(
      `CREATE TABLE ${s}.commit_order (id bigint NOT NULL, n bigserial);
       CREATE FUNCTION ${s}.note_commit() RETURNS trigger LANGUAGE plpgsql AS
         $$BEGIN INSERT INTO ${s}.commit_order (id) VALUES (NEW.id); RETURN NULL; END$$;
       CREATE CONSTRAINT TRIGGER note_commit AFTER INSERT ON ${s}.commands
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${s}.note_commit();`,
    );
  };
  const commitOrder = async (): Promise<number[]> =>
    (
      await admin().query<{ id: string }>(`SELECT id FROM "${env.schema}".commit_order ORDER BY n`)
    ).rows.map((r) => Number(r.id));

  /**
   * Where a lane's connection can be cut: each message of a lane's batch on its way to the server
   * (BEGIN, entering the lane, locking its ledger row, the batch's step, COMMIT), and each answer
   * on its way back (the step's, the lane lock's, COMMIT's). Matched by the bytes of the chunk.
   */
  const cutPoints: [string, boolean, (chunk: Buffer) => boolean][] = [
    ['BEGIN sent', true, (c) => c.includes('BEGIN\0')],
    ['the lane entered', true, (c) => c.includes('coco_enter_lane\0')],
    ['the lane ledger locked', true, (c) => c.includes('coco_lock_lane\0')],
    ['the step sent', true, (c) => c.includes('coco_insertCommands\0')],
    ['COMMIT sent', true, commitQuery],
    ["the lane lock's answer", false, (c) => c.includes('SELECT 1\0')],
    ["the step's answer", false, (c) => c.includes('INSERT 0 1\0')],
    ["COMMIT's answer", false, commitComplete],
  ];

  it.each(
    cutPoints.flatMap(([what, toServer, test]) =>
      [1, 2].map((n) => [what, n, toServer, test] as const),
    ),
  )(
    'a lane cut at %s (the %i. time): overlapping batches on both lanes applied once each, in order',
    async (_what, n, toServer, test) => {
      const store = env.make({ ...LANES, url });
      await store.open('n');
      await store.apply(batch({ commandInserts: [command(1)] }));
      await commitOrderProbe();
      let seen = 0;
      const cut = proxy.arm(toServer, (chunk) => test(chunk) && ++seen === n);
      // Applied twice, an insert would fail on its primary key; the COMMITs must come in call
      // order whichever lane was cut.
      await Promise.all(
        [2, 3, 4, 5].map((id) => store.apply(batch({ commandInserts: [command(id)] }))),
      );
      await cut;
      expect(proxy.cuts).toBe(1);
      expect((await store.listCommands()).commands.map((c) => c.id)).toEqual([5, 4, 3, 2, 1]);
      expect(await commitOrder()).toEqual([2, 3, 4, 5]);
      expect((await lanes('n')).reduce((a, b) => a + b, 0)).toBe(5);
      await store.apply(batch({ commandInserts: [command(6)] }));
      expect((await lanes('n')).reduce((a, b) => a + b, 0)).toBe(6);
    },
  );

  it.each([
    ['of a batch waiting for the other lane', false],
    ['of the earlier batch, mid-statement,', true],
  ])('the lane %s is terminated: both applied once, in order', async (_which, mid) => {
    const store = env.make(LANES);
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    const held = await holdTwo(store, batch({ commandInserts: [command(2)] }));
    // The first batch waits for the held row; the second, its statements run, for its turn.
    const victims = (await applyBackends()).filter((b) => (mid ? b.waiting : b.parked));
    expect(victims).toHaveLength(1);
    await admin().query('SELECT pg_terminate_backend($1)', [victims[0]!.pid]);
    if (mid) {
      // Its retry waits for the lock again.
      await until('the first batch written again, waiting for the lock', async () =>
        (await applyBackends()).some((b) => b.waiting),
      );
    }
    await bothApplied(store, held);
  });

  it('an outage is waited out: overlapping batches on both lanes are applied once each, in order', async () => {
    const store = env.make({ ...LANES, url });
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    proxy.refuse = true;
    proxy.cutAll();
    const applied = [2, 3, 4, 5].map((id) => store.apply(batch({ commandInserts: [command(id)] })));
    await new Promise((r) => setTimeout(r, 300));
    proxy.refuse = false;
    await Promise.all(applied);
    expect((await store.listCommands()).commands.map((c) => c.id)).toEqual([5, 4, 3, 2, 1]);
    expect((await lanes('n')).reduce((a, b) => a + b, 0)).toBe(5);
  });

  it('options: applyConnections is checked against the pool it needs', () => {
    expect(() => env.make({ applyConnections: 4, poolSize: 5 })).toThrow(
      /poolSize: 5 is too small for 4 apply connections \(at least 6\)/,
    );
    expect(() => env.make({ applyConnections: 9, poolSize: 20 })).toThrow(/applyConnections/);
  });

  it('options: two apply connections by default, one where the pool has no room for two', () => {
    const lanesOf = (o: PostgresStoreOptions): number => compileOptions(o).applyConnections;
    expect(lanesOf({ url: PG_URL })).toBe(DEFAULT_APPLY_CONNECTIONS);
    expect(DEFAULT_APPLY_CONNECTIONS).toBe(2);
    expect(lanesOf({ url: PG_URL, poolSize: 4 })).toBe(2);
    expect(lanesOf({ url: PG_URL, poolSize: 3 })).toBe(1);
    expect(lanesOf({ url: PG_URL, poolSize: 3, applyConnections: 1 })).toBe(1);
    expect(() => lanesOf({ url: PG_URL, poolSize: 3, applyConnections: 2 })).toThrow(
      /poolSize: 3 is too small for 2 apply connections/,
    );
    const small = new pg.Pool({ connectionString: PG_URL, max: 3 });
    const large = new pg.Pool({ connectionString: PG_URL, max: 10 });
    try {
      expect(lanesOf({ pool: small })).toBe(1);
      expect(lanesOf({ pool: large })).toBe(2);
    } finally {
      void small.end();
      void large.end();
    }
  });
});
