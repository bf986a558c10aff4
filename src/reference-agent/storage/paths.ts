/**
 * The storage root's guard: every path a storage verb touches is resolved beneath the root, and
 * none goes through a symbolic link (`./verbs.ts` uses nothing else to reach the disk).
 *
 * Names are already plain (`STORAGE_NAME`: no separator, no leading dot), so what could still
 * lead a verb out of its root is a link placed in the root: a domain that is a link, or a link
 * inside a domain. They are refused, with `STORAGE_PATH_REFUSED` naming the path:
 *
 * - a domain is used only if it is a directory (not a link) right under the root's real path,
 *   whose real path is its own; the root itself may be a link (the operator's choice);
 * - an entry of a domain (a volume, a snapshot, a temporary file) is looked at with `lstat`,
 *   and a link is refused, dangling or not;
 * - files are opened with `O_NOFOLLOW` (a link at the last step fails instead of being
 *   followed) and `O_NONBLOCK` (a FIFO planted in a domain cannot block the open), and before
 *   any byte is read or written the open file must be a regular file that is the very entry
 *   of this domain (same device and inode), in a domain that is still the directory checked.
 *
 * What Node cannot do is resolve a name relative to an open directory (`openat`): a domain
 * swapped for a link *while* a verb runs is caught by the checks after each open, before any
 * data moves, but an open that creates a file, a link, rename or unlink, and a clone's copy act
 * on the path and may land outside in that window. Static links, which is what a mistake or a
 * planted link is, never do.
 *
 * @module
 */
import { constants, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { errnoOf, pathRefused } from './errors.js';

/** The folder of storage domains an agent serves. */
export class StorageRoot {
  /** The root as configured (resolved, links kept): what results and messages name. */
  readonly base: string;

  constructor(root: string) {
    this.base = resolve(root);
  }

  /**
   * The directory of `domain`, checked (see the module comment). With `create`, it is made if
   * missing (and the root with it); without, a missing domain (or root) is `null`.
   *
   * @throws CocoError `STORAGE_PATH_REFUSED` when the domain is a link or not a directory.
   */
  async domain(domain: string, create: true): Promise<DomainDir>;
  async domain(domain: string, create: boolean): Promise<DomainDir | null>;
  async domain(domain: string, create: boolean): Promise<DomainDir | null> {
    const shown = join(this.base, domain);
    if (create) await fsp.mkdir(this.base, { recursive: true });
    let realRoot: string;
    try {
      realRoot = await fsp.realpath(this.base);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return null;
      throw error;
    }
    const path = join(realRoot, domain);
    if (create) {
      try {
        await fsp.mkdir(path);
      } catch (error) {
        if (errnoOf(error) !== 'EEXIST') throw error; // a link there is refused just below
      }
    }
    const stat = await lstatOrNull(path);
    if (stat === null) return null;
    if (stat.isSymbolicLink()) throw pathRefused(shown, 'the domain is a symbolic link');
    if (!stat.isDirectory()) throw pathRefused(shown, 'the domain is not a directory');
    if ((await fsp.realpath(path)) !== path)
      throw pathRefused(shown, 'the domain resolves outside the root');
    return new DomainDir(path, shown, stat);
  }
}

/** A domain's directory, checked beneath the root (made by {@link StorageRoot.domain}). */
export class DomainDir {
  /** Its real path. */
  readonly path: string;
  /** Its path under the root as configured (for results and messages). */
  readonly shown: string;
  /** The device it is on (space is counted per device). */
  readonly dev: number;
  readonly #ino: number;

  /** @internal Made by {@link StorageRoot.domain} once checked. */
  constructor(path: string, shown: string, stat: Stats) {
    this.path = path;
    this.shown = shown;
    this.dev = stat.dev;
    this.#ino = stat.ino;
  }

  /** The path of an entry under the root as configured. */
  shownPath(name: string): string {
    return join(this.shown, name);
  }

  /**
   * An entry's own stats (`lstat`), or null if it does not exist.
   *
   * @throws CocoError `STORAGE_PATH_REFUSED` when it is a symbolic link.
   */
  async entry(name: string): Promise<Stats | null> {
    const stat = await lstatOrNull(join(this.path, name));
    if (stat?.isSymbolicLink() === true)
      throw pathRefused(this.shownPath(name), 'it is a symbolic link');
    return stat;
  }

  /**
   * Opens an entry (`flags`: `O_RDONLY`, `O_RDWR`, `O_WRONLY | O_CREAT [| O_EXCL]`) without
   * following a link, and checks it is a regular file that is this entry of this directory
   * before handing it out. A missing entry fails with the system's `ENOENT`.
   *
   * @throws CocoError `STORAGE_PATH_REFUSED` for a link, a file that is not regular, or an
   *   entry or directory replaced meanwhile.
   */
  async open(name: string, flags: number, mode?: number): Promise<FileHandle> {
    const path = join(this.path, name);
    let handle: FileHandle;
    try {
      handle = await fsp.open(path, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode);
    } catch (error) {
      if (errnoOf(error) === 'ELOOP')
        throw pathRefused(this.shownPath(name), 'it is a symbolic link');
      throw error;
    }
    try {
      const opened = await handle.stat();
      if (!opened.isFile()) throw pathRefused(this.shownPath(name), 'it is not a regular file');
      await this.recheck();
      const there = await lstatOrNull(path);
      if (there === null || there.dev !== opened.dev || there.ino !== opened.ino)
        throw pathRefused(this.shownPath(name), 'it was replaced while being opened');
      return handle;
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Removes an entry; true if it existed. A link is refused, not removed. */
  async unlink(name: string): Promise<boolean> {
    if ((await this.entry(name)) === null) return false;
    await this.recheck();
    try {
      await fsp.unlink(join(this.path, name));
      return true;
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return false;
      throw error;
    }
  }

  /** Links entry `from` as `to` in this directory; false if `to` exists (never replaced). */
  async link(from: string, to: string): Promise<boolean> {
    await this.recheck();
    try {
      await fsp.link(join(this.path, from), join(this.path, to));
      return true;
    } catch (error) {
      if (errnoOf(error) === 'EEXIST') return false;
      throw error;
    }
  }

  /** Renames entry `from` to `to` in this directory, atomically replacing `to`. */
  async rename(from: string, to: string): Promise<void> {
    await this.entry(to); // refuses a link at `to` (rename would replace the link itself)
    await this.recheck();
    await fsp.rename(join(this.path, from), join(this.path, to));
  }

  /** Makes the directory's entries (a new link, rename or unlink) durable. */
  async sync(): Promise<void> {
    const handle = await fsp.open(
      this.path,
      constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
    );
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Bytes free for this process on the directory's file system. */
  async availableBytes(): Promise<number> {
    const stats = await fsp.statfs(this.path);
    return stats.bavail * stats.bsize;
  }

  /**
   * Checks the directory is still the one checked: not replaced by a link or another directory.
   *
   * @throws CocoError `STORAGE_PATH_REFUSED` otherwise.
   */
  async recheck(): Promise<void> {
    const now = await lstatOrNull(this.path);
    if (now === null || !now.isDirectory() || now.dev !== this.dev || now.ino !== this.#ino)
      throw pathRefused(this.shown, 'the domain was replaced while in use');
  }
}

/** A path's own stats (`lstat`), or null if it does not exist. */
async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await fsp.lstat(path);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return null;
    throw error;
  }
}
