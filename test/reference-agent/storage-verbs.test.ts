/**
 * The storage verbs on real files in a temporary folder: sparse creation, chunked copies with
 * checksums and progress, stops, verification, idempotent deletes and snapshots, and the
 * refusal of bad names before anything touches the disk.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InProcessAgent } from '../../src/brokers/in-process/agent.js';
import { CocoError } from '../../src/core/errors.js';
import {
  StorageErrorCode,
  storageVerbs,
  type StorageVerbContext,
  type Verb,
} from '../../src/reference-agent/storage/verbs.js';
import { tempDir } from '../support/harness.js';
import { rejection as failure } from '../support/errors.js';

const MiB = 1024 * 1024;
/** Odd on purpose: the last chunk of a copy is a short one. */
const SIZE = 3 * MiB + 12_345;
const CHUNK = 256 * 1024;

let root: string;
let verbs: Record<string, Verb>;

beforeEach(() => {
  root = tempDir('coco-storage-');
  verbs = storageVerbs(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function context(onProgress?: (p: number, abort: () => void) => void): {
  ctx: StorageVerbContext;
  progress: number[];
} {
  const controller = new AbortController();
  const progress: number[] = [];
  const ctx: StorageVerbContext = {
    signal: controller.signal,
    taskId: 'task-1',
    progress(p) {
      progress.push(p);
      onProgress?.(p, () => controller.abort());
    },
  };
  return { ctx, progress };
}

/** Runs a verb to its end (or throw). */
async function run(name: string, args: unknown, ctx = context().ctx): Promise<unknown> {
  const verb = verbs[name];
  if (!verb) throw new Error(`no verb ${name}`);
  return await verb(args, ctx);
}

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const vol = (domain: string, volume: string): string => join(root, domain, `${volume}.img`);

async function filled(domain: string, volume: string, seed: string | number): Promise<string> {
  await run('volume.create', { domain, volume, sizeBytes: SIZE });
  const { sha256 } = (await run('volume.fill', { domain, volume, seed })) as { sha256: string };
  return sha256;
}

describe('volume.create', () => {
  it('creates a sparse file of the size asked, in a new domain folder', async () => {
    const result = await run('volume.create', { domain: 'sd1', volume: 'v1', sizeBytes: 16 * MiB });
    expect(result).toEqual({ path: vol('sd1', 'v1'), sizeBytes: 16 * MiB, created: true });
    const stat = statSync(vol('sd1', 'v1'));
    expect(stat.size).toBe(16 * MiB);
    expect(stat.blocks * 512).toBeLessThan(64 * 1024); // no data blocks were written
    expect(readdirSync(join(root, 'sd1'))).toEqual(['v1.img']); // no temporary file left
  });

  it('is idempotent for the same size and refuses another size', async () => {
    await run('volume.create', { domain: 'sd1', volume: 'v1', sizeBytes: MiB });
    expect(await run('volume.create', { domain: 'sd1', volume: 'v1', sizeBytes: MiB })).toEqual({
      path: vol('sd1', 'v1'),
      sizeBytes: MiB,
      created: false,
    });
    const error = await failure(
      run('volume.create', { domain: 'sd1', volume: 'v1', sizeBytes: 2 * MiB }),
    );
    expect(error.code).toBe(StorageErrorCode.VolumeSizeMismatch);
  });
});

describe('volume.copy', () => {
  it('copies exactly, returns the sha256 of the data and reports increasing progress', async () => {
    const sourceSha = await filled('sd1', 'v1', 'seed-1');
    expect(sourceSha).toBe(sha(vol('sd1', 'v1')));
    const { ctx, progress } = context();
    const result = await run(
      'volume.copy',
      {
        from: { domain: 'sd1', volume: 'v1' },
        to: { domain: 'sd2', volume: 'v1' },
        chunkBytes: CHUNK,
      },
      ctx,
    );
    expect(result).toEqual({ sha256: sourceSha, bytes: SIZE });
    expect(readFileSync(vol('sd2', 'v1')).equals(readFileSync(vol('sd1', 'v1')))).toBe(true);
    expect(progress.length).toBeGreaterThanOrEqual(Math.ceil(SIZE / CHUNK));
    expect(progress[0]).toBe(0);
    expect(progress.at(-1)).toBe(100);
    for (let i = 1; i < progress.length; i++)
      expect(progress[i]!).toBeGreaterThanOrEqual(progress[i - 1]!);
    expect(new Set(progress).size).toBeGreaterThan(10); // it moved, chunk by chunk
  });

  it('overwrites a created (larger) target and ends it where the data ends', async () => {
    const sourceSha = await filled('sd1', 'v1', 7);
    await run('volume.create', { domain: 'sd2', volume: 'v1', sizeBytes: SIZE + MiB });
    const result = await run('volume.copy', {
      from: { domain: 'sd1', volume: 'v1' },
      to: { domain: 'sd2', volume: 'v1' },
    });
    expect(result).toEqual({ sha256: sourceSha, bytes: SIZE });
    expect(sha(vol('sd2', 'v1'))).toBe(sourceSha);
  });

  it('stops between chunks when stopped: CANCELLED, and a partial target remains', async () => {
    await filled('sd1', 'v1', 'seed-1');
    const { ctx } = context((p, abort) => {
      if (p >= 30) abort();
    });
    const error = await failure(
      run(
        'volume.copy',
        {
          from: { domain: 'sd1', volume: 'v1' },
          to: { domain: 'sd2', volume: 'v1' },
          chunkBytes: CHUNK,
        },
        ctx,
      ),
    );
    expect(error.code).toBe('CANCELLED');
    const partial = readFileSync(vol('sd2', 'v1'));
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThan(SIZE);
    expect(partial.equals(readFileSync(vol('sd1', 'v1')).subarray(0, partial.length))).toBe(true);
  });

  it('keeps to bytesPerSecond: never ahead of the rate, the same data', async () => {
    const sourceSha = await filled('sd1', 'v1', 'seed-2');
    const rate = 6 * MiB;
    const began = performance.now();
    const result = await run('volume.copy', {
      from: { domain: 'sd1', volume: 'v1' },
      to: { domain: 'sd2', volume: 'v1' },
      chunkBytes: CHUNK,
      bytesPerSecond: rate,
    });
    const elapsed = performance.now() - began;
    expect(result).toEqual({ sha256: sourceSha, bytes: SIZE });
    // The last chunk is read once the bytes before it are due at the rate (pauses under 10 ms
    // are left to add up, so the copy may be that much ahead).
    const lastChunkAt = Math.floor((SIZE - 1) / CHUNK) * CHUNK;
    expect(elapsed).toBeGreaterThanOrEqual((lastChunkAt / rate) * 1000 - 10);
  });

  it('ends a rate-limit pause at once when stopped: CANCELLED, not after the pause', async () => {
    await filled('sd1', 'v1', 'seed-1');
    // At 512 bytes a second the pause after the first chunk would last over eight minutes.
    const { ctx } = context((p, abort) => {
      if (p > 0) abort();
    });
    const error = await failure(
      run(
        'volume.copy',
        {
          from: { domain: 'sd1', volume: 'v1' },
          to: { domain: 'sd2', volume: 'v1' },
          chunkBytes: CHUNK,
          bytesPerSecond: 512,
        },
        ctx,
      ),
    );
    expect(error.code).toBe('CANCELLED');
    expect(error.details).toMatchObject({ bytes: CHUNK, total: SIZE });
  });

  it('fails with VOLUME_NOT_FOUND when the source is missing', async () => {
    const error = await failure(
      run('volume.copy', {
        from: { domain: 'sd1', volume: 'nope' },
        to: { domain: 'sd2', volume: 'v' },
      }),
    );
    expect(error.code).toBe(StorageErrorCode.VolumeNotFound);
    expect(existsSync(vol('sd2', 'v'))).toBe(false);
  });
});

describe('volume.fill, volume.checksum, volume.verify', () => {
  it('fills deterministically from the seed', async () => {
    const a = await filled('sd1', 'a', 'seed-1');
    const b = await filled('sd1', 'b', 'seed-1');
    const c = await filled('sd1', 'c', 'seed-2');
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    expect(sha(vol('sd1', 'a'))).toBe(a);
  });

  it('checksums with progress; verify passes on a match and fails with CHECKSUM_MISMATCH', async () => {
    const expected = await filled('sd1', 'v1', 'seed-1');
    const { ctx, progress } = context();
    expect(await run('volume.checksum', { domain: 'sd1', volume: 'v1' }, ctx)).toEqual({
      sha256: expected,
      bytes: SIZE,
    });
    expect(progress.at(-1)).toBe(100);
    expect(
      await run('volume.verify', { domain: 'sd1', volume: 'v1', sha256: expected.toUpperCase() }),
    ).toEqual({ sha256: expected, bytes: SIZE });
    const error = await failure(
      run('volume.verify', { domain: 'sd1', volume: 'v1', sha256: '0'.repeat(64) }),
    );
    expect(error.code).toBe(StorageErrorCode.ChecksumMismatch);
    expect(error.details).toMatchObject({ expected: '0'.repeat(64), actual: expected });
  });

  it('checksum honours a stop', async () => {
    await filled('sd1', 'v1', 'seed-1');
    const { ctx } = context((p, abort) => {
      if (p > 0) abort();
    });
    const error = await failure(
      run('volume.checksum', { domain: 'sd1', volume: 'v1', chunkBytes: CHUNK }, ctx),
    );
    expect(error.code).toBe('CANCELLED');
  });
});

describe('volume.delete and snapshots', () => {
  it('delete is idempotent', async () => {
    await run('volume.create', { domain: 'sd1', volume: 'v1', sizeBytes: MiB });
    expect(await run('volume.delete', { domain: 'sd1', volume: 'v1' })).toEqual({ deleted: true });
    expect(await run('volume.delete', { domain: 'sd1', volume: 'v1' })).toEqual({ deleted: false });
    expect(await run('volume.delete', { domain: 'sd9', volume: 'v1' })).toEqual({ deleted: false });
    expect(existsSync(vol('sd1', 'v1'))).toBe(false);
  });

  it('a snapshot is a point-in-time copy; taking and deleting it are idempotent', async () => {
    const before = await filled('sd1', 'v1', 'seed-1');
    const args = { domain: 'sd1', volume: 'v1', snapshot: 'auto-1' };
    const snapPath = join(root, 'sd1', 'v1@auto-1.img');
    expect(await run('volume.snapshot', args)).toEqual({ path: snapPath, created: true });
    expect(await run('volume.snapshot', args)).toEqual({ path: snapPath, created: false });
    await run('volume.fill', { domain: 'sd1', volume: 'v1', seed: 'other' });
    expect(sha(snapPath)).toBe(before); // later writes to the volume do not reach it
    expect(await run('volume.snapshot.delete', args)).toEqual({ deleted: true });
    expect(await run('volume.snapshot.delete', args)).toEqual({ deleted: false });
    expect(readdirSync(join(root, 'sd1'))).toEqual(['v1.img']);
  });

  it('restore brings a deleted volume back from its snapshot (only if missing, when asked)', async () => {
    const before = await filled('sd1', 'v1', 'seed-1');
    const args = { domain: 'sd1', volume: 'v1', snapshot: 's' };
    await run('volume.snapshot', args);
    expect(await run('volume.snapshot.restore', { ...args, onlyIfMissing: true })).toMatchObject({
      restored: false,
    });
    await run('volume.delete', { domain: 'sd1', volume: 'v1' });
    expect(await run('volume.snapshot.restore', { ...args, onlyIfMissing: true })).toMatchObject({
      restored: true,
    });
    expect(sha(vol('sd1', 'v1'))).toBe(before);
    const error = await failure(run('volume.snapshot.restore', { ...args, snapshot: 'none' }));
    expect(error.code).toBe(StorageErrorCode.SnapshotNotFound);
  });

  it('a snapshot of a missing volume fails with VOLUME_NOT_FOUND', async () => {
    const error = await failure(
      run('volume.snapshot', { domain: 'sd1', volume: 'v1', snapshot: 's' }),
    );
    expect(error.code).toBe(StorageErrorCode.VolumeNotFound);
  });
});

describe('argument checks', () => {
  const rejected = (name: string, args: unknown): CocoError => {
    const verb = verbs[name]!;
    try {
      // Refused synchronously: the agent then never holds the task.
      void verb(args, context().ctx);
    } catch (error) {
      if (error instanceof CocoError) return error;
      throw error;
    }
    throw new Error(`${name} accepted ${JSON.stringify(args)}`);
  };

  it.each([
    ['../outside', 'domain'],
    ['a/b', 'domain'],
    ['.hidden', 'domain'],
    ['..', 'domain'],
    ['Upper', 'domain'],
    ['', 'domain'],
    ['x'.repeat(65), 'domain'],
    ['a@b', 'domain'],
    ['a\u0000b', 'domain'],
  ])('refuses the domain name %j with TASK_REJECTED naming the field', (bad, field) => {
    const error = rejected('volume.create', { domain: bad, volume: 'v1', sizeBytes: 1 });
    expect(error.code).toBe('TASK_REJECTED');
    expect(error.message).toContain(field);
  });

  it.each([0, 511, 1.5, -1])('refuses a copy rate of %j bytes a second', (rate) => {
    const error = rejected('volume.copy', {
      from: { domain: 'sd1', volume: 'v1' },
      to: { domain: 'sd2', volume: 'v1' },
      bytesPerSecond: rate,
    });
    expect(error.code).toBe('TASK_REJECTED');
    expect(error.message).toContain('bytesPerSecond');
  });

  it('refuses bad volume and snapshot names, nested ones too, in every verb', () => {
    const cases: [string, unknown, string][] = [
      ['volume.create', { domain: 'sd1', volume: '../../etc/passwd', sizeBytes: 1 }, 'volume'],
      ['volume.delete', { domain: 'sd1', volume: '..' }, 'volume'],
      ['volume.checksum', { domain: '/abs', volume: 'v' }, 'domain'],
      ['volume.verify', { domain: 'sd1', volume: 'v', sha256: 'xyz' }, 'sha256'],
      ['volume.snapshot', { domain: 'sd1', volume: 'v', snapshot: '../s' }, 'snapshot'],
      ['volume.snapshot.delete', { domain: 'sd1', volume: 'v', snapshot: 'a/b' }, 'snapshot'],
      ['volume.fill', { domain: 'sd1', volume: 'v' }, 'seed'],
      [
        'volume.copy',
        { from: { domain: 'sd1', volume: 'v' }, to: { domain: '..', volume: 'v' } },
        'to.domain',
      ],
      [
        'volume.copy',
        { from: { domain: 'sd1', volume: 'v' }, to: { domain: 'sd1', volume: 'v' } },
        'to',
      ],
      [
        'volume.copy',
        { from: { domain: 'sd1', volume: 'v' }, to: { domain: 'sd2', volume: 'v' }, chunkBytes: 1 },
        'chunkBytes',
      ],
      ['volume.create', { domain: 'sd1', volume: 'v', sizeBytes: -1 }, 'sizeBytes'],
      ['volume.create', { domain: 'sd1', volume: 'v', sizeBytes: 1, extra: true }, 'extra'],
      ['volume.create', null, '(root)'],
    ];
    for (const [name, args, field] of cases) {
      const error = rejected(name, args);
      expect(error.code, name).toBe('TASK_REJECTED');
      expect(error.message, `${name} ${JSON.stringify(args)}`).toContain(field);
    }
    expect(readdirSync(root)).toEqual([]); // nothing was created anywhere
  });

  it('an in-process agent refuses the start (the task never exists) and runs good ones', async () => {
    const agent = new InProcessAgent({ id: 'host-1', verbs: storageVerbs(root) });
    const [refused] = await agent.startTasks([
      { taskId: 't1', verb: 'volume.create', args: { domain: '../x', volume: 'v', sizeBytes: 1 } },
    ]);
    expect(refused).toMatchObject({ accepted: false, error: { code: 'TASK_REJECTED' } });
    expect(agent.size).toBe(0);
    writeFileSync(join(root, 'marker'), ''); // the root itself is untouched by refused starts
    await agent.startTasks([
      { taskId: 't2', verb: 'volume.create', args: { domain: 'sd1', volume: 'v', sizeBytes: 1 } },
    ]);
    await expect.poll(async () => (await agent.getStatuses(['t2']))[0]?.state).toBe('succeeded');
    expect(statSync(vol('sd1', 'v')).size).toBe(1);
  });
});
