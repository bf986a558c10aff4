/**
 * PostgreSQL for tests. Tests that need the server use {@link describePg}: where no server
 * answers they are skipped, loudly (a warning names the URL tried and how to run them), unless
 * `COCO_REQUIRE_PG=1` (set by CI), which turns a missing server into a failure.
 *
 * The server is found at `COCO_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
 * Each test gets its own fresh schema ({@link freshSchema}) or database ({@link freshDatabase}),
 * dropped at cleanup, so test files can run in parallel against one server.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe } from 'vitest';

/** Where the test server is. */
export const PG_URL = process.env.COCO_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** CI sets this: a missing server fails the run instead of skipping. */
export const PG_REQUIRED = process.env.COCO_REQUIRE_PG === '1';

async function probe(): Promise<string | null> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await client.end().catch(() => undefined);
  }
}

const problem = await probe();

/** Whether a PostgreSQL server answered at {@link PG_URL}. */
export const pgAvailable = problem === null;

if (problem !== null) {
  const message =
    `PostgreSQL is not reachable at ${PG_URL} (${problem}). ` +
    'The PostgreSQL tests are SKIPPED. Start a server (see DEVELOPERS.md / README) or set COCO_PG_URL to run them.';
  if (PG_REQUIRED) throw new Error(`COCO_REQUIRE_PG=1 but ${message}`);
  console.warn(`\n!!! ${message}\n`);
}

/** `describe` when the server is there; otherwise a skipped block whose name says why. */
export function describePg(name: string, body: () => void): void {
  if (pgAvailable) describe(name, body);
  else describe.skip(`${name} [SKIPPED: no PostgreSQL at ${PG_URL}]`, body);
}

/** A random lower-case suffix for schema and database names. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** Runs one statement (or a few) on a short-lived connection to `url`. */
export async function adminQuery(sql: string, url = PG_URL): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A schema name not used by anyone; `drop()` removes it with everything in it. */
export function freshSchema(prefix = 'coco_t'): { schema: string; drop(): Promise<void> } {
  const schema = uniqueName(prefix);
  return {
    schema,
    drop: async () => void (await adminQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)),
  };
}

/** A new empty database; `drop()` removes it (closing whatever is still connected). */
export async function freshDatabase(
  prefix = 'coco_t',
): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = uniqueName(prefix);
  await adminQuery(`CREATE DATABASE "${name}"`);
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: async () => void (await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)),
  };
}
