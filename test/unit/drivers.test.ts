/**
 * Database drivers load when a store first connects, not when an entry is imported: a user of
 * the SQLite store never loads `pg`, a user of PostgreSQL never loads `better-sqlite3`, and a
 * missing driver is a `DRIVER_MISSING` error naming the package to install.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CocoError, ErrorCode } from '../../src/core/errors.js';
import { loadDriver } from '../../src/db/drivers.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'coco-drivers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Which drivers are loaded after `script` ran in a fresh process (src/ through tsx). */
function driversAfter(script: string): { pg: boolean; sqlite: boolean } {
  const file = join(dir, `probe-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(
    file,
    `import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
${script}
const keys = Object.keys(require.cache);
console.log(JSON.stringify({
  pg: keys.some((k) => /node_modules[\\\\/]pg[\\\\/]/.test(k)),
  sqlite: keys.some((k) => /node_modules[\\\\/]better-sqlite3[\\\\/]/.test(k)),
}));
`,
  );
  const out = execFileSync(process.execPath, ['--import', 'tsx', file], { cwd: ROOT });
  return JSON.parse(out.toString().trim().split('\n').pop()!) as { pg: boolean; sqlite: boolean };
}

describe('database drivers', () => {
  it('refuses a driver that cannot be loaded with DRIVER_MISSING naming the package', () => {
    const failing = (name: string): never => {
      throw new Error(`Cannot find module '${name}'\nRequire stack: ...`);
    };
    let caught: unknown;
    try {
      loadDriver('pg', failing);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(CocoError);
    expect((caught as CocoError).code).toBe(ErrorCode.DriverMissing);
    expect((caught as CocoError).message).toContain('npm install pg');
    expect((caught as CocoError).message).toContain('PostgreSQL');
    expect((caught as CocoError).details).toEqual({ driver: 'pg' });
  });

  it('loads neither driver when every entry is imported', { timeout: 30_000 }, () => {
    const entries = [
      'index',
      'entries/sqlite',
      'entries/postgres',
      'entries/in-process',
      'entries/http',
      'jobs/index',
    ];
    const imports = entries.map((e) => `await import(${JSON.stringify(`${ROOT}src/${e}.ts`)});`);
    expect(driversAfter(imports.join('\n'))).toEqual({ pg: false, sqlite: false });
  });

  it(
    'loads only better-sqlite3 for a SQLite store, only pg for a PostgreSQL one',
    { timeout: 30_000 },
    () => {
      const path = join(dir, 'coco.db');
      expect(
        driversAfter(`const { storeFromUrl } = await import(${JSON.stringify(`${ROOT}src/index.ts`)});
const store = storeFromUrl(${JSON.stringify(`sqlite:${path}`)});
await store.open('node-1');
await store.close();`),
      ).toEqual({ pg: false, sqlite: true });
      expect(
        driversAfter(`const { storeFromUrl } = await import(${JSON.stringify(`${ROOT}src/index.ts`)});
const store = storeFromUrl('postgres://nobody@127.0.0.1:1/none');
await store.close();`),
      ).toEqual({ pg: true, sqlite: false });
    },
  );
});
