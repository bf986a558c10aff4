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
 * @module
 */
import { createCipheriv, createHash, randomUUID, type Hash } from 'node:crypto';
import { constants, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { z } from 'zod';
import { CocoError, ErrorCode } from '../../core/errors.js';

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

/** Stable codes of the errors storage verbs fail with (besides `TASK_REJECTED`, `CANCELLED`). */
export const StorageErrorCode = {
  /** The volume (or the source of a copy) does not exist. */
  VolumeNotFound: 'VOLUME_NOT_FOUND',
  /** The snapshot does not exist. */
  SnapshotNotFound: 'SNAPSHOT_NOT_FOUND',
  /** `volume.create` found the volume already there with another size (or not a file). */
  VolumeSizeMismatch: 'VOLUME_SIZE_MISMATCH',
  /** `volume.verify` computed another checksum than the one expected. */
  ChecksumMismatch: 'CHECKSUM_MISMATCH',
  /** The file system failed (permissions, space, I/O); `details.errno` has the system code. */
  StorageIo: 'STORAGE_IO_ERROR',
} as const;

/**
 * Names of domains, volumes and snapshots: lower-case letters, digits, `.`, `_`, `-`, starting
 * with a letter or digit, at most 64 characters. No `/`, no leading `.` (so no `..`), no `@`
 * (which separates a volume from its snapshot in file names).
 */
export const STORAGE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Default copy chunk: big enough for sequential throughput, small enough to stop promptly. */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
/** Smallest chunk accepted: one disk sector; smaller only multiplies system calls. */
const MIN_CHUNK_BYTES = 512;
/** Largest chunk accepted: one buffer of this size is held per running task. */
const MAX_CHUNK_BYTES = 64 * 1024 * 1024;
/** Largest volume: ext4's per-file limit with 4 KiB blocks; anything bigger is a typo. */
const MAX_VOLUME_BYTES = 2 ** 44;
/** Snapshot files are named `<volume>@<snapshot>.img`. */
const SNAPSHOT_SEPARATOR = '@';
/** Extension of volume and snapshot files. */
const IMAGE_EXTENSION = '.img';
/** Prefix of temporary files: not a valid name start, so never mistaken for a volume. */
const TEMP_PREFIX = '.tmp-';
/** Salt of the `volume.fill` key, so its data is not the keystream of some other use of a seed. */
const FILL_KEY_SALT = 'coco.volume.fill\u0000';

const name = z.string().regex(STORAGE_NAME, 'must match /^[a-z0-9][a-z0-9._-]{0,63}$/');
const volumeRef = z.strictObject({ domain: name, volume: name });
const sha256Hex = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal digits')
  .transform((s) => s.toLowerCase());

const chunkBytes = z.number().int().min(MIN_CHUNK_BYTES).max(MAX_CHUNK_BYTES).optional();
const createArgs = z.strictObject({
  domain: name,
  volume: name,
  sizeBytes: z.number().int().nonnegative().max(MAX_VOLUME_BYTES),
});
const copyArgs = z
  .strictObject({
    from: volumeRef,
    to: volumeRef,
    chunkBytes,
  })
  .refine((a) => a.from.domain !== a.to.domain || a.from.volume !== a.to.volume, {
    message: 'must differ from "from" (a volume cannot be copied onto itself)',
    path: ['to'],
  });
const checksumArgs = z.strictObject({ domain: name, volume: name, chunkBytes });
const verifyArgs = z.strictObject({ domain: name, volume: name, sha256: sha256Hex, chunkBytes });
const snapshotArgs = z.strictObject({ domain: name, volume: name, snapshot: name });
const restoreArgs = z.strictObject({
  domain: name,
  volume: name,
  snapshot: name,
  onlyIfMissing: z.boolean().optional(),
});
const fillArgs = z.strictObject({
  domain: name,
  volume: name,
  seed: z.union([z.string().min(1).max(256), z.number().int()]),
  chunkBytes,
});

/** Parses a verb's arguments, refusing the start with every bad field named. */
function parseArgs<T>(verb: string, schema: z.ZodType<T>, args: unknown): T {
  const parsed = schema.safeParse(args);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({
    path: i.path.map(String).join('.'),
    message: i.message,
  }));
  const list = issues.map((i) => `${i.path === '' ? '(root)' : i.path}: ${i.message}`).join('; ');
  throw new CocoError(ErrorCode.TaskRejected, `bad arguments for verb "${verb}": ${list}`, {
    details: { verb, issues },
  });
}

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Turns a file-system failure into a `STORAGE_IO_ERROR`; coco errors pass through. */
function ioError(error: unknown, what: string): CocoError {
  if (error instanceof CocoError) return error;
  const errno = errnoOf(error);
  const message = error instanceof Error ? error.message : String(error);
  return new CocoError(StorageErrorCode.StorageIo, `${what}: ${message}`, {
    cause: error,
    details: errno === undefined ? undefined : { errno },
  });
}

function stopped(ctx: StorageVerbContext, done: number, total: number): CocoError {
  return new CocoError(
    ErrorCode.Cancelled,
    `task ${ctx.taskId} stopped by request after ${done} of ${total} bytes`,
    { details: { bytes: done, total } },
  );
}

async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await fsp.stat(path);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return null;
    throw error;
  }
}

/** Opens an existing file; a missing one fails with `notFound`. */
async function openExisting(path: string, flags: string, notFound: CocoError): Promise<FileHandle> {
  try {
    return await fsp.open(path, flags);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') throw notFound;
    throw error;
  }
}

/** Makes a directory's entries (a new link, rename or unlink) durable. */
async function syncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeFully(target: FileHandle, data: Buffer, position: number): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await target.write(
      data,
      offset,
      data.length - offset,
      position + offset,
    );
    offset += bytesWritten;
  }
}

/** Removes a file; true if it existed. */
async function removeFile(path: string): Promise<boolean> {
  try {
    await fsp.unlink(path);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Makes a file under the temporary name `temp` with `make`, then links it to `path` unless
 * `path` exists (an atomic, no-clobber publish). The temporary name is removed whatever
 * happens. Returns whether this call published the file.
 */
async function publish(
  temp: string,
  path: string,
  make: (temp: string) => Promise<void>,
): Promise<boolean> {
  try {
    await make(temp);
    try {
      await fsp.link(temp, path);
      return true;
    } catch (error) {
      if (errnoOf(error) === 'EEXIST') return false; // made meanwhile by another call
      throw error;
    }
  } finally {
    await removeFile(temp);
  }
}

/** Reads `handle` from 0 to `size` in chunks, hashing (and passing each chunk to `each`). */
async function streamChunks(
  handle: FileHandle,
  size: number,
  chunkBytes: number,
  ctx: StorageVerbContext,
  hash: Hash,
  each?: (chunk: Buffer, position: number) => Promise<void>,
): Promise<number> {
  const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(chunkBytes, size)));
  let position = 0;
  ctx.progress(0);
  while (position < size) {
    if (ctx.signal.aborted) throw stopped(ctx, position, size);
    const { bytesRead } = await handle.read(
      buffer,
      0,
      Math.min(buffer.length, size - position),
      position,
    );
    if (bytesRead === 0) break; // the file shrank while being read: what was read is the data
    const chunk = buffer.subarray(0, bytesRead);
    hash.update(chunk);
    if (each) await each(chunk, position);
    position += bytesRead;
    ctx.progress((position / size) * 100);
  }
  ctx.progress(100);
  return position;
}

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

  const cloneFile = async (from: string, to: string): Promise<void> => {
    // A reflink where the file system has them (instant, shares blocks), else a full copy.
    await fsp.copyFile(from, to, constants.COPYFILE_FICLONE);
    const handle = await fsp.open(to, 'r+');
    try {
      await handle.sync();
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
