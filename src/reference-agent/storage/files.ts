/**
 * File-system helpers of the storage verbs (`./verbs.ts`), on top of the checked domain
 * directories of `./paths.ts`: opening an existing file, full writes, the atomic no-clobber
 * publish of a file made under a temporary name, clones, and the chunked, stoppable read that
 * hashes a volume.
 *
 * A stop ends a chunked read between chunks with a `CANCELLED` {@link CocoError}; other failures
 * are the file system's own errors, which the verbs turn into coded ones (`./errors.ts`), or
 * `STORAGE_PATH_REFUSED` refusals of a path that leaves the root.
 *
 * @module
 */
import type { Hash } from 'node:crypto';
import { constants, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { CocoError } from '../../core/errors.js';
import type { StorageVerbContext } from './verbs.js';
import { errnoOf, pathRefused, stopped } from './errors.js';
import type { DomainDir } from './paths.js';

/** Opens an existing file of a domain (`flags`: `O_RDONLY` or `O_RDWR`); a missing one fails with `notFound`. */
export async function openExisting(
  dir: DomainDir,
  name: string,
  flags: number,
  notFound: CocoError,
): Promise<FileHandle> {
  try {
    return await dir.open(name, flags);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') throw notFound;
    throw error;
  }
}

/** Writes all of `data` at `position`, however many writes that takes. */
export async function writeFully(
  target: FileHandle,
  data: Buffer,
  position: number,
): Promise<void> {
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

/**
 * Makes a file of `dir` under the temporary name `temp` with `make`, then links it to `name`
 * unless `name` exists (an atomic, no-clobber publish). The temporary name is removed whatever
 * happens. Returns whether this call published the file.
 */
export async function publish(
  dir: DomainDir,
  temp: string,
  name: string,
  make: (temp: string) => Promise<void>,
): Promise<boolean> {
  try {
    await make(temp);
    return await dir.link(temp, name); // false: made meanwhile by another call
  } finally {
    await dir.unlink(temp);
  }
}

/**
 * Copies the file `name` of `from` (whose `lstat` the caller took: `source`) to the new file `to`
 * of `into` and makes its data durable. The source must be a regular file, and still the same
 * one after the copy; the target is made exclusively, never through a link.
 */
export async function cloneFile(
  from: DomainDir,
  name: string,
  source: Stats,
  into: DomainDir,
  to: string,
): Promise<void> {
  if (!source.isFile()) throw pathRefused(from.shownPath(name), 'it is not a regular file');
  await from.recheck();
  await into.recheck();
  // A reflink where the file system has them (instant, shares blocks), else a full copy.
  await fsp.copyFile(
    join(from.path, name),
    join(into.path, to),
    constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE,
  );
  const after = await from.entry(name);
  if (after === null || after.dev !== source.dev || after.ino !== source.ino)
    throw pathRefused(from.shownPath(name), 'it was replaced while being copied');
  await from.recheck();
  const copy = await into.open(to, constants.O_RDWR);
  try {
    await copy.sync();
  } finally {
    await copy.close();
  }
}

/**
 * A rate-limited read pauses only once it is at least this far ahead of its rate: smaller pauses
 * add up until they reach it. A timer per 512-byte chunk would cost more than the chunk, and
 * Node's timers are not finer than a millisecond anyway.
 */
const MIN_PAUSE_MS = 10;

/** Resolves after `ms`, or at once when `signal` aborts (the caller checks it). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Reads `handle` from 0 to `size` in chunks, hashing (and passing each chunk to `each`); with
 * `bytesPerSecond`, no faster than that on average (a stop ends a pause at once).
 */
export async function streamChunks(
  handle: FileHandle,
  size: number,
  chunkBytes: number,
  ctx: StorageVerbContext,
  hash: Hash,
  each?: (chunk: Buffer, position: number) => Promise<void>,
  bytesPerSecond?: number,
): Promise<number> {
  const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(chunkBytes, size)));
  const began = performance.now();
  let position = 0;
  ctx.progress(0);
  while (position < size) {
    if (bytesPerSecond !== undefined) {
      const ahead = began + (position / bytesPerSecond) * 1000 - performance.now();
      if (ahead >= MIN_PAUSE_MS) await pause(ahead, ctx.signal);
    }
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
