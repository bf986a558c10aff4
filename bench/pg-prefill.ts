/**
 * Fills a PostgreSQL schema with ended commands, for "cost as the store grows" (issue 15): the
 * ended trees already there (the nodes' warm-ups) are copied under new ids, from the schema's
 * next unreserved id up (the nodes' id blocks are below it; their next blocks come after the
 * copies, since a reservation starts above the highest stored id), until `n` ended commands are
 * stored — the rows the engine wrote, through the
 * store's own triggers — then the tables are vacuumed and analyzed, as autovacuum would have
 * done, and the server checkpointed.
 */
import type pg from 'pg';
import { copiedColumn } from './prefill.js';

/** Commands copied per statement: bounds each transaction. */
const STEP = 200_000;

/** Copies ended commands (and their tasks) in `schema` until it holds `n` ended commands. */
export async function prefillEndedPg(
  client: pg.Client,
  schema: string,
  n: number,
): Promise<{ added: number; seconds: number }> {
  const t0 = performance.now();
  const s = `"${schema}"`;
  const cols = async (table: string): Promise<string[]> =>
    (
      await client.query<{ column_name: string }>(
        `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
        [schema, table],
      )
    ).rows.map((r) => r.column_name);
  const shift = (c: string): string => copiedColumn(c, '$1 + k * $2');
  const commandCols = await cols('commands');
  const taskCols = await cols('tasks');
  const t = (
    await client.query<{ lo: string | null; hi: string | null; n: string }>(
      `SELECT min(id) AS lo, max(id) AS hi, count(*) AS n FROM ${s}.commands WHERE NOT active`,
    )
  ).rows[0]!;
  const template = Number(t.n);
  if (t.lo === null || t.hi === null || template === 0)
    throw new Error('prefill: no ended command to copy (run a workload first)');
  const span = Number(t.hi) - Number(t.lo) + 1;
  // Ids as a store that grew to `n` would hand out: small. (Copies from 10^12 up, as before,
  // made every id the engine allocated afterwards larger than V8's small integers (2^30): heap
  // numbers in every map and record, which a store that really grew never sees.)
  const next = (await client.query<{ next_id: string }>(`SELECT next_id FROM ${s}.coco_ids`))
    .rows[0]!;
  const offset = Number(next.next_id) - Number(t.lo);
  const copies = Math.ceil(Math.max(0, n - template) / template);
  const perStatement = Math.max(1, Math.floor(STEP / template));
  for (let k0 = 0; k0 < copies; k0 += perStatement) {
    const k1 = Math.min(copies, k0 + perStatement) - 1;
    await client.query('BEGIN');
    await client.query(
      `INSERT INTO ${s}.commands (${commandCols.join(', ')}) SELECT ${commandCols.map(shift).join(', ')} ` +
        `FROM ${s}.commands CROSS JOIN generate_series($3::bigint, $4::bigint) AS k WHERE NOT active AND id <= $5`,
      [offset, span, k0, k1, t.hi],
    );
    await client.query(
      `INSERT INTO ${s}.tasks (${taskCols.join(', ')}) SELECT ${taskCols.map(shift).join(', ')} ` +
        `FROM ${s}.tasks t CROSS JOIN generate_series($3::bigint, $4::bigint) AS k ` +
        `WHERE t.command_id <= $5 AND EXISTS (SELECT 1 FROM ${s}.commands c WHERE c.id = t.command_id AND NOT c.active)`,
      [offset, span, k0, k1, t.hi],
    );
    await client.query('COMMIT');
  }
  // At rest, as a store that grew over weeks would be: vacuumed and analyzed (autovacuum does
  // both after that many inserts; visibility map and hint bits set, so the measured runs do not
  // write the copied pages again), and checkpointed: the fill writes more WAL than max_wal_size
  // (1 GB by default) per million commands, and the checkpoint that forces would otherwise run
  // during the measured runs, with a full-page image for the first write to every page after it.
  for (const table of ['commands', 'tasks', 'command_status_history'])
    await client.query(`VACUUM (ANALYZE) ${s}.${table}`);
  await client.query('CHECKPOINT').catch((error: unknown) => {
    // CHECKPOINT needs a superuser or pg_checkpoint: without, say so and go on.
    console.log(
      `  prefill: no CHECKPOINT (${error instanceof Error ? error.message : String(error)})`,
    );
  });
  return { added: copies * template, seconds: (performance.now() - t0) / 1000 };
}

/**
 * The filler's size, in multiples of the server's shared buffers: more than one, so that every
 * buffer has been taken (none left on the free list) and the clock sweep has passed over the
 * pool, as after the prefill's ~1 GB of copies.
 */
const POOL_FILL = 1.7;

/** Filler rows of ~1 KB: seven to an 8 KB page, none compressed (under the 2 KB TOAST bound). */
const FILLER_ROWS_PER_PAGE = 7;

/**
 * Fills the server's shared buffer pool (`BENCH_PG_FILL_POOL`): a filler table in `schema`
 * (dropped with it) of {@link POOL_FILL} × `shared_buffers`, written by a plain INSERT (which,
 * unlike COPY or a sequential scan, goes through the whole pool, not a small ring), then a
 * checkpoint, so the pool is full of clean pages. A server that has run for a while has no
 * free buffer: every new page needs a victim, as in a run on a prefilled store. On an empty
 * store's fresh schema the pool would otherwise still have free buffers (a dropped schema's
 * buffers go back to the free list), and the empty store's figures would be the better for it.
 */
export async function fillPool(
  client: pg.Client,
  schema: string,
): Promise<{ bytes: number; seconds: number }> {
  const t0 = performance.now();
  const s = `"${schema}"`;
  const pool = (
    await client.query<{ pages: string }>(
      `SELECT setting::bigint AS pages FROM pg_settings WHERE name = 'shared_buffers'`,
    )
  ).rows[0]!;
  const rows = Math.ceil(Number(pool.pages) * POOL_FILL) * FILLER_ROWS_PER_PAGE;
  await client.query(
    `CREATE TABLE ${s}.pool_filler (id bigint, pad text) WITH (autovacuum_enabled = false)`,
  );
  await client.query(
    `INSERT INTO ${s}.pool_filler SELECT g, repeat('x', 1000) FROM generate_series(1, $1::bigint) AS g`,
    [rows],
  );
  await client.query('CHECKPOINT').catch((error: unknown) => {
    console.log(
      `  pool fill: no CHECKPOINT (${error instanceof Error ? error.message : String(error)})`,
    );
  });
  const size = await client.query<{ bytes: string }>(
    `SELECT pg_relation_size('${s}.pool_filler') AS bytes`,
  );
  return { bytes: Number(size.rows[0]!.bytes), seconds: (performance.now() - t0) / 1000 };
}
