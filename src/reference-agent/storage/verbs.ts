/**
 * Storage verbs: real operations on volume image files, for an agent that serves a folder of
 * **storage domains**.
 *
 * Layout under the root folder:
 * - a domain is a directory `<root>/<domain>/`;
 * - a volume is a file `<root>/<domain>/<volume>.img` (sparse when created);
 * - a snapshot of a volume is a file `<root>/<domain>/<volume>@<snapshot>.img`;
 * - files being made are written under a temporary name starting with `.` (never a valid
 *   volume name) and linked or renamed into place, so a volume or snapshot either exists
 *   whole or not at all. `volume.copy` and `volume.fill` are the exceptions: they write in
 *   place, so a crash or stop leaves a partial target for the engine's undo to remove.
 *
 * Every verb validates its arguments with zod *synchronously* and throws a `TASK_REJECTED`
 * {@link CocoError} naming the offending field, so the agent refuses the start. Names of
 * domains, volumes and snapshots must match {@link STORAGE_NAME}: no separators, no leading
 * dot, so a name can never reach outside its domain.
 *
 * Every path is then resolved beneath the root and none goes through a symbolic link (a link
 * planted in the root is refused with `STORAGE_PATH_REFUSED`, see `./paths.ts`); a volume over
 * the agent's cap (`maxVolumeBytes`) is refused with `VOLUME_TOO_LARGE`, and a create, copy or
 * fill that does not fit in the free space with `INSUFFICIENT_SPACE`, before anything is
 * written (`./space.ts`).
 *
 * Failures while running carry stable codes ({@link StorageErrorCode}); a stop ends a running
 * verb between chunks with `CANCELLED`.
 *
 * The verbs themselves are here; their argument schemas are in `./args.ts`, their errors
 * in `./errors.ts`, their paths in `./paths.ts`, their limits in `./space.ts` and their
 * file-system helpers in `./files.ts`.
 *
 * @module
 */
import { createCipheriv, createHash, randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import type { z } from 'zod';
import { CocoError } from '../../core/errors.js';
import {
  checksumArgs,
  copyArgs,
  createArgs,
  DEFAULT_CHUNK_BYTES,
  fillArgs,
  parseArgs,
  restoreArgs,
  snapshotArgs,
  STORAGE_NAME,
  verifyArgs,
  volumeRef,
} from './args.js';
import { ioError, StorageErrorCode, stopped } from './errors.js';
import { cloneFile, openExisting, publish, streamChunks, writeFully } from './files.js';
import { StorageRoot, type DomainDir } from './paths.js';
import { allocatedBytes, DEFAULT_MAX_VOLUME_BYTES, SpaceGuard } from './space.js';

export { DEFAULT_CHUNK_BYTES, DEFAULT_MAX_VOLUME_BYTES, STORAGE_NAME, StorageErrorCode };

/** What a running verb gets besides its arguments (a subset of every agent's verb context). */
export interface StorageVerbContext {
  /** Aborted when the task is stopped. */
  readonly signal: AbortSignal;
  /** Reports progress, 0..100. */
  progress(percent: number): void;
  /** The task's id, as chosen by the engine. */
  readonly taskId: string;
}

/**
 * A verb: validates `args` synchronously (throwing `TASK_REJECTED`), then runs; its resolved
 * value is the task's result, its rejection the task's error.
 */
// The union documents that a verb may be synchronous or asynchronous.
// eslint-disable-next-line @typescript-eslint/no-redundant-type-constituents
export type Verb = (args: unknown, ctx: StorageVerbContext) => Promise<unknown> | unknown;

/** Options of {@link storageVerbs}. */
export interface StorageOptions {
  /**
   * Largest volume this agent creates, copies or fills, in bytes; bigger ones are refused with
   * `VOLUME_TOO_LARGE`. @default DEFAULT_MAX_VOLUME_BYTES (1 TiB)
   */
  readonly maxVolumeBytes?: number;
}

/** Snapshot files are named `<volume>@<snapshot>.img`. */
const SNAPSHOT_SEPARATOR = '@';
/** Extension of volume and snapshot files. */
const IMAGE_EXTENSION = '.img';
/** Prefix of temporary files: not a valid name start, so never mistaken for a volume. */
const TEMP_PREFIX = '.tmp-';
/** Salt of the `volume.fill` key, so its data is not the keystream of some other use of a seed. */
const FILL_KEY_SALT = 'coco.volume.fill\u0000';

const volumeFile = (volume: string): string => volume + IMAGE_EXTENSION;
const snapshotFile = (volume: string, snapshot: string): string =>
  volume + SNAPSHOT_SEPARATOR + snapshot + IMAGE_EXTENSION;
const tempFile = (volume: string): string =>
  `${TEMP_PREFIX}${randomUUID()}-${volume}${IMAGE_EXTENSION}`;

/**
 * The storage verbs of an agent serving `root` (a folder of storage domains):
 *
 * | verb | arguments | result |
 * | --- | --- | --- |
 * | `volume.create` | `{domain, volume, sizeBytes}` | `{path, sizeBytes, created}` |
 * | `volume.copy` | `{from: {domain, volume}, to: {domain, volume}, chunkBytes?, bytesPerSecond?}` | `{sha256, bytes}` |
 * | `volume.checksum` | `{domain, volume, chunkBytes?}` | `{sha256, bytes}` |
 * | `volume.verify` | `{domain, volume, sha256, chunkBytes?}` | `{sha256, bytes}` or `CHECKSUM_MISMATCH` |
 * | `volume.delete` | `{domain, volume}` | `{deleted}` |
 * | `volume.snapshot` | `{domain, volume, snapshot}` | `{path, created}` |
 * | `volume.snapshot.delete` | `{domain, volume, snapshot}` | `{deleted}` |
 * | `volume.snapshot.restore` | `{domain, volume, snapshot, onlyIfMissing?}` | `{path, restored}` |
 * | `volume.fill` | `{domain, volume, seed, chunkBytes?}` | `{sha256, bytes}` |
 *
 * Every verb is idempotent except `volume.copy` and `volume.fill`, which rewrite their target
 * with the same data when run again.
 *
 * @throws CocoError `INVALID_OPTIONS` for a `maxVolumeBytes` that is not a positive integer.
 */
export function storageVerbs(root: string, options: StorageOptions = {}): Record<string, Verb> {
  const storage = new StorageRoot(root);
  const space = new SpaceGuard(options.maxVolumeBytes ?? DEFAULT_MAX_VOLUME_BYTES);

  const volumeMissing = (domain: string, volume: string): CocoError =>
    new CocoError(StorageErrorCode.VolumeNotFound, `volume ${domain}/${volume} does not exist`, {
      details: { domain, volume },
    });
  const snapshotMissing = (domain: string, volume: string, snapshot: string): CocoError =>
    new CocoError(
      StorageErrorCode.SnapshotNotFound,
      `snapshot ${domain}/${volume}@${snapshot} does not exist`,
      { details: { domain, volume, snapshot } },
    );
  /** The directory of an existing domain; a missing one fails with `missing`. */
  const existingDomain = async (domain: string, missing: CocoError): Promise<DomainDir> => {
    const dir = await storage.domain(domain, false);
    if (dir === null) throw missing;
    return dir;
  };

  /** Wraps a verb body: arguments are parsed first (synchronously), I/O errors get a code. */
  const verb =
    <T>(
      verbName: string,
      schema: z.ZodType<T>,
      run: (args: T, ctx: StorageVerbContext) => Promise<unknown>,
    ): Verb =>
    (args, ctx) => {
      const parsed = parseArgs(verbName, schema, args);
      return run(parsed, ctx).catch((error: unknown) => {
        throw ioError(error, verbName);
      });
    };

  const checksum = async (
    domain: string,
    volume: string,
    chunk: number | undefined,
    ctx: StorageVerbContext,
  ): Promise<{ sha256: string; bytes: number }> => {
    const missing = volumeMissing(domain, volume);
    const dir = await existingDomain(domain, missing);
    const handle = await openExisting(dir, volumeFile(volume), constants.O_RDONLY, missing);
    try {
      const { size } = await handle.stat();
      const hash = createHash('sha256');
      const bytes = await streamChunks(handle, size, chunk ?? DEFAULT_CHUNK_BYTES, ctx, hash);
      return { sha256: hash.digest('hex'), bytes };
    } finally {
      await handle.close();
    }
  };

  return {
    'volume.create': verb(
      'volume.create',
      createArgs,
      async ({ domain, volume, sizeBytes }, ctx) => {
        space.checkSize(domain, volume, sizeBytes);
        const dir = await storage.domain(domain, true);
        const file = volumeFile(volume);
        const path = dir.shownPath(file);
        const existing = async (): Promise<{
          path: string;
          sizeBytes: number;
          created: boolean;
        }> => {
          const stat = await dir.entry(file);
          if (stat === null) throw volumeMissing(domain, volume); // deleted meanwhile
          if (!stat.isFile() || stat.size !== sizeBytes) {
            throw new CocoError(
              StorageErrorCode.VolumeSizeMismatch,
              `volume ${domain}/${volume} exists with ${stat.isFile() ? `${stat.size} bytes` : 'another type'}, not ${sizeBytes} bytes`,
              { details: { domain, volume, sizeBytes, existingBytes: stat.size } },
            );
          }
          ctx.progress(100);
          return { path, sizeBytes, created: false };
        };
        if ((await dir.entry(file)) !== null) return existing();
        await space.check(dir, domain, volume, sizeBytes);
        const made = await publish(dir, tempFile(volume), file, async (temp) => {
          const handle = await dir.open(
            temp,
            constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
            0o644,
          );
          try {
            await handle.truncate(sizeBytes); // ftruncate: a sparse file, no data blocks written
            await handle.sync();
          } finally {
            await handle.close();
          }
        });
        if (!made) return existing();
        await dir.sync();
        ctx.progress(100);
        return { path, sizeBytes, created: true };
      },
    ),

    'volume.copy': verb(
      'volume.copy',
      copyArgs,
      async ({ from, to, chunkBytes, bytesPerSecond }, ctx) => {
        const missing = volumeMissing(from.domain, from.volume);
        const fromDir = await existingDomain(from.domain, missing);
        const source = await openExisting(
          fromDir,
          volumeFile(from.volume),
          constants.O_RDONLY,
          missing,
        );
        try {
          const { size } = await source.stat();
          space.checkSize(to.domain, to.volume, size);
          const dir = await storage.domain(to.domain, true);
          const file = volumeFile(to.volume);
          const needed = size - allocatedBytes(await dir.entry(file));
          const release = await space.reserve(dir, to.domain, to.volume, needed);
          try {
            // Written in place (no truncation first): a crash or stop leaves a partial target.
            const target = await dir.open(file, constants.O_WRONLY | constants.O_CREAT, 0o644);
            try {
              const hash = createHash('sha256');
              const bytes = await streamChunks(
                source,
                size,
                chunkBytes ?? DEFAULT_CHUNK_BYTES,
                ctx,
                hash,
                (chunk, position) => writeFully(target, chunk, position),
                bytesPerSecond,
              );
              await target.truncate(bytes); // the target ends exactly where the data does
              await target.sync();
              await dir.sync(); // the target's directory entry, if the copy created it
              return { sha256: hash.digest('hex'), bytes };
            } finally {
              await target.close();
            }
          } finally {
            release();
          }
        } finally {
          await source.close();
        }
      },
    ),

    'volume.checksum': verb(
      'volume.checksum',
      checksumArgs,
      ({ domain, volume, chunkBytes }, ctx) => checksum(domain, volume, chunkBytes, ctx),
    ),

    'volume.verify': verb(
      'volume.verify',
      verifyArgs,
      async ({ domain, volume, sha256, chunkBytes }, ctx) => {
        const actual = await checksum(domain, volume, chunkBytes, ctx);
        if (actual.sha256 !== sha256) {
          throw new CocoError(
            StorageErrorCode.ChecksumMismatch,
            `volume ${domain}/${volume} has sha256 ${actual.sha256}, expected ${sha256}`,
            {
              details: {
                domain,
                volume,
                expected: sha256,
                actual: actual.sha256,
                bytes: actual.bytes,
              },
            },
          );
        }
        return actual;
      },
    ),

    'volume.delete': verb('volume.delete', volumeRef, async ({ domain, volume }, ctx) => {
      const dir = await storage.domain(domain, false);
      const deleted = dir !== null && (await dir.unlink(volumeFile(volume)));
      if (deleted) await dir.sync();
      ctx.progress(100);
      return { deleted };
    }),

    'volume.snapshot': verb(
      'volume.snapshot',
      snapshotArgs,
      async ({ domain, volume, snapshot }, ctx) => {
        const dir = await existingDomain(domain, volumeMissing(domain, volume));
        const file = snapshotFile(volume, snapshot);
        const path = dir.shownPath(file);
        if ((await dir.entry(file)) !== null) return { path, created: false };
        const source = await dir.entry(volumeFile(volume));
        if (source === null) throw volumeMissing(domain, volume);
        const created = await publish(dir, tempFile(volume), file, (temp) =>
          cloneFile(dir, volumeFile(volume), source, dir, temp),
        );
        await dir.sync();
        ctx.progress(100);
        return { path, created };
      },
    ),

    'volume.snapshot.delete': verb(
      'volume.snapshot.delete',
      snapshotArgs,
      async ({ domain, volume, snapshot }, ctx) => {
        const dir = await storage.domain(domain, false);
        const deleted = dir !== null && (await dir.unlink(snapshotFile(volume, snapshot)));
        if (deleted) await dir.sync();
        ctx.progress(100);
        return { deleted };
      },
    ),

    'volume.snapshot.restore': verb(
      'volume.snapshot.restore',
      restoreArgs,
      async ({ domain, volume, snapshot, onlyIfMissing }, ctx) => {
        const missing = snapshotMissing(domain, volume, snapshot);
        const dir = await existingDomain(domain, missing);
        const file = volumeFile(volume);
        const path = dir.shownPath(file);
        const from = snapshotFile(volume, snapshot);
        const source = await dir.entry(from);
        if (source === null) throw missing;
        const current = await dir.entry(file); // refuses a link where the volume goes
        if (onlyIfMissing === true && current !== null) {
          ctx.progress(100);
          return { path, restored: false };
        }
        const temp = tempFile(volume);
        try {
          await cloneFile(dir, from, source, dir, temp);
          await dir.rename(temp, file); // atomic replace: the volume is old or restored, never half
        } finally {
          await dir.unlink(temp);
        }
        await dir.sync();
        ctx.progress(100);
        return { path, restored: true };
      },
    ),

    'volume.fill': verb(
      'volume.fill',
      fillArgs,
      async ({ domain, volume, seed, chunkBytes }, ctx) => {
        const missing = volumeMissing(domain, volume);
        const dir = await existingDomain(domain, missing);
        const handle = await openExisting(dir, volumeFile(volume), constants.O_RDWR, missing);
        try {
          const stat = await handle.stat();
          const { size } = stat;
          space.checkSize(domain, volume, size);
          const release = await space.reserve(dir, domain, volume, size - allocatedBytes(stat));
          try {
            // AES-256-CTR keystream of the seed: deterministic, platform-independent, native speed.
            const key = createHash('sha256')
              .update(FILL_KEY_SALT + String(seed))
              .digest();
            const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
            const zeros = Buffer.alloc(
              Math.max(1, Math.min(chunkBytes ?? DEFAULT_CHUNK_BYTES, size)),
            );
            const hash = createHash('sha256');
            let position = 0;
            ctx.progress(0);
            while (position < size) {
              if (ctx.signal.aborted) throw stopped(ctx, position, size);
              const length = Math.min(zeros.length, size - position);
              const data = cipher.update(zeros.subarray(0, length));
              hash.update(data);
              await writeFully(handle, data, position);
              position += length;
              ctx.progress((position / size) * 100);
            }
            await handle.sync();
            ctx.progress(100);
            return { sha256: hash.digest('hex'), bytes: size };
          } finally {
            release();
          }
        } finally {
          await handle.close();
        }
      },
    ),
  };
}
