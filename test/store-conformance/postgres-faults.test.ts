/**
 * The PostgreSQL store when connections break: a batch is applied exactly once whether the
 * connection is lost before COMMIT reached the server, or after the server committed but before
 * its answer came back; an outage is waited out; reads try again; a listener reconnects; a
 * connection that goes silent (nothing answers, nothing closes) is dropped at the store's
 * deadline and its work goes on as after a cut. Cuts and silences come from a TCP proxy (precise
 * moments), cuts also from pg_terminate_backend.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import { jobStoreFromUrl, storeFromUrl } from '../../src/config/store-url.js';
import { queryDeadlineMs } from '../../src/db/postgres.js';
import type { StoreSignal } from '../../src/store/shared-port.js';
import { describePg } from '../support/pg.js';
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

/** Terminates the backends of the store on `schema` whose application_name is `coco/<role>/<schema>`. */
async function terminate(role: 'apply' | 'listen', schema: string): Promise<number> {
  const r = await admin().query(
    'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1',
    [`coco/${role}/${schema}`],
  );
  return r.rowCount ?? 0;
}

describePg('postgres store on broken connections', () => {
  let env: ReturnType<typeof schemaStores>;
  let proxy: CuttingProxy;
  let url: string;
  beforeEach(async () => {
    env = schemaStores('coco_f');
    proxy = new CuttingProxy();
    url = await proxy.start();
  });
  afterEach(async () => {
    await env.cleanup();
    await proxy.stop();
  });

  const lastBatch = async (node: string): Promise<number> =>
    Number(
      (
        await raw<{ n: string }>(
          env.schema,
          'SELECT last_batch AS n FROM coco_nodes WHERE node_id = $1',
          [node],
        )
      )[0]?.n,
    );

  /** Batches the node's ledger counts as committed: the node row's, or its lanes' in all. */
  const committed = async (node: string, applyConnections: number): Promise<number> => {
    if (applyConnections === 1) return lastBatch(node);
    const rows = await raw<{ n: string }>(
      env.schema,
      'SELECT last_batch AS n FROM coco_apply_lanes WHERE node_id = $1',
      [node],
    );
    return rows.reduce((sum, r) => sum + Number(r.n), 0);
  };

  it('COMMIT answered but the answer lost: the batch is recognised as committed, not applied again', async () => {
    const store = env.make({ url });
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    const cut = proxy.arm(false, commitComplete);
    // Applied twice, the insert of 2 would fail on its primary key.
    await store.apply(
      batch({
        commandInserts: [command(2)],
        commandUpdates: [commandUpdate(command(1, { status: 'waiting' }))],
        entityWrites: [{ kind: 'k', id: 'e', value: 1, commandId: 2, at: 1 }],
      }),
    );
    await cut;
    expect(proxy.cuts).toBe(1);
    expect((await store.getCommand(2))?.id).toBe(2);
    expect((await store.getCommand(1))?.status).toBe('waiting');
    expect(await lastBatch('n')).toBe(2);
    await store.apply(batch({ commandInserts: [command(3)] }));
    expect(await lastBatch('n')).toBe(3);
  });

  it('a claim whose COMMIT answer is lost still returns the trees it took (claim ledger)', async () => {
    const dead = env.make();
    await dead.open('dead');
    await dead.apply(batch({ commandInserts: [command(1), command(2)] }));
    await dead.close('dead'); // fenced: its trees are orphans
    const store = env.make({ url });
    await store.open('n');
    const known = [{ type: command(1).type, version: 1 }];
    const cut = proxy.arm(false, commitComplete);
    expect(await store.claimOrphans('n', known, 10)).toEqual([1, 2]);
    await cut;
    expect(proxy.cuts).toBe(1);
    expect((await store.getCommand(1))?.owner).toBe('n');
    expect(await store.claimOrphans('n', known, 10)).toEqual([]);
  });

  it('COMMIT never reached the server: the batch is applied on a new connection', async () => {
    const store = env.make({ url });
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    const cut = proxy.arm(true, commitQuery);
    await store.apply(batch({ commandInserts: [command(2)] }));
    await cut;
    expect(proxy.cuts).toBe(1);
    expect((await store.getCommand(2))?.id).toBe(2);
    expect(await lastBatch('n')).toBe(2);
  });

  // A server that stops answering without closing anything: the statement in flight meets the
  // store's deadline (1.5 × statement_timeout), its connection is dropped as if cut.
  describe('connections gone silent', () => {
    // Short for the test, yet far above any statement here (CI runs suites side by side); the
    // lease outlasts a deadline (no heartbeats here: a lapsed lease would refuse the claim).
    const statementTimeoutMs = 1_000;
    const leaseMs = 10_000;
    const deadline = queryDeadlineMs(statementTimeoutMs) ?? 0;

    it('a read is tried again on a new connection once its deadline has passed', async () => {
      const store = env.make({ url, statementTimeoutMs, leaseMs });
      await store.open('n');
      await store.apply(batch({ commandInserts: [command(1)] }));
      await store.getCommand(1);
      proxy.silenceAll();
      const began = Date.now();
      expect((await store.getCommand(1))?.id).toBe(1);
      // It waited on a silenced connection (the pool's idle one) until the deadline.
      expect(Date.now() - began).toBeGreaterThanOrEqual(deadline - 20);
      expect(proxy.silenced).toBeGreaterThan(0);
      expect(proxy.cuts).toBe(0);
    });

    it("a store URL's statementTimeoutMs sets the deadline of both stores", async () => {
      const at = new URL(url);
      at.searchParams.set('schema', env.schema);
      at.searchParams.set('statementTimeoutMs', String(statementTimeoutMs));
      const store = storeFromUrl(at.toString());
      const jobs = jobStoreFromUrl(at.toString());
      await store.open('n');
      await jobs.open();
      await store.apply(batch({ commandInserts: [command(1)] }));
      await jobs.apply({ jobs: [], steps: [], watermark: 1 });
      proxy.silenceAll();
      // With the default (45 s) these would outlast the test.
      expect((await store.getCommand(1))?.id).toBe(1);
      expect(await jobs.getWatermark()).toBe(1);
      expect(proxy.silenced).toBeGreaterThan(0);
      await jobs.close();
      await store.close('n');
    });

    it.each([1, 2])(
      'a COMMIT whose answer never comes is recognised as committed (%i apply connections)',
      async (applyConnections) => {
        const store = env.make({
          url,
          statementTimeoutMs,
          leaseMs,
          applyConnections,
          poolSize: applyConnections + 2,
        });
        await store.open('n');
        await store.apply(batch({ commandInserts: [command(1)] }));
        const silenced = proxy.arm(false, commitComplete, true);
        // Applied twice, the insert of 2 would fail on its primary key.
        await store.apply(
          batch({
            commandInserts: [command(2)],
            commandUpdates: [commandUpdate(command(1, { status: 'waiting' }))],
          }),
        );
        await silenced;
        expect([proxy.silenced, proxy.cuts]).toEqual([1, 0]);
        expect((await store.getCommand(2))?.id).toBe(2);
        expect((await store.getCommand(1))?.status).toBe('waiting');
        expect(await committed('n', applyConnections)).toBe(2);
        await store.apply(batch({ commandInserts: [command(3)] }));
        expect(await committed('n', applyConnections)).toBe(3);
      },
    );

    it('a migration waiting for another migration is not cut by the deadline', async () => {
      const holder = await admin().connect();
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
          `coco:store:${env.schema}`,
        ]);
        const store = env.make({ statementTimeoutMs });
        const opened = store.open('n');
        const waiting = async (): Promise<number> => {
          const r = await admin().query(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            [`coco/${env.schema}`],
          );
          return (r.rows[0] as { n: number }).n;
        };
        await until('the migration to wait for the lock', async () => (await waiting()) > 0);
        // Three deadlines: a migration cut by one would have tried again on a second connection
        // (the first backend still waits for the lock: it has not noticed its client is gone).
        await new Promise((r) => setTimeout(r, 3 * deadline));
        expect(await waiting()).toBe(1);
        await holder.query('COMMIT');
        await opened;
      } finally {
        holder.release();
      }
    });

    it('a close told to stop waiting lets go of a silent server at once, destroying its connections', async () => {
      // No deadline: without the signal, this close would wait for a batch that waits for ever.
      const store = env.make({ url, statementTimeoutMs: 0, leaseMs });
      await store.open('n');
      await store.apply(batch({ commandInserts: [command(1)] }));
      const backends = async (): Promise<number> => {
        const r = await admin().query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'coco/%' AND application_name LIKE '%/' || $1",
          [env.schema],
        );
        return (r.rows[0] as { n: number }).n;
      };
      expect(await backends()).toBeGreaterThan(0);
      proxy.silenceAll();
      proxy.refuse = true;
      const late = store.apply(batch({ commandInserts: [command(2)] })).then(
        () => 'stored',
        (error: unknown) => error,
      );
      const letGo = new AbortController();
      const closed = store.close('n', { signal: letGo.signal });
      letGo.abort();
      await closed;
      expect(await late).toMatchObject({ code: ErrorCode.StoreFailed });
      // Each destroyed connection closed its pair in the proxy, and so its backend.
      await until('the backends to leave', async () => (await backends()) === 0);
      proxy.refuse = false;
      const other = env.make();
      await other.migrate();
      expect((await other.getCommand(1))?.id).toBe(1);
      expect(await other.getCommand(2)).toBeNull();
    });

    it("a close does not leave a frozen server's connections half-closed: destroyed within a second", async () => {
      const store = env.make({ url, statementTimeoutMs: 0, leaseMs });
      await store.open('n');
      await store.apply(batch({ commandInserts: [command(1)] }));
      // Frozen: what is open hears nothing and says nothing, not even goodbye.
      proxy.freezeAll();
      await store.close('n');
      // Ended, a connection waits for the server's goodbye: for ever on a frozen server, holding
      // the process open. The close destroyed them (the proxy still holds its frozen sides).
      expect(store.connections()).toEqual({ open: 0, idle: 0, waiting: 0, closing: 0 });
      expect(proxy.open).toBeGreaterThan(0);
    });

    it('a claim whose COMMIT answer never comes still returns the trees it took', async () => {
      const dead = env.make();
      await dead.open('dead');
      await dead.apply(batch({ commandInserts: [command(1), command(2)] }));
      await dead.close('dead');
      const store = env.make({ url, statementTimeoutMs, leaseMs });
      await store.open('n');
      const known = [{ type: command(1).type, version: 1 }];
      const silenced = proxy.arm(false, commitComplete, true);
      expect(await store.claimOrphans('n', known, 10)).toEqual([1, 2]);
      await silenced;
      expect(proxy.silenced).toBe(1);
      expect(await store.claimOrphans('n', known, 10)).toEqual([]);
    });
  });

  it('without an opened node, a lost COMMIT answer fails the batch as of unknown outcome', async () => {
    const store = env.make({ url });
    await store.migrate();
    const cut = proxy.arm(false, commitComplete);
    const error = await rejectsWith(
      store.apply(batch({ commandInserts: [command(1)] })),
      ErrorCode.StoreFailed,
    );
    await cut;
    expect(error.message).toMatch(/outcome unknown/);
    expect(error.retryable).toBe(true);
  });

  it('an outage is waited out: overlapping batches are applied once each, in order', async () => {
    const store = env.make({ url });
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    proxy.refuse = true;
    proxy.cutAll();
    const applied = [2, 3, 4].map((id) => store.apply(batch({ commandInserts: [command(id)] })));
    await new Promise((r) => setTimeout(r, 300));
    proxy.refuse = false;
    await Promise.all(applied);
    expect((await store.listCommands()).commands.map((c) => c.id)).toEqual([4, 3, 2, 1]);
    expect(await lastBatch('n')).toBe(4);
  });

  it('the apply connection terminated mid-transaction (pg_terminate_backend): applied once', async () => {
    const store = env.make();
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    const s = `"${env.schema}"`;
    // The first insert of command 7 sleeps (a sequence is not rolled back: only once).
    await raw(
      env.schema,
      `CREATE SEQUENCE once;
       CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.id = 7 AND nextval('${s}.once') = 1 THEN PERFORM pg_sleep(10); END IF;
         RETURN NEW;
       END $$;
       CREATE TRIGGER slow BEFORE INSERT ON commands FOR EACH ROW EXECUTE FUNCTION ${s}.slow()`,
    );
    const applied = store.apply(batch({ commandInserts: [command(7)] }));
    await until('the batch to sleep in its transaction', async () => {
      const r = await admin().query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'PgSleep'",
        [`coco/apply/${env.schema}`],
      );
      return (r.rowCount ?? 0) > 0;
    });
    expect(await terminate('apply', env.schema)).toBe(1);
    await applied;
    expect((await store.getCommand(7))?.id).toBe(7);
    expect(await lastBatch('n')).toBe(2);
  });

  it('the idle apply connection terminated between batches: the next batch goes through', async () => {
    const store = env.make();
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    expect(await terminate('apply', env.schema)).toBe(1);
    await store.apply(batch({ commandInserts: [command(2)] }));
    expect((await store.getCommand(2))?.id).toBe(2);
  });

  it('a connection terminated as soon as it is accepted (server shutting down) does not crash the process', async () => {
    // The FATAL comes in the same chunk as the connection's first ReadyForQuery: the pool hands
    // the new client out, and the error arrives before the caller could add its own listener.
    // Without a listener of the store's own, the client's 'error' event is unhandled and the
    // process dies (seen once in test/serial/pg-restart).
    const store = env.make({ url });
    const errors: unknown[] = [];
    const onError = (error: unknown): void => void errors.push(error);
    process.on('uncaughtException', onError);
    try {
      proxy.fatalAfterReady = 2;
      await store.open('n');
      await store.apply(batch({ commandInserts: [command(1)] }));
      expect((await store.getCommand(1))?.id).toBe(1);
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(proxy.fatalAfterReady).toBe(0);
    expect(errors).toEqual([]);
  });

  it('reads try again when their connection was lost', async () => {
    const store = env.make({ url });
    await store.open('n');
    await store.apply(batch({ commandInserts: [command(1)] }));
    await store.getCommand(1);
    proxy.cutAll();
    expect((await store.getCommand(1))?.id).toBe(1);
    expect((await store.loadActive()).commands).toHaveLength(1);
  });

  it('a listener reconnects after its connection is lost, and signals both kinds at once', async () => {
    const a = env.make();
    const b = env.make();
    await Promise.all([a.open('a'), b.open('b')]);
    const seen: StoreSignal[] = [];
    const unlisten = await a.listen('a', (s) => seen.push(s));
    expect(await terminate('listen', env.schema)).toBe(1);
    await until(
      'signals after the reconnection',
      async () => seen.includes('orphans') && seen.includes('reports'),
    );
    // Listening again: b's close reaches a.
    seen.length = 0;
    await b.close('b');
    await until('orphans from b', async () => seen.includes('orphans'));
    await unlisten();
    // The listener's connection is closed (its backend may take a moment to leave the server).
    await until('the listener connection to end', async () => {
      const r = await admin().query(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
        [`coco/listen/${env.schema}`],
      );
      return (r.rows[0] as { n: number }).n === 0;
    });
  });
});
