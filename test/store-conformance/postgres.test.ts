/**
 * Runs the store conformance suite on PostgreSQL (a fresh schema per test), plus the checks only
 * this store has: the transition tables match src/core/states.ts, the migration ledger, options,
 * concurrent migrations by real processes, and node registration. Claims, agent leases and
 * reports are in postgres-shared.test.ts; lost connections in postgres-faults.test.ts.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { CocoError, ErrorCode } from '../../src/core/errors.js';
import { MACHINES } from '../../src/core/states.js';
import { postgresStore, type PostgresStoreOptions } from '../../src/store/postgres/pg-store.js';
import { buildSql } from '../../src/store/postgres/statements.js';
import { PG_URL, describePg } from '../support/pg.js';
import { batch, command, commandUpdate } from './fixtures.js';
import { rejectsWith } from './harness.js';
import { admin, endAdmin, pgHarness, raw, schemaStores } from './pg-harness.js';
import { describeStoreConformance } from './suite.js';

const STORE_MODULE = fileURLToPath(
  new URL('../../src/store/postgres/pg-store.ts', import.meta.url),
);

afterAll(endAdmin);

describePg('postgres', () => {
  describeStoreConformance('postgres', pgHarness);

  describePg('postgres store specifics', () => {
    let env: ReturnType<typeof schemaStores>;
    beforeEach(() => {
      env = schemaStores();
    });
    afterEach(async () => {
      await env.cleanup();
    });

    it("a node's batches are pipelined: the next is written before the previous one's COMMIT is answered", async () => {
      const pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
      const events: string[] = [];
      pool.on('connect', (client) => {
        type Query = (q: unknown, ...rest: unknown[]) => Promise<unknown>;
        const query = client.query.bind(client) as Query;
        (client as unknown as { query: Query }).query = (q, ...rest) => {
          const text = typeof q === 'string' ? q : (q as { text: string }).text;
          if (text === 'BEGIN') events.push('BEGIN sent');
          const answer = query(q, ...rest);
          if (text === 'COMMIT')
            void answer.then(
              () => events.push('COMMIT answered'),
              () => {},
            );
          return answer;
        };
      });
      try {
        // One apply connection: its batches pipelined on it (lanes: postgres-lanes*.test.ts).
        const store = postgresStore({ pool, schema: env.schema, applyConnections: 1 });
        await store.open('n');
        await store.apply(batch({ commandInserts: [command(1)] }));
        events.length = 0;
        await Promise.all([
          store.apply(batch({ commandInserts: [command(2)] })),
          store.apply(batch({ commandInserts: [command(3)] })),
        ]);
        expect(events.slice(0, 2)).toEqual(['BEGIN sent', 'BEGIN sent']);
        expect((await store.getCommand(3))?.id).toBe(3);
        // Numbered one after the other, as written.
        const [node] = await raw<{ last_batch: string }>(
          env.schema,
          'SELECT last_batch FROM coco_nodes',
        );
        expect(Number(node?.last_batch)).toBe(3);
        await store.close();
      } finally {
        await pool.end();
      }
    });

    it('the transition tables equal the machines of src/core/states.ts', async () => {
      await env.make().migrate();
      const tables = {
        command: 'command_transitions',
        compensation: 'compensation_transitions',
        task: 'task_transitions',
        undo: 'undo_transitions',
      } as const;
      for (const [machine, table] of Object.entries(tables)) {
        const rows = await raw<{ f: string; t: string }>(
          env.schema,
          `SELECT from_status AS f, to_status AS t FROM ${table}`,
        );
        const table_: Readonly<Record<string, readonly string[]>> =
          MACHINES[machine as keyof typeof MACHINES];
        const expected = Object.entries(table_).flatMap(([f, tos]) => tos.map((t) => `${f}->${t}`));
        expect(rows.map((r) => `${r.f}->${r.t}`).sort(), machine).toEqual([...expected].sort());
      }
      // Each trigger's WHEN clause lists exactly its table's pairs (compiled by the migration).
      const triggers = await raw<{ name: string; def: string }>(
        env.schema,
        `SELECT t.tgname AS name, pg_get_triggerdef(t.oid) AS def FROM pg_trigger t
         JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal`,
        [env.schema],
      );
      const machineOf: Record<string, keyof typeof MACHINES> = {
        commands_status_transition: 'command',
        commands_compensation_transition: 'compensation',
        tasks_status_transition: 'task',
        undo_steps_status_transition: 'undo',
      };
      // The transition triggers (the status history's, migration 0008, are others).
      const transitions = triggers.filter((t) => t.name.endsWith('_transition'));
      expect(transitions.map((t) => t.name).sort()).toEqual(Object.keys(machineOf).sort());
      for (const { name, def } of transitions) {
        const listed = /'\{([^}]*)\}'::text\[\]/.exec(def)?.[1]?.split(',') ?? [];
        const table_: Readonly<Record<string, readonly string[]>> = MACHINES[machineOf[name]!];
        const expected = Object.entries(table_).flatMap(([f, tos]) => tos.map((t) => `${f}>${t}`));
        expect(listed.sort(), name).toEqual([...expected].sort());
        // After the row's update (migration 0016): a BEFORE row trigger makes every update
        // lock and copy its row first, whatever the WHEN clause decides.
        expect(def, name).toMatch(/ AFTER UPDATE OF \w+ ON .* FOR EACH ROW WHEN /);
      }
    });

    it('keeps a migration ledger in the schema and makes a store id of c + 10 hex digits', async () => {
      const store = env.make();
      const { storeId } = await store.open('n1');
      expect(storeId).toMatch(/^c[0-9a-f]{10}$/);
      expect(await store.identity()).toEqual({ storeId });
      const ledger = await raw<{ version: number; name: string }>(
        env.schema,
        'SELECT version, name FROM coco_migrations ORDER BY version',
      );
      expect(ledger.map((r) => r.version)).toEqual(ledger.map((_, i) => i + 1));
      expect(ledger[0]).toEqual({ version: 1, name: 'init' });
    });

    it('refuses a schema migrated by newer code, naming the version', async () => {
      await env.make().migrate();
      await raw(env.schema, "INSERT INTO coco_migrations (version, name) VALUES (999, 'future')");
      const error = await rejectsWith(env.make().migrate(), ErrorCode.StoreFailed);
      expect(error.message).toContain('999');
    });

    it('validates its options, naming the field', () => {
      const pool = new pg.Pool({ connectionString: PG_URL, max: 5 });
      const cases: [PostgresStoreOptions, string][] = [
        [{}, 'url / pool'],
        [{ url: PG_URL, pool }, 'url / pool'],
        [{ url: '' }, 'url'],
        [{ url: PG_URL, schema: 'Bad-Name' }, 'schema'],
        [{ url: PG_URL, schema: 'pg_x' }, 'schema'],
        [{ url: PG_URL, poolSize: 1 }, 'poolSize'],
        [{ url: PG_URL, leaseMs: -1 }, 'leaseMs'],
        [{ url: PG_URL, statementTimeoutMs: 1.5 }, 'statementTimeoutMs'],
        [{ pool: {} as pg.Pool }, 'pool'],
        [{ pool, poolSize: 4 }, 'poolSize'],
        [{ url: PG_URL, extra: 1 } as PostgresStoreOptions, 'extra'],
      ];
      for (const [options, field] of cases) {
        let error: unknown;
        try {
          postgresStore(options);
        } catch (e) {
          error = e;
        }
        expect(error, JSON.stringify(options)).toBeInstanceOf(CocoError);
        expect((error as CocoError).code).toBe(ErrorCode.InvalidOptions);
        expect((error as CocoError).message).toContain(field);
      }
      void pool.end();
    });

    it('works on a pool it is given, and leaves that pool open', async () => {
      const pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
      try {
        const store = postgresStore({ pool, schema: env.schema });
        await store.open('n1');
        await store.apply(batch({ commandInserts: [command(1)] }));
        expect((await store.getCommand(1))?.owner).toBe('n1');
        await store.close();
        expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      } finally {
        await pool.end();
      }
    });

    it('processes migrating the same empty schema at once serialise: each migration is applied once', async () => {
      const code = `
        const { postgresStore } = await import(process.env.STORE_MODULE);
        const s = postgresStore({ url: process.env.PG_URL, schema: process.env.SCHEMA, poolSize: 3 });
        console.log(JSON.stringify(await s.migrate()));
        await s.close();`;
      const run = (): Promise<string> =>
        new Promise((resolve, reject) => {
          const child = spawn(
            process.execPath,
            ['--import', 'tsx', '--input-type=module', '-e', code],
            {
              env: { ...process.env, STORE_MODULE, PG_URL, SCHEMA: env.schema },
              stdio: ['ignore', 'pipe', 'inherit'],
            },
          );
          let out = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.on('error', reject);
          child.on('exit', (c) =>
            c === 0 ? resolve(out) : reject(new Error(`child exited with ${c}: ${out}`)),
          );
        });
      const reports = (await Promise.all([run(), run(), run()])).map(
        (r) => JSON.parse(r.trim()) as { applied: number[]; current: number },
      );
      const current = reports[0]!.current;
      expect(reports.every((r) => r.current === current)).toBe(true);
      expect(reports.flatMap((r) => r.applied).sort((x, y) => x - y)).toEqual(
        Array.from({ length: current }, (_, i) => i + 1),
      );
      const meta = await raw<{ n: string }>(env.schema, 'SELECT count(*) AS n FROM coco_meta');
      expect(meta).toEqual([{ n: '1' }]);
    });

    it('a node id live elsewhere is refused; closed or expired it may be taken, and its earlier process is fenced out', async () => {
      const first = env.make({ leaseMs: 300 });
      await first.open('n1');
      const second = env.make();
      const error = await rejectsWith(second.open('n1'), ErrorCode.StoreInUse);
      expect(error.message).toContain('n1');
      expect(error.message).toContain(`pid ${process.pid}`);
      // Expired (first stops renewing): a new process may take the id; the first is out.
      await new Promise((r) => setTimeout(r, 350));
      await second.open('n1');
      await rejectsWith(first.apply(batch({ commandInserts: [command(1)] })), ErrorCode.LeaseLost);
      await rejectsWith(first.heartbeat('n1'), ErrorCode.LeaseLost);
      expect(await second.getCommand(1)).toBeNull();
      await second.apply(batch({ commandInserts: [command(1)] }));
      await second.close('n1');
      // Closed: at once.
      const third = env.make();
      await third.open('n1');
      await third.heartbeat('n1');
      // A store serves the node it opened, and no other.
      await rejectsWith(third.open('n2'), ErrorCode.StoreInUse);
      await rejectsWith(third.heartbeat('n2'), ErrorCode.LeaseLost);
    });

    it('close applies the batches called before it', async () => {
      const store = env.make();
      await store.open('n1');
      const applied = [1, 2, 3].map((id) => store.apply(batch({ commandInserts: [command(id)] })));
      await store.close('n1');
      await Promise.all(applied);
      await rejectsWith(
        store.apply(batch({ commandInserts: [command(4)] })),
        ErrorCode.StoreFailed,
      );
      const other = env.make();
      expect((await other.listCommands()).commands.map((c) => c.id)).toEqual([3, 2, 1]);
    });

    it('ids inserted by a batch without reserveIds are not handed out afterwards, by any node', async () => {
      const a = env.make();
      const b = env.make();
      await a.open('a');
      await b.open('b');
      const first = await a.reserveIds(1);
      await a.apply(batch({ commandInserts: [command(first + 10)] }));
      expect(await b.reserveIds(1)).toBe(first + 11);
      expect(await a.reserveIds(2)).toBe(first + 12);
    });

    it('concurrent reservations by many nodes never overlap', async () => {
      const stores = [env.make(), env.make(), env.make()];
      await Promise.all(stores.map((s, i) => s.open(`n${i}`)));
      const blocks = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          stores[i % 3]!.reserveIds(1 + (i % 5)).then((first) => [first, 1 + (i % 5)] as const),
        ),
      );
      const ids = blocks.flatMap(([first, n]) => Array.from({ length: n }, (_, k) => first + k));
      expect(new Set(ids).size).toBe(ids.length);
    });

    it('the history of command updates is a row trigger that fires only for a status between the first and the terminal (migration 0020)', async () => {
      const store = env.make();
      await store.open('n');
      // No trigger of `commands` captures the updated rows (transition tables): the statement
      // trigger that did, for every update statement of every batch, is gone.
      const capturing = await raw<{ name: string }>(
        env.schema,
        'SELECT tgname AS name FROM pg_trigger ' +
          "WHERE tgrelid = 'commands'::regclass AND (tgoldtable IS NOT NULL OR tgnewtable IS NOT NULL) " +
          'ORDER BY tgname',
      );
      expect(capturing.map((t) => t.name)).toEqual(['commands_status_history_delete']);
      const history = async (): Promise<string[]> =>
        (
          await raw<{ row: string }>(
            env.schema,
            "SELECT command_id || ':' || status AS row FROM command_status_history ORDER BY 1",
          )
        ).map((r) => r.row);

      await store.apply(
        batch({ commandInserts: [1, 2, 3].map((id) => command(id, { updatedAt: 1 })) }),
      );
      // One statement: 1 keeps its status, 2 ends (terminal), 3 moves on (between): one row.
      await store.apply(
        batch({
          commandUpdates: [
            commandUpdate(command(1, { updatedAt: 2 })),
            commandUpdate(command(2, { status: 'cancelled', updatedAt: 2, endedAt: 2 })),
            commandUpdate(command(3, { status: 'waiting', updatedAt: 2 })),
          ],
        }),
      );
      expect(await history()).toEqual(['3:waiting']);
      // Statements that leave the status out (a settle) do not reach the trigger at all.
      await store.apply(batch({ commandsSettled: [2] }));
      expect(await history()).toEqual(['3:waiting']);
      expect(await store.getStatusHistory(1)).toEqual([{ status: 'pending', at: 1 }]);
      expect(await store.getStatusHistory(2)).toEqual([
        { status: 'pending', at: 1 },
        { status: 'cancelled', at: 2 },
      ]);
      expect(await store.getStatusHistory(3)).toEqual([
        { status: 'pending', at: 1 },
        { status: 'waiting', at: 2 },
      ]);
    });

    it('batch statements go by their index even when first planned on a tiny, never-analyzed table', async () => {
      const store = env.make();
      await store.open('n');
      // The first updates plan on a table of one row (a generic plan is made at once and kept
      // until the table's statistics change, which without autovacuum is never); then it grows.
      await store.apply(batch({ commandInserts: [command(1)] }));
      for (let k = 0; k < 6; k++) {
        await store.apply(batch({ commandUpdates: [commandUpdate(command(1, { updatedAt: k }))] }));
      }
      await store.apply(
        batch({ commandInserts: Array.from({ length: 300 }, (_, i) => command(i + 2)) }),
      );
      for (let k = 2; k <= 21; k++) {
        await store.apply(
          batch({ commandUpdates: [commandUpdate(command(k, { status: 'waiting' }))] }),
        );
      }
      // A backend reports its table counters when it ends (the apply connection never idles
      // long enough to report them before).
      await store.close();
      const [r] = await raw<{ idx: string }>(
        env.schema,
        'SELECT idx_scan AS idx FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2',
        [env.schema, 'commands'],
      );
      // Each of the 26 updates found its row by the primary key, not by reading the table.
      expect(Number(r?.idx)).toBeGreaterThanOrEqual(26);
    });

    it('each status a command is stored with goes to its history, oldest first, once — also from one statement of 2,500 updates', async () => {
      const store = env.make();
      await store.open('n');
      const ids = Array.from({ length: 2_500 }, (_, i) => i + 1);
      await store.apply(batch({ commandInserts: ids.map((id) => command(id, { updatedAt: 1 })) }));
      // One statement of 2,500 updates; then command 1 twice in one batch (two statements);
      // then an update that leaves the status as it is.
      await store.apply(
        batch({
          commandUpdates: ids.map((id) =>
            commandUpdate(command(id, { status: 'waiting', updatedAt: 2 })),
          ),
        }),
      );
      await store.apply(
        batch({
          commandUpdates: [
            commandUpdate(command(1, { status: 'aborting', updatedAt: 3 })),
            commandUpdate(command(1, { status: 'failed', updatedAt: 4, endedAt: 4 })),
          ],
        }),
      );
      await store.apply(
        batch({ commandUpdates: [commandUpdate(command(2, { status: 'waiting', updatedAt: 5 }))] }),
      );
      expect(await store.getStatusHistory(1)).toEqual([
        { status: 'pending', at: 1 },
        { status: 'waiting', at: 2 },
        { status: 'aborting', at: 3 },
        { status: 'failed', at: 4 },
      ]);
      expect(await store.getStatusHistory(2)).toEqual([
        { status: 'pending', at: 1 },
        { status: 'waiting', at: 2 },
      ]);
      const counted = await raw<{ n: string }>(
        env.schema,
        "SELECT count(*) AS n FROM command_status_history WHERE status = 'waiting'",
      );
      expect(Number(counted[0]?.n)).toBe(2_500);
    });

    it('a history row already there (left by hand) fails no batch, and the rows beside it are written (migration 0015)', async () => {
      const store = env.make();
      await store.open('n');
      // The triggers insert plainly, and only on a duplicate again with ON CONFLICT DO NOTHING:
      // the row left by hand stays, the other rows of the same statement are written.
      await raw(env.schema, "INSERT INTO command_status_history VALUES (1, 'pending', 7)");
      await store.apply(
        batch({ commandInserts: [command(1, { updatedAt: 1 }), command(2, { updatedAt: 1 })] }),
      );
      await raw(env.schema, "INSERT INTO command_status_history VALUES (1, 'waiting', 9)");
      await store.apply(
        batch({
          commandUpdates: [1, 2].map((id) =>
            commandUpdate(command(id, { status: 'waiting', updatedAt: 2 })),
          ),
        }),
      );
      expect(await store.getStatusHistory(1)).toEqual([
        { status: 'pending', at: 7 },
        { status: 'waiting', at: 9 },
      ]);
      expect(await store.getStatusHistory(2)).toEqual([
        { status: 'pending', at: 1 },
        { status: 'waiting', at: 2 },
      ]);
    });

    it('a command’s first status is kept in its row, not as a history row, and read with the history rows (migration 0018)', async () => {
      const store = env.make();
      await store.open('n');
      await store.apply(
        batch({
          commandInserts: [
            command(1, { updatedAt: 1 }),
            command(2, { status: 'waiting', updatedAt: 3 }),
          ],
        }),
      );
      const rows = await raw<{ n: string }>(
        env.schema,
        'SELECT count(*) AS n FROM command_status_history',
      );
      expect(Number(rows[0]?.n)).toBe(0);
      await store.apply(
        batch({ commandUpdates: [commandUpdate(command(1, { status: 'waiting', updatedAt: 2 }))] }),
      );
      expect(await store.getStatusHistory(1)).toEqual([
        { status: 'pending', at: 1 },
        { status: 'waiting', at: 2 },
      ]);
      expect(await store.getStatusHistory(2)).toEqual([{ status: 'waiting', at: 3 }]);
      // A command stored before 0018 has no first status in its row: its history rows alone.
      await raw(
        env.schema,
        'UPDATE commands SET first_status = NULL, first_at = NULL WHERE id = 2',
      );
      await raw(
        env.schema,
        "INSERT INTO command_status_history VALUES (2, 'pending', 1), (2, 'waiting', 3)",
      );
      expect(await store.getStatusHistory(2)).toEqual([
        { status: 'pending', at: 1 },
        { status: 'waiting', at: 3 },
      ]);
      // A node of an older release, still running beside the one that migrated (rolling
      // upgrade), inserts commands without a first status: their history row is written for them.
      await raw(
        env.schema,
        'CREATE TEMP TABLE older AS SELECT * FROM commands WHERE id = 1; ' +
          'UPDATE older SET id = 3, root_id = 3, first_status = NULL, first_at = NULL, updated_at = 7; ' +
          'INSERT INTO commands SELECT * FROM older',
      );
      expect(await store.getStatusHistory(3)).toEqual([{ status: 'waiting', at: 7 }]);
    });

    it('a command’s terminal status is read from its row at its end, not from a history row (migration 0019)', async () => {
      // What is read is the conformance suite's ("the status history: …"); here, what is written.
      const store = env.make();
      await store.open('n');
      await store.apply(
        batch({
          commandInserts: [command(1, { status: 'waiting', updatedAt: 1 }), command(2)],
        }),
      );
      await store.apply(
        batch({
          commandUpdates: [
            commandUpdate(command(1, { status: 'succeeded', updatedAt: 4, endedAt: 4 })),
            commandUpdate(command(2, { status: 'aborting', updatedAt: 2 })),
          ],
        }),
      );
      await store.apply(
        batch({
          commandUpdates: [
            commandUpdate(command(2, { status: 'cancelled', updatedAt: 5, endedAt: 5 })),
          ],
        }),
      );
      // Only the one status that is neither first nor terminal has a history row.
      const rows = await raw<{ id: string; status: string }>(
        env.schema,
        'SELECT command_id AS id, status FROM command_status_history ORDER BY command_id, status',
      );
      expect(rows.map((r) => [Number(r.id), r.status])).toEqual([[2, 'aborting']]);
      // A command ended before 0019 has its terminal history row: read from it alone, once.
      await raw(env.schema, "INSERT INTO command_status_history VALUES (1, 'succeeded', 9)");
      expect(await store.getStatusHistory(1)).toEqual([
        { status: 'waiting', at: 1 },
        { status: 'succeeded', at: 9 },
      ]);
    });

    it('batch statements read their column arrays row by row (ProjectSet), not through a tuplestore (Function Scan)', async () => {
      const store = env.make();
      await store.migrate();
      const sql = buildSql(env.schema);
      const client = await admin().connect();
      try {
        // The apply connection's planner settings (applier.ts openApplyConnection).
        await client.query(
          'SET enable_hashjoin = off; SET enable_mergejoin = off; ' +
            'SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off',
        );
        for (const name of [
          'insertCommands',
          'updateCommands',
          'insertTasks',
          'updateTasks',
        ] as const) {
          const params = (sql[name].match(/\$\d+/g) ?? []).reduce(
            (n, p) => Math.max(n, Number(p.slice(1))),
            0,
          );
          await client.query(`PREPARE p AS ${sql[name]}`);
          const plan = await client.query<{ 'QUERY PLAN': string }>(
            `EXPLAIN (COSTS OFF) EXECUTE p(${Array.from({ length: params }, () => 'NULL').join(', ')})`,
          );
          await client.query('DEALLOCATE p');
          const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
          expect(text, name).toContain('ProjectSet');
          expect(text, name).not.toContain('Function Scan');
          if (name.startsWith('update'))
            expect(text, name).toMatch(/Index Scan using (commands|tasks)_pkey/);
        }
      } finally {
        await client.query('RESET ALL').catch(() => undefined);
        client.release();
      }
    });

    it('a batch of updates that leave the indexed columns alone is HOT, row for row (migration 0013)', async () => {
      const store = env.make();
      await store.open('n1');
      // Rows packed as a batch packs them (one INSERT .. SELECT FROM unnest), then every one of
      // them updated in one transaction, as a batch updates running parents: their counts and
      // stage (state) and updated_at change, no indexed column does.
      const rows = Array.from({ length: 400 }, (_, i) => command(i + 1));
      await store.apply(batch({ commandInserts: rows }));
      const client = await admin().connect();
      try {
        await client.query('BEGIN');
        await client.query(
          `UPDATE "${env.schema}".commands SET state = state || ' ', updated_at = updated_at + 1`,
        );
        const stats = await client.query<{ upd: string; hot: string }>(
          'SELECT n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_xact_user_tables WHERE relid = $1::regclass',
          [`"${env.schema}".commands`],
        );
        // At fillfactor 85 about a fifth were HOT: the rest found no room on their page.
        expect(stats.rows[0]).toEqual({ upd: '400', hot: '400' });
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
    });

    it('loadActive of an opened store returns only its own trees', async () => {
      const a = env.make();
      const b = env.make();
      await a.open('a');
      await b.open('b');
      await a.apply(batch({ commandInserts: [command(1), command(2)] }));
      await b.apply(batch({ commandInserts: [command(3)] }));
      expect((await a.loadActive()).commands.map((c) => c.id)).toEqual([1, 2]);
      expect((await b.loadActive()).commands.map((c) => c.id)).toEqual([3]);
      expect((await a.loadRoots([2, 3])).commands.map((c) => c.id)).toEqual([2]);
    });
  });
});
