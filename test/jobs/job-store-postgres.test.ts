import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CocoError } from '../../src/core/errors.js';
import { ManualClock } from '../../src/core/clock.js';
import type { JobStore } from '../../src/jobs/port.js';
import {
  postgresJobStore,
  type PostgresJobStore,
  type PostgresJobStoreOptions,
} from '../../src/jobs/postgres/job-store.js';
import { PG_URL, adminQuery, describePg, freshSchema, uniqueName } from '../support/pg.js';
import { queryDeadlineMs } from '../../src/db/postgres.js';
import { CuttingProxy } from '../store-conformance/pg-harness.js';
import { job, jobStoreSuite, step } from './job-store-suite.js';

const drops: (() => Promise<void>)[] = [];
const opened: PostgresJobStore[] = [];
const pools: pg.Pool[] = [];
const proxies: CuttingProxy[] = [];
afterEach(async () => {
  // Cut first: a store closing through a silenced connection would wait on it.
  const cut = proxies.splice(0);
  for (const p of cut) p.cutAll();
  for (const s of opened.splice(0)) await s.close();
  for (const p of pools.splice(0)) await p.end();
  for (const p of cut) await p.stop();
  for (const drop of drops.splice(0)) await drop();
});

/** A proxy in front of the test server, and its URL; cut and stopped after the test. */
async function proxied(): Promise<{ proxy: CuttingProxy; url: string }> {
  const proxy = new CuttingProxy();
  proxies.push(proxy);
  return { proxy, url: await proxy.start() };
}

/** A new schema name, dropped after the test (the schema itself is created by the store). */
function schema(): string {
  const fresh = freshSchema('coco_jobs_t');
  drops.push(() => fresh.drop());
  return fresh.schema;
}

/** A store on schema `name`, at PG_URL unless given a pool; closed after the test. */
function store(name: string, more: Omit<PostgresJobStoreOptions, 'schema'> = {}): PostgresJobStore {
  const s = postgresJobStore({ ...(more.pool ? {} : { url: PG_URL }), schema: name, ...more });
  opened.push(s);
  return s;
}

function pool(): pg.Pool {
  const p = new pg.Pool({ connectionString: PG_URL, application_name: uniqueName('coco_jobs_t') });
  p.on('error', () => undefined);
  pools.push(p);
  return p;
}

async function tablesOf(name: string): Promise<string[]> {
  const r = await adminQuery(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = '${name}' ORDER BY table_name`,
  );
  return r.rows.map((row: { table_name: string }) => row.table_name);
}

/** A connection error as `pg` raises it when the server goes away mid-query. */
function lostConnection(): Error {
  return new Error('Connection terminated unexpectedly');
}

/** Makes the next `failures` queries of `p` fail with `error()`; returns the count of queries. */
function flaky(p: pg.Pool, failures: number, error: () => Error): { calls: number } {
  const seen = { calls: 0 };
  const real = p.query.bind(p) as (...args: unknown[]) => Promise<unknown>;
  (p as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = (...args) => {
    seen.calls++;
    return seen.calls <= failures ? Promise.reject(error()) : real(...args);
  };
  return seen;
}

describePg('postgres job store', () => {
  const schemas = new Map<JobStore, string>();
  function schemaOf(s: JobStore): string {
    const name = schemas.get(s);
    if (name === undefined) throw new Error('not a store of this fixture');
    return name;
  }
  function make(name: string): JobStore {
    const s = postgresJobStore({ url: PG_URL, schema: name });
    schemas.set(s, name);
    return s;
  }

  jobStoreSuite({
    create: async () => make(schema()),
    another: (s) => make(schemaOf(s)),
    sql: async (s, statement) =>
      void (await adminQuery(`SET search_path TO "${schemaOf(s)}"; ${statement}`)),
  });

  it('stores opening the same empty schema at once all succeed, and migrate it once', async () => {
    const name = schema();
    const stores = Array.from({ length: 4 }, () => store(name));
    const reports = await Promise.all(stores.map((s) => s.open()));
    expect(reports.map((r) => r.current)).toEqual([2, 2, 2, 2]);
    expect(reports.flatMap((r) => r.applied)).toEqual([1, 2]);
    expect(await tablesOf(name)).toEqual([
      'coco_job_meta',
      'coco_jobs_migrations',
      'job_jobs',
      'job_steps',
    ]);
    const ledger = await adminQuery(`SELECT version, name FROM "${name}".coco_jobs_migrations`);
    expect(ledger.rows).toEqual([
      { version: 1, name: 'jobs' },
      { version: 2, name: 'retention' },
    ]);
  });

  it('opens while another component creates the same schema at the same moment', async () => {
    const name = schema();
    const other = new pg.Client({ connectionString: PG_URL });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(`CREATE SCHEMA "${name}"`);
      const opening = store(name).open();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await other.query('COMMIT');
      expect(await opening).toEqual({ applied: [1, 2], current: 2 });
    } finally {
      await other.end();
    }
  });

  it('records the clock in the ledger and refuses tables newer than the code', async () => {
    const name = schema();
    const clock = new ManualClock(1_234_567);
    await store(name, { clock }).open();
    const ledger = await adminQuery(`SELECT applied_at FROM "${name}".coco_jobs_migrations`);
    expect(ledger.rows).toEqual([{ applied_at: '1234567' }, { applied_at: '1234567' }]);
    await adminQuery(
      `INSERT INTO "${name}".coco_jobs_migrations (version, name, applied_at) VALUES (99, 'future', 0)`,
    );
    await expect(store(name).open()).rejects.toSatisfy(
      (e: unknown) =>
        e instanceof CocoError && e.code === 'STORE_FAILED' && /version 99/.test(e.message),
    );
  });

  it('uses a pool it is given without changing its connections, and never ends it', async () => {
    const name = schema();
    const p = pool();
    const s = store(name, { pool: p });
    await s.open();
    await s.apply({ jobs: [job(1)], steps: [step(1, 'c1')], watermark: 1 });
    await s.close();
    const { rows } = await p.query<{ search_path: string }>('SHOW search_path');
    expect(rows[0]?.search_path).toBe('"$user", public');
    const count = await p.query(`SELECT count(*)::int AS n FROM "${name}".job_steps`);
    expect(count.rows).toEqual([{ n: 1 }]);
    expect(p.ending).toBe(false);
  });

  it('retries an apply that lost its connection, a bounded number of times', async () => {
    const p = pool();
    const s = store(schema(), { pool: p });
    await s.open();
    const twice = flaky(p, 2, lostConnection);
    await s.apply({ jobs: [job(1)], steps: [], watermark: 4 });
    expect(twice.calls).toBe(3);
    expect(await s.getWatermark()).toBe(4);

    const always = flaky(p, Infinity, () =>
      Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }),
    );
    const failed = await s.apply({ jobs: [job(2)], steps: [] }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(failed).toMatchObject({ code: 'STORE_FAILED', retryable: true });
    expect((failed as Error).message).toMatch(/after 4 tries/);
    expect(always.calls).toBe(4);
  }, 10_000);

  it('does not retry what the server refuses', async () => {
    const p = pool();
    const s = store(schema(), { pool: p });
    await s.open();
    const seen = flaky(p, 0, lostConnection);
    await expect(s.apply({ jobs: [job(1, { progress: -1 })], steps: [] })).rejects.toMatchObject({
      code: 'STORE_FAILED',
      retryable: false,
    });
    expect(seen.calls).toBe(1);
  });

  it('survives the server ending its connections', async () => {
    const p = pool();
    const s = store(schema(), { pool: p });
    await s.open();
    await s.apply({ jobs: [job(1)], steps: [] });
    const ended = await adminQuery(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${p.options.application_name}'`,
    );
    expect(ended.rowCount).toBeGreaterThan(0);
    await s.apply({ jobs: [job(1, { progress: 50 })], steps: [] });
    expect(await s.getJob(1)).toMatchObject({ progress: 50 });
  });

  it('writes a change larger than a statement takes in several, all or nothing', async () => {
    const name = schema();
    const p = pool();
    // The upserts the store sends (each `apply` statement writes rows with unnest).
    let upserts = 0;
    p.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
        const text = (args[0] as { text?: unknown } | null)?.text;
        if (typeof text === 'string' && text.includes('unnest(')) upserts++;
        return query(...args);
      };
    });
    const s = store(name, { pool: p });
    await s.open();
    const count = async (table: string): Promise<number> =>
      Number(
        (
          (await adminQuery(`SELECT count(*) AS n FROM "${name}".${table}`)).rows[0] as {
            n: string;
          }
        ).n,
      );
    // 12,000 jobs and 6,000 steps: three statements of jobs, two of steps (5,000 rows each).
    const jobs = Array.from({ length: 12_000 }, (_, i) => job(i + 1));
    const steps = Array.from({ length: 6_000 }, (_, i) => step(i + 1, `c${i + 1}`));
    // One bad row in the last slice of jobs: the server refuses it, and the slices before it
    // (already run in the same transaction) are not kept.
    jobs[11_000] = job(11_001, { progress: -1 });
    await expect(s.apply({ jobs, steps, watermark: 9 })).rejects.toMatchObject({
      code: 'STORE_FAILED',
      retryable: false,
    });
    expect([await count('job_jobs'), await count('job_steps')]).toEqual([0, 0]);
    expect(await s.getWatermark()).toBeNull();

    jobs[11_000] = job(11_001);
    upserts = 0;
    await s.apply({ jobs, steps, watermark: 9 });
    expect(upserts).toBe(5);
    expect([await count('job_jobs'), await count('job_steps')]).toEqual([12_000, 6_000]);
    expect(await s.getWatermark()).toBe(9);
    expect(await s.getJob(12_000)).toMatchObject({ id: 12_000, status: 'running' });
  });

  it('goes on through a new connection when its connection goes silent (the deadline)', async () => {
    const { proxy, url } = await proxied();
    const s = store(schema(), { url, statementTimeoutMs: 1_000 });
    await s.open();
    await s.apply({ jobs: [job(1)], steps: [] });
    // The server stops answering without closing anything (a failed-over primary).
    proxy.silenceAll();
    const began = Date.now();
    await s.apply({ jobs: [job(1, { progress: 50 })], steps: [], watermark: 7 });
    // The write waited on its silenced connection until the deadline, then went on.
    expect(Date.now() - began).toBeGreaterThanOrEqual((queryDeadlineMs(1_000) ?? 0) - 20);
    expect(proxy.silenced).toBeGreaterThan(0);
    expect(await s.getJob(1)).toMatchObject({ progress: 50 });
    expect(await s.getWatermark()).toBe(7);
  });

  it('a close told to stop waiting lets go of a silent server at once, destroying its connections', async () => {
    const { proxy, url } = await proxied();
    const name = schema();
    // No deadline: without the signal, the write and so the close would wait for ever.
    const s = store(name, { url, statementTimeoutMs: 0 });
    await s.open();
    await s.apply({ jobs: [job(1)], steps: [], watermark: 1 });
    const backends = async (): Promise<number> =>
      Number(
        (
          (
            await adminQuery(
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'coco/jobs/${name}'`,
            )
          ).rows[0] as { n: number }
        ).n,
      );
    expect(await backends()).toBeGreaterThan(0);
    proxy.silenceAll();
    proxy.refuse = true;
    const late = s.apply({ jobs: [job(2)], steps: [], watermark: 2 }).then(
      () => 'stored',
      (error: unknown) => error,
    );
    const letGo = new AbortController();
    const closed = s.close({ signal: letGo.signal });
    letGo.abort();
    await closed;
    expect(await late).toMatchObject({ code: 'STORE_FAILED' });
    // Each destroyed connection closed its pair in the proxy, and so its backend.
    await vi.waitFor(async () => expect(await backends()).toBe(0), {
      timeout: 5_000,
      interval: 20,
    });
    const other = store(name);
    await other.open();
    expect(await other.getWatermark()).toBe(1);
    expect(await other.getJob(2)).toBeNull();
  });

  it("a close does not leave a frozen server's connections half-closed", async () => {
    const { proxy, url } = await proxied();
    const s = store(schema(), { url, statementTimeoutMs: 0 });
    await s.open();
    await s.apply({ jobs: [job(1)], steps: [], watermark: 1 });
    // Frozen: what is open hears nothing and says nothing, not even goodbye.
    proxy.freezeAll();
    await s.close();
    // Ended, a connection would wait for the goodbye for ever, holding the process open.
    expect(s.connections()).toEqual({ open: 0, idle: 0, waiting: 0, closing: 0 });
    expect(proxy.open).toBeGreaterThan(0);
  });

  it('reads integers beyond the safe range as CORRUPT_ROW', async () => {
    const name = schema();
    const s = store(name);
    await s.open();
    await s.apply({ jobs: [job(1)], steps: [step(1, 'c1')], watermark: 1 });
    await adminQuery(`UPDATE "${name}".job_jobs SET started_at = 9007199254740993`);
    await adminQuery(`UPDATE "${name}".job_steps SET expected_tasks = -1`);
    await adminQuery(`UPDATE "${name}".coco_job_meta SET value = 9007199254740993`);
    await expect(s.getJob(1)).rejects.toThrow(/CORRUPT_ROW.*job_jobs row 1.*started_at/);
    await expect(s.getSteps(1)).rejects.toThrow(/CORRUPT_ROW.*job_steps row 1\/c1.*expected_tasks/);
    await expect(s.getWatermark()).rejects.toThrow(/CORRUPT_ROW.*watermark/);
  });

  describe('options', () => {
    const bad = (options: unknown, field: RegExp): void => {
      let error: unknown;
      try {
        postgresJobStore(options as Parameters<typeof postgresJobStore>[0]);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CocoError);
      expect(error).toMatchObject({ code: 'INVALID_OPTIONS' });
      expect((error as Error).message).toMatch(field);
    };

    it('refuses bad options, naming the field', () => {
      bad({}, /url: give exactly one of url and pool/);
      bad({ url: PG_URL, pool: pool() }, /url: give exactly one/);
      bad({ url: 'mysql://x' }, /url: must be a postgres/);
      bad({ url: PG_URL, schema: 'Coco' }, /schema: must be a lower-case/);
      bad({ url: PG_URL, schema: 'a-b' }, /schema:/);
      bad({ url: PG_URL, schema: 'x'.repeat(64) }, /schema:/);
      bad({ url: PG_URL, schema: 'pg_jobs' }, /schema: must not start with pg_/);
      bad({ url: PG_URL, maxConnections: 0 }, /maxConnections/);
      bad({ url: PG_URL, statementTimeoutMs: -1 }, /statementTimeoutMs/);
      bad({ url: PG_URL, statementTimeoutMs: 1.5 }, /statementTimeoutMs/);
      bad({ url: PG_URL, clock: {} }, /clock: must be a Clock/);
      bad({ url: PG_URL, path: 'x.db' }, /path/);
      bad({ pool: {} }, /pool: must be a pg.Pool/);
    });

    it('keeps a password in the URL out of the message', () => {
      let message = '';
      try {
        postgresJobStore({ url: 'postgres://u:s3cret@h/db', schema: 'A' });
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(/schema/);
      expect(message).not.toMatch(/s3cret/);
    });

    it("defaults the schema to 'coco'", async () => {
      const s = postgresJobStore({ url: PG_URL });
      expect(s.schema).toBe('coco');
      await s.close();
    });
  });
});
