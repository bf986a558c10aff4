/**
 * File-system helpers of the storage verbs (`./storage.ts`): existence checks, durable directory
 * entries, full writes, the atomic no-clobber publish of a file made under a temporary name,
 * clones, and the chunked, stoppable read that hashes a volume.
 *
 * A stop ends a chunked read between chunks with a `CANCELLED` {@link CocoError}; other failures
 * are the file system's own errors, which the verbs turn into coded ones (`./errors.ts`).
 *
 * @module
 */
import type { Hash } from 'node:crypto';
import { constants, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { CocoError } from '../../core/errors.js';
import type { StorageVerbContext } from './verbs.js';
import { errnoOf, stopped } from './errors.js';

/** The file's stats, or null if it does not exist. */
export async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await fsp.stat(path);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return null;
    throw error;
  }
}

/** Opens an existing file; a missing one fails with `notFound`. */
export async function openExisting(
  path: string,
  flags: string,
  notFound: CocoError,
): Promise<FileHandle> {
  try {
    return await fsp.open(path, flags);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') throw notFound;
    throw error;
  }
}

/** Opens `path` (`flags`: 'r' for a directory, 'r+' for a file) and makes it durable. */
async function syncPath(path: string, flags: 'r' | 'r+'): Promise<void> {
  const handle = await fsp.open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a directory's entries (a new link, rename or unlink) durable. */
export async function syncDir(dir: string): Promise<void> {
  await syncPath(dir, 'r');
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

/** Removes a file; true if it existed. */
export async function removeFile(path: string): Promise<boolean> {
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
export async function publish(
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

/** Copies `from` to a new file `to` and makes its data durable. */
export async function cloneFile(from: string, to: string): Promise<void> {
  // A reflink where the file system has them (instant, shares blocks), else a full copy.
  await fsp.copyFile(from, to, constants.COPYFILE_FICLONE);
  await syncPath(to, 'r+');
}

/** Reads `handle` from 0 to `size` in chunks, hashing (and passing each chunk to `each`). */
export async function streamChunks(
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
