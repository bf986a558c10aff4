import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobStore } from '../../src/jobs/port.js';
import { sqliteJobStore, type SqliteJobStore } from '../../src/jobs/sqlite/job-store.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../support/harness.js';
import { jobStoreSuite } from './job-store-suite.js';

const dirs: string[] = [];
const opened: SqliteJobStore[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function path(): string {
  const dir = tempDir('coco-jobstore-');
  dirs.push(dir);
  return join(dir, 'coco.db');
}

describe('sqlite job store', () => {
  const files = new Map<JobStore, string>();
  function fileOf(store: JobStore): string {
    const file = files.get(store);
    if (file === undefined) throw new Error('not a store of this fixture');
    return file;
  }
  function make(file: string): SqliteJobStore {
    const store = sqliteJobStore({ path: file });
    files.set(store, file);
    return store;
  }

  jobStoreSuite({
    create: async () => make(path()),
    another: (store) => make(fileOf(store)),
    sql: async (store, statement) => {
      const raw = new Database(fileOf(store));
      try {
        raw.exec(statement);
      } finally {
        raw.close();
      }
    },
  });

  it('migrates once, in its own ledger, next to the engine tables of the same file', async () => {
    const file = path();
    const engineStore = sqliteStore({ path: file });
    await engineStore.migrate();
    const a = sqliteJobStore({ path: file });
    const b = sqliteJobStore({ path: file });
    opened.push(a, b);
    const reports = await Promise.all([a.open(), b.open()]);
    expect(reports.map((r) => r.current)).toEqual([2, 2]);
    expect(reports.flatMap((r) => r.applied)).toEqual([1, 2]);
    expect((await a.open()).applied).toEqual([]);
    const raw = new Database(file, { readonly: true });
    const tables = raw
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .pluck()
      .all();
    expect(tables).toEqual(
      expect.arrayContaining([
        'commands',
        'coco_migrations',
        'coco_jobs_migrations',
        'job_jobs',
        'job_steps',
        'coco_job_meta',
      ]),
    );
    expect(raw.prepare('SELECT version FROM coco_jobs_migrations').pluck().all()).toEqual([1, 2]);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    await engineStore.close();
  });

  it('refuses bad options', () => {
    expect(() => sqliteJobStore({ path: ':memory:' })).toThrow(/INVALID_OPTIONS/);
    expect(() => sqliteJobStore({ path: 'x.db', busyTimeoutMs: -1 })).toThrow(/INVALID_OPTIONS/);
  });
});
