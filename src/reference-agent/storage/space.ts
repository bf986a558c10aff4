/**
 * The storage verbs' limits (`./verbs.ts`): a cap on a volume's size, per agent, and a check of
 * the free space before a create, copy or fill. Both refuse before anything is written, with a
 * code and the sizes: `VOLUME_TOO_LARGE`, `INSUFFICIENT_SPACE`.
 *
 * Free space is what the file system grants this process (`statfs`: `bavail`), less what verbs
 * of this agent that are running on the same file system reserved and have not written yet: two
 * fills that each fit alone but not together are not both let through. A create reserves
 * nothing (its file is sparse) but is refused when the full volume would not fit now: a volume
 * that can never be filled is refused when it is made, not halfway through its first copy.
 *
 * @module
 */
import { CocoError, ErrorCode } from '../../core/errors.js';
import { StorageErrorCode } from './errors.js';
import type { DomainDir } from './paths.js';

/**
 * Default cap on a volume's size: 1 TiB. Larger than the disk images a reference agent serves
 * day to day, sixteen times under ext4's per-file limit (16 TiB less one block with 4 KiB
 * blocks), and small enough that one submitted size cannot claim a whole file system of an
 * ordinary host. An operator with bigger volumes raises it (`coco agent --max-volume-bytes`).
 */
export const DEFAULT_MAX_VOLUME_BYTES = 2 ** 40;

/** The volume `domain/volume`, for messages. */
function volumeName(domain: string, volume: string): string {
  return `${domain}/${volume}`;
}

/** An agent's volume cap and the bytes its running verbs reserved, per device. */
export class SpaceGuard {
  /** Largest volume, in bytes. */
  readonly maxVolumeBytes: number;
  readonly #reserved = new Map<number, number>();

  /** @throws CocoError `INVALID_OPTIONS` when the cap is not a positive safe integer. */
  constructor(maxVolumeBytes: number) {
    if (!Number.isSafeInteger(maxVolumeBytes) || maxVolumeBytes < 1) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `storage verbs: maxVolumeBytes must be a positive integer of bytes, not ${String(maxVolumeBytes)}`,
      );
    }
    this.maxVolumeBytes = maxVolumeBytes;
  }

  /**
   * Refuses a volume of `sizeBytes` over the cap.
   *
   * @throws CocoError `VOLUME_TOO_LARGE`.
   */
  checkSize(domain: string, volume: string, sizeBytes: number): void {
    if (sizeBytes <= this.maxVolumeBytes) return;
    throw new CocoError(
      StorageErrorCode.VolumeTooLarge,
      `volume ${volumeName(domain, volume)} would be ${sizeBytes} bytes, over this agent's ` +
        `limit of ${this.maxVolumeBytes} bytes (maxVolumeBytes, coco agent --max-volume-bytes)`,
      { details: { domain, volume, sizeBytes, maxVolumeBytes: this.maxVolumeBytes } },
    );
  }

  /**
   * Refuses `neededBytes` that do not fit now (see {@link SpaceGuard.reserve}), reserving nothing:
   * for a create, whose sparse file takes its space only when written.
   *
   * @throws CocoError `INSUFFICIENT_SPACE`, naming the sizes.
   */
  async check(dir: DomainDir, domain: string, volume: string, neededBytes: number): Promise<void> {
    const release = await this.reserve(dir, domain, volume, neededBytes);
    release();
  }

  /**
   * Reserves `neededBytes` on the file system of `dir` for a verb about to write them, if they
   * fit in its free space less what running verbs reserved there. Call the returned function
   * when the writing is over (it ended, failed or stopped).
   *
   * @throws CocoError `INSUFFICIENT_SPACE`, naming the sizes.
   */
  async reserve(
    dir: DomainDir,
    domain: string,
    volume: string,
    neededBytes: number,
  ): Promise<() => void> {
    if (neededBytes <= 0) return () => {};
    const availableBytes = await dir.availableBytes();
    const reservedBytes = this.#reserved.get(dir.dev) ?? 0;
    if (neededBytes > availableBytes - reservedBytes) {
      throw new CocoError(
        StorageErrorCode.InsufficientSpace,
        `volume ${volumeName(domain, volume)} needs ${neededBytes} bytes, but the file system of ` +
          `${dir.shown} has ${availableBytes} bytes free, ${reservedBytes} of them reserved by ` +
          `running verbs`,
        { details: { domain, volume, neededBytes, availableBytes, reservedBytes } },
      );
    }
    this.#reserved.set(dir.dev, reservedBytes + neededBytes);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#reserved.get(dir.dev) ?? 0) - neededBytes;
      if (left > 0) this.#reserved.set(dir.dev, left);
      else this.#reserved.delete(dir.dev);
    };
  }
}

/** Bytes a file already has on disk (a sparse file has fewer than its size). */
export function allocatedBytes(stat: { readonly blocks: number } | null): number {
  // st_blocks counts 512-byte units whatever the file system's block size.
  return stat === null ? 0 : stat.blocks * 512;
}
