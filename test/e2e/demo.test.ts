/**
 * The main job, as users run it: `coco demo` in its own process (engine on SQLite, the reference
 * agent in another process, real HTTP, real files), with a small image.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/harness.js';
import { sha256File, spawnCoco } from './support.js';

describe('coco demo', () => {
  it('live-migrates a disk between two storage domains: the data arrives intact and the source is gone', async () => {
    const dir = tempDir('coco-demo-');
    try {
      const p = spawnCoco(['demo', '--size-mib', '8', '--dir', join(dir, 'demo'), '--json']);
      let out = '';
      p.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const code = await p.exited;
      expect(code, p.stderr()).toBe(0);
      const result = JSON.parse(out) as {
        ok: boolean;
        status: string;
        sha256: string;
        target: { path: string; sha256: string };
        source: { removed: boolean };
        seconds: number;
      };
      expect(result.ok).toBe(true);
      expect(result.status).toBe('succeeded');
      expect(result.source.removed).toBe(true);
      // Check the data ourselves, from the file.
      expect(await sha256File(result.target.path)).toBe(result.sha256);
      expect(result.seconds).toBeLessThan(60);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
