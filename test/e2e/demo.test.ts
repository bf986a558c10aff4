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

  it('prints every stage in order, the last one ended, and a browse hint that works as printed', async () => {
    const dir = tempDir('coco-demo-');
    try {
      const p = spawnCoco(['demo', '--size-mib', '4', '--dir', join(dir, 'demo')]);
      let out = '';
      p.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      expect(await p.exited, p.stderr()).toBe(0);
      const stages = [
        'snapshot',
        'create-target',
        'copy',
        'verify',
        'switch',
        'remove-source',
        'remove-snapshot',
      ];
      const progress = out.slice(0, out.indexOf('\n  job '));
      const ends = progress
        .split('\n')
        .map((l) => /^ {4}(\S+)\s.*\b(succeeded|failed)$/.exec(l))
        .filter((m) => m !== null)
        .map((m) => m[1]);
      expect(ends).toEqual(stages);
      // Each stage's lines come before the next stage's.
      const firsts = stages.map((s) => progress.indexOf(`    ${s} `));
      expect([...firsts].sort((a, b) => a - b)).toEqual(firsts);
      const hint =
        /browse it: {2}coco (serve --config \S+) {3}then: coco (status \d+ --config \S+)/.exec(out);
      expect(hint, out).not.toBeNull();
      const serve = spawnCoco([...hint![1]!.split(' '), '--port', '0']);
      try {
        const url = await new Promise<string>((resolve, reject) => {
          serve.child.once('exit', (code) =>
            reject(new Error(`serve exited ${code}: ${serve.stderr()}`)),
          );
          serve.child.stderr!.on('data', () => {
            const m = /listening on (http:\/\/\S+)/.exec(serve.stderr());
            if (m) resolve(m[1]!);
          });
        });
        const status = spawnCoco([...hint![2]!.split(' '), '--server', url]);
        let shown = '';
        status.child.stdout!.on('data', (d: Buffer) => (shown += d.toString()));
        expect(await status.exited, status.stderr()).toBe(0);
        expect(shown).toMatch(/job \d+ disk\.migrate .*succeeded/);
      } finally {
        serve.child.kill('SIGTERM');
        await serve.exited;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
