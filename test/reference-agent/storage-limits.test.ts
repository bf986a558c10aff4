/**
 * The storage verbs stay within their limits, on real files: a volume over the agent's cap is
 * refused with VOLUME_TOO_LARGE; a create, copy or fill that does not fit in the free space
 * (counting what running verbs are about to write) is refused with INSUFFICIENT_SPACE; both
 * name the sizes and come before anything is written. Volumes bigger than the free space are
 * sparse files the test makes; each verb here is stopped after its first chunk should a check
 * be missing, so that a failing test never fills the disk.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  statfsSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, type CocoError } from '../../src/core/errors.js';
import {
  DEFAULT_MAX_VOLUME_BYTES,
  StorageErrorCode,
  storageVerbs,
  type StorageVerbContext,
  type Verb,
} from '../../src/reference-agent/storage/verbs.js';
import { tempDir } from '../support/harness.js';
import { rejection as failure } from '../support/errors.js';
import { runVerb } from './storage-support.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

let root: string;
let verbs: Record<string, Verb>;

beforeEach(() => {
  root = tempDir('coco-storage-');
  verbs = storageVerbs(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const run = (name: string, args: unknown, ctx?: StorageVerbContext): Promise<unknown> =>
  runVerb(verbs, name, args, ctx);

/** Bytes the file system has for this process, as the agent reads them. */
function available(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** A sparse file of `size` bytes made by the test (not by the agent). */
function sparse(path: string, size: number): void {
  writeFileSync(path, '');
  truncateSync(path, size);
}

describe('the volume size cap', () => {
  it('refuses a create, copy or fill over the cap, naming the sizes, before touching the disk', async () => {
    verbs = storageVerbs(root, { maxVolumeBytes: MiB });
    const error = await failure(
      run('volume.create', { domain: 'sd1', volume: 'big', sizeBytes: MiB + 1 }),
    );
    expect(error.code).toBe(StorageErrorCode.VolumeTooLarge);
    expect(error.message).toContain(String(MiB + 1));
    expect(error.message).toContain(String(MiB));
    expect(error.details).toMatchObject({ sizeBytes: MiB + 1, maxVolumeBytes: MiB });
    expect(readdirSync(root)).toEqual([]);
    expect(await run('volume.create', { domain: 'sd1', volume: 'ok', sizeBytes: MiB })).toEqual(
      expect.objectContaining({ created: true }),
    );

    // A bigger volume made behind the agent's back is neither copied nor filled.
    sparse(join(root, 'sd1', 'big.img'), 2 * MiB);
    const copy = await failure(
      run('volume.copy', {
        from: { domain: 'sd1', volume: 'big' },
        to: { domain: 'sd1', volume: 'copy' },
      }),
    );
    expect(copy.code).toBe(StorageErrorCode.VolumeTooLarge);
    expect(copy.details).toMatchObject({ sizeBytes: 2 * MiB, maxVolumeBytes: MiB });
    expect(existsSync(join(root, 'sd1', 'copy.img'))).toBe(false);
    const fill = await failure(run('volume.fill', { domain: 'sd1', volume: 'big', seed: 1 }));
    expect(fill.code).toBe(StorageErrorCode.VolumeTooLarge);
    expect(statSync(join(root, 'sd1', 'big.img')).blocks).toBe(0); // nothing written
  });

  it("defaults to 1 TiB, far under ext4's limit", async () => {
    expect(DEFAULT_MAX_VOLUME_BYTES).toBe(2 ** 40);
    const error = await failure(
      run('volume.create', { domain: 'sd1', volume: 'v', sizeBytes: 2 ** 40 + 1 }),
    );
    expect(error.code).toBe(StorageErrorCode.VolumeTooLarge);
    expect(readdirSync(root)).toEqual([]);
  });

  it('refuses a cap that is not a positive integer', () => {
    for (const maxVolumeBytes of [0, -1, 1.5, Number.NaN, 2 ** 60]) {
      expect(() => storageVerbs(root, { maxVolumeBytes }), String(maxVolumeBytes)).toThrow(
        expect.objectContaining({ code: ErrorCode.InvalidOptions }),
      );
    }
  });
});

describe('the free-space check', () => {
  const unlimited = { maxVolumeBytes: Number.MAX_SAFE_INTEGER };

  it('refuses to create a volume bigger than the free space, naming the sizes', async () => {
    verbs = storageVerbs(root, unlimited);
    const sizeBytes = available(root) + GiB;
    const error = await failure(run('volume.create', { domain: 'sd1', volume: 'v', sizeBytes }));
    expect(error.code).toBe(StorageErrorCode.InsufficientSpace);
    expect(error.message).toContain(String(sizeBytes));
    expect(error.details).toMatchObject({ neededBytes: sizeBytes, reservedBytes: 0 });
    expect((error.details as { availableBytes: number }).availableBytes).toBeLessThan(sizeBytes);
    expect(existsSync(join(root, 'sd1', 'v.img'))).toBe(false);
  });

  it('refuses to fill or copy onto more than the free space, before writing', async () => {
    verbs = storageVerbs(root, unlimited);
    mkdirSync(join(root, 'sd1'));
    sparse(join(root, 'sd1', 'huge.img'), available(root) + GiB);
    const fill = await failure(run('volume.fill', { domain: 'sd1', volume: 'huge', seed: 1 }));
    expect(fill.code).toBe(StorageErrorCode.InsufficientSpace);
    expect(statSync(join(root, 'sd1', 'huge.img')).blocks).toBe(0);
    const copy = await failure(
      run('volume.copy', {
        from: { domain: 'sd1', volume: 'huge' },
        to: { domain: 'sd2', volume: 'huge' },
      }),
    );
    expect(copy.code).toBe(StorageErrorCode.InsufficientSpace);
    expect(existsSync(join(root, 'sd2', 'huge.img'))).toBe(false);
  });

  it('counts what running verbs are about to write', async () => {
    verbs = storageVerbs(root, unlimited);
    mkdirSync(join(root, 'sd1'));
    const size = Math.floor(available(root) * 0.6);
    sparse(join(root, 'sd1', 'a.img'), size);
    sparse(join(root, 'sd1', 'b.img'), size);
    // While `a` fills (512 bytes a chunk, stopped once `b` was answered), `b` does not fit.
    let answerOfB!: (answer: Promise<CocoError>) => void;
    const secondAnswer = new Promise<CocoError>((resolve) => (answerOfB = resolve));
    const stopA = new AbortController();
    let started = false;
    const filling = failure(
      run(
        'volume.fill',
        { domain: 'sd1', volume: 'a', seed: 1, chunkBytes: 512 },
        {
          signal: stopA.signal,
          taskId: 'task-a',
          progress() {
            if (started) return;
            started = true;
            const b = failure(run('volume.fill', { domain: 'sd1', volume: 'b', seed: 2 }));
            void b.finally(() => stopA.abort());
            answerOfB(b);
          },
        },
      ),
    );
    const refusal = await secondAnswer;
    expect(refusal.code).toBe(StorageErrorCode.InsufficientSpace);
    expect(refusal.details).toMatchObject({ neededBytes: size, reservedBytes: size });
    expect((await filling).code).toBe(ErrorCode.Cancelled);
    // Once `a` ended, its reservation is gone: `b` passes the check (and is stopped at once).
    expect((await failure(run('volume.fill', { domain: 'sd1', volume: 'b', seed: 2 }))).code).toBe(
      ErrorCode.Cancelled,
    );
  });
});
