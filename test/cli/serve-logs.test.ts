/**
 * `coco serve` never shows a PostgreSQL password: not in its log lines, not in what it prints,
 * not when the connection fails — with a real `coco serve` process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { killHard, spawnCoco, startServeProcess, type CocoProcess } from '../e2e/support.js';
import { redact } from '../../src/config/store-url.js';
import { describePg, freshSchema, PG_URL } from '../support/pg.js';

/** A password PostgreSQL ignores here (trust authentication), distinctive enough to grep. */
const PASSWORD = 'not-to-be-logged-7f3a9c';
const running: CocoProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const p of running.splice(0)) await killHard(p);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function configFile(store: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'coco-serve-'));
  dirs.push(dir);
  const file = join(dir, 'coco.json');
  // One agent, which is not there: a node needs at least one; it comes up all the same.
  const agents = [{ id: 'host-1', url: 'http://127.0.0.1:1', secret: 'x'.repeat(24) }];
  writeFileSync(file, JSON.stringify({ store, api: { port: 0 }, agents }));
  return file;
}

describePg('coco serve on a postgres:// URL with a password', () => {
  const fresh = freshSchema('coco_serve_logs');
  afterAll(() => fresh.drop());

  it('logs and prints the store URL with the password masked', async () => {
    const url = new URL(PG_URL);
    url.password = PASSWORD;
    url.searchParams.set('schema', fresh.schema);
    const p = await startServeProcess(configFile(url.toString()), { COCO_LOG_LEVEL: 'info' });
    running.push(p);
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (p.stderr().includes('coco node ready')) resolve();
        else p.child.stderr!.once('data', check);
      };
      check();
    });
    expect(p.stderr()).toContain(':***@');
    expect(p.stderr()).not.toContain(PASSWORD);
  });

  it('does not show the password when it cannot open the store', async () => {
    const url = new URL(PG_URL);
    url.password = PASSWORD;
    url.pathname = '/coco_no_such_database';
    const p = spawnCoco(['serve', '--config', configFile(url.toString())]);
    running.push(p);
    expect(await p.exited).not.toBe(0);
    expect(p.stderr()).toMatch(/coco_no_such_database/);
    expect(p.stderr()).not.toContain(PASSWORD);
  });
});

it('redact masks a password wherever a connection string can hold one', () => {
  const cases: [string, string][] = [
    ['postgres://u:pw@db:5432/coco?schema=a', 'postgres://u:***@db:5432/coco?schema=a'],
    // Unencoded '@' in the password: the URL's userinfo runs to the last '@' before the host.
    ['postgres://u:p@ss@db/coco', 'postgres://u:***@db/coco'],
    [
      'postgres://db/coco?user=u&password=pw&schema=a',
      'postgres://db/coco?user=u&password=***&schema=a',
    ],
    ['postgresql://u:pw@db/coco?PASSWORD=pw2', 'postgresql://u:***@db/coco?PASSWORD=***'],
    ['postgres://u@db/coco', 'postgres://u@db/coco'],
    ['sqlite:.coco/coco.db', 'sqlite:.coco/coco.db'],
  ];
  for (const [url, shown] of cases) expect(redact(url), url).toBe(shown);
  // Not even a URL: whatever is between '//' and the last '@' goes.
  expect(redact('postgres://u:a/b@db/x')).not.toContain('a/b');
});
