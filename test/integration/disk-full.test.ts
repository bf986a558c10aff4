/**
 * A SQLite store on a disk that fills up (a real file on a small tmpfs, filled to the last byte):
 * the batch that cannot be written fails with the disk's own error and is tried again; once the
 * store has taken no write for `storeOutageMs`, new submissions are refused at once with a
 * retryable `STORE_FAILED` naming that error, and nothing of them is stored. Once space is freed,
 * the command taken before is stored and runs, and the engine takes work again.
 *
 * Mounting needs root (CI runs so); elsewhere the test is skipped.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { createEngine } from '../../src/engine/engine.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FAST, tempDir } from '../support/harness.js';

/** A folder on a tmpfs of 8 MB, or null where mounting is not allowed. */
function smallDisk(): string | null {
  const dir = tempDir('coco-full-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
}

const disk = smallDisk();
afterAll(() => {
  if (!disk) return;
  // Lazily: a failed test may leave its engine's file open.
  execFileSync('umount', ['-l', disk]);
  rmSync(disk, { recursive: true, force: true });
});

/** Writes a file until the disk refuses (ENOSPC). */
function fill(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

const noop = defineCommand({
  name: 'full.noop',
  schema: z.object({ note: z.string(), pad: z.string().default('') }),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

describe.skipIf(disk === null)('a SQLite store whose disk is full', () => {
  it('refuses new work once it has taken no write for storeOutageMs, and takes work again once space is freed', async () => {
    const store = sqliteStore({ path: join(disk!, 'coco.db') });
    const engine = createEngine({
      store,
      agents: inProcessAgents(['a1'], { history: false }),
      commands: [noop],
      tuning: { ...FAST, storeOutageMs: 300 },
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    });
    await engine.start();
    try {
      const first = await engine.submit(noop, { note: 'before' });
      expect((await engine.waitFor(first.id)).status).toBe('succeeded');

      fill(join(disk!, 'filler'));
      // Its row (200 KB) needs pages the full disk has not got.
      let taken: number | undefined;
      const waiting = engine
        .submit(noop, { note: 'taken', pad: 'x'.repeat(200_000) })
        .then((r) => (taken = r.id));
      await vi.waitFor(() => expect(engine.storeOutage).not.toBeNull(), {
        timeout: 10_000,
        interval: 20,
      });
      expect(engine.storeOutage!.last?.message).toMatch(/disk is full/);
      expect(taken).toBeUndefined();
      await expect(engine.submit(noop, { note: 'refused' })).rejects.toMatchObject({
        code: 'STORE_FAILED',
        retryable: true,
        message: expect.stringMatching(/taken no write for .*disk is full/) as unknown,
      });

      rmSync(join(disk!, 'filler'));
      await waiting;
      expect((await engine.waitFor(taken!)).status).toBe('succeeded');
      expect(engine.storeOutage).toBeNull();
      const after = await engine.submit(noop, { note: 'after' });
      expect((await engine.waitFor(after.id)).status).toBe('succeeded');
      const page = await engine.list({ limit: 10 });
      expect(page.commands.map((c) => (c.params as { note: string }).note).sort()).toEqual([
        'after',
        'before',
        'taken',
      ]);
    } finally {
      await engine.stop();
      await store.close();
    }
  });
});
