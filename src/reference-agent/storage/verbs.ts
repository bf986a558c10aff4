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
 * Failures while running carry stable codes ({@link StorageErrorCode}); a stop ends a running
 * verb between chunks with `CANCELLED`.
 *
 * The verbs themselves are here; their argument schemas are in `./args.ts`, their errors
 * in `./errors.ts` and their file-system helpers in `./files.ts`.
 *
 * @module
 */
import { createCipheriv, createHash, randomUUID } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { z } from 'zod';
import { CocoError, ErrorCode } from '../../core/errors.js';
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
import {
  cloneFile,
  openExisting,
  publish,
  removeFile,
  statOrNull,
  streamChunks,
  syncDir,
  writeFully,
} from './files.js';

export { DEFAULT_CHUNK_BYTES, STORAGE_NAME, StorageErrorCode };

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

/** Snapshot files are named `<volume>@<snapshot>.img`. */
const SNAPSHOT_SEPARATOR = '@';
/** Extension of volume and snapshot files. */
const IMAGE_EXTENSION = '.img';
/** Prefix of temporary files: not a valid name start, so never mistaken for a volume. */
const TEMP_PREFIX = '.tmp-';
/** Salt of the `volume.fill` key, so its data is not the keystream of some other use of a seed. */
const FILL_KEY_SALT = 'coco.volume.fill\u0000';

/**
 * The storage verbs of an agent serving `root` (a folder of storage domains):
 *
 * | verb | arguments | result |
 * | --- | --- | --- |
 * | `volume.create` | `{domain, volume, sizeBytes}` | `{path, sizeBytes, created}` |
 * | `volume.copy` | `{from: {domain, volume}, to: {domain, volume}, chunkBytes?}` | `{sha256, bytes}` |
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
 */
export function storageVerbs(root: string): Record<string, Verb> {
  const base = resolve(root);

  const domainDir = (domain: string): string => {
    const dir = join(base, domain);
    // Defence in depth: the name pattern already makes this impossible.
    if (!dir.startsWith(base + sep)) {
      throw new CocoError(ErrorCode.TaskRejected, `domain "${domain}" is outside the root`);
    }
    return dir;
  };
  const volumePath = (domain: string, volume: string): string =>
    join(domainDir(domain), volume + IMAGE_EXTENSION);
  const snapshotPath = (domain: string, volume: string, snapshot: string): string =>
    join(domainDir(domain), volume + SNAPSHOT_SEPARATOR + snapshot + IMAGE_EXTENSION);
  const tempPath = (domain: string, volume: string): string =>
    join(domainDir(domain), `${TEMP_PREFIX}${randomUUID()}-${volume}${IMAGE_EXTENSION}`);
  const volumeMissing = (domain: string, volume: string): CocoError =>
    new CocoError(StorageErrorCode.VolumeNotFound, `volume ${domain}/${volume} does not exist`, {
      details: { domain, volume },
    });

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
    const handle = await openExisting(
      volumePath(domain, volume),
      'r',
      volumeMissing(domain, volume),
    );
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
        const dir = domainDir(domain);
        const path = volumePath(domain, volume);
        const existing = async (): Promise<{
          path: string;
          sizeBytes: number;
          created: boolean;
        }> => {
          const stat = await fsp.stat(path);
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
        if ((await statOrNull(path)) !== null) return existing();
        await fsp.mkdir(dir, { recursive: true });
        const made = await publish(tempPath(domain, volume), path, async (temp) => {
          const handle = await fsp.open(temp, 'wx', 0o644);
          try {
            await handle.truncate(sizeBytes); // ftruncate: a sparse file, no data blocks written
            await handle.sync();
          } finally {
            await handle.close();
          }
        });
        if (!made) return existing();
        await syncDir(dir);
        ctx.progress(100);
        return { path, sizeBytes, created: true };
      },
    ),

    'volume.copy': verb('volume.copy', copyArgs, async ({ from, to, chunkBytes }, ctx) => {
      const source = await openExisting(
        volumePath(from.domain, from.volume),
        'r',
        volumeMissing(from.domain, from.volume),
      );
      try {
        const { size } = await source.stat();
        const dir = domainDir(to.domain);
        await fsp.mkdir(dir, { recursive: true });
        // Written in place (no truncation first): a crash or stop leaves a partial target.
        const target = await fsp.open(
          volumePath(to.domain, to.volume),
          constants.O_WRONLY | constants.O_CREAT,
          0o644,
        );
        try {
          const hash = createHash('sha256');
          const bytes = await streamChunks(
            source,
            size,
            chunkBytes ?? DEFAULT_CHUNK_BYTES,
            ctx,
            hash,
            (chunk, position) => writeFully(target, chunk, position),
          );
          await target.truncate(bytes); // the target ends exactly where the data does
          await target.sync();
          await syncDir(dir); // the target's directory entry, if the copy created it
          return { sha256: hash.digest('hex'), bytes };
        } finally {
          await target.close();
        }
      } finally {
        await source.close();
      }
    }),

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
      const deleted = await removeFile(volumePath(domain, volume));
      if (deleted) await syncDir(domainDir(domain));
      ctx.progress(100);
      return { deleted };
    }),

    'volume.snapshot': verb(
      'volume.snapshot',
      snapshotArgs,
      async ({ domain, volume, snapshot }, ctx) => {
        const dir = domainDir(domain);
        const path = snapshotPath(domain, volume, snapshot);
        if ((await statOrNull(path)) !== null) return { path, created: false };
        const source = volumePath(domain, volume);
        if ((await statOrNull(source)) === null) throw volumeMissing(domain, volume);
        const created = await publish(tempPath(domain, volume), path, (temp) =>
          cloneFile(source, temp),
        );
        await syncDir(dir);
        ctx.progress(100);
        return { path, created };
      },
    ),

    'volume.snapshot.delete': verb(
      'volume.snapshot.delete',
      snapshotArgs,
      async ({ domain, volume, snapshot }, ctx) => {
        const deleted = await removeFile(snapshotPath(domain, volume, snapshot));
        if (deleted) await syncDir(domainDir(domain));
        ctx.progress(100);
        return { deleted };
      },
    ),

    'volume.snapshot.restore': verb(
      'volume.snapshot.restore',
      restoreArgs,
      async ({ domain, volume, snapshot, onlyIfMissing }, ctx) => {
        const dir = domainDir(domain);
        const path = volumePath(domain, volume);
        const from = snapshotPath(domain, volume, snapshot);
        if ((await statOrNull(from)) === null) {
          throw new CocoError(
            StorageErrorCode.SnapshotNotFound,
            `snapshot ${domain}/${volume}@${snapshot} does not exist`,
            { details: { domain, volume, snapshot } },
          );
        }
        if (onlyIfMissing === true && (await statOrNull(path)) !== null) {
          ctx.progress(100);
          return { path, restored: false };
        }
        const temp = tempPath(domain, volume);
        try {
          await cloneFile(from, temp);
          await fsp.rename(temp, path); // atomic replace: the volume is old or restored, never half
        } finally {
          await removeFile(temp);
        }
        await syncDir(dir);
        ctx.progress(100);
        return { path, restored: true };
      },
    ),

    'volume.fill': verb(
      'volume.fill',
      fillArgs,
      async ({ domain, volume, seed, chunkBytes }, ctx) => {
        const handle = await openExisting(
          volumePath(domain, volume),
          'r+',
          volumeMissing(domain, volume),
        );
        try {
          const { size } = await handle.stat();
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
          await handle.close();
        }
      },
    ),
  };
}
