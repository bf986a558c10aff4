/**
 * Errors of the storage verbs (`./verbs.ts`): their stable codes, the `STORAGE_IO_ERROR` a
 * file-system failure becomes, the refusal of a path leaving the root, and the `CANCELLED`
 * error of a verb stopped between chunks.
 *
 * @module
 */
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { StorageVerbContext } from './verbs.js';

/**
 * Stable codes of the errors storage verbs fail with (besides `TASK_REJECTED`, `CANCELLED`): the
 * storage part of the one catalogue, {@link ErrorCode}, under shorter names.
 */
export const StorageErrorCode = {
  /** The volume (or the source of a copy) does not exist. */
  VolumeNotFound: ErrorCode.VolumeNotFound,
  /** The snapshot does not exist. */
  SnapshotNotFound: ErrorCode.SnapshotNotFound,
  /** `volume.create` found the volume already there with another size (or not a file). */
  VolumeSizeMismatch: ErrorCode.VolumeSizeMismatch,
  /** `volume.verify` computed another checksum than the one expected. */
  ChecksumMismatch: ErrorCode.ChecksumMismatch,
  /** The file system failed (permissions, space, I/O); `details.errno` has the system code. */
  StorageIo: ErrorCode.StorageIo,
  /**
   * A path would leave the storage root or go through a symbolic link (a domain that is a link,
   * a link inside a domain); `details.path` names it, `details.reason` says why.
   */
  PathRefused: ErrorCode.StoragePathRefused,
  /** The volume is over the agent's size cap (`maxVolumeBytes`); `details` has both sizes. */
  VolumeTooLarge: ErrorCode.VolumeTooLarge,
  /**
   * The bytes a create, copy or fill needs are more than the file system has free, less what
   * running verbs are about to write; `details` has the sizes.
   */
  InsufficientSpace: ErrorCode.InsufficientSpace,
} as const;

/** The system error code (`ENOENT`, `EEXIST`, ...) of a file-system failure, if it has one. */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The refusal of a path that leaves the root or goes through a link (`./paths.ts`). */
export function pathRefused(path: string, reason: string): CocoError {
  return new CocoError(
    StorageErrorCode.PathRefused,
    `refused ${path}: ${reason}; storage paths stay beneath the root and follow no symbolic link`,
    { details: { path, reason } },
  );
}

/** Turns a file-system failure into a `STORAGE_IO_ERROR`; coco errors pass through. */
export function ioError(error: unknown, what: string): CocoError {
  if (error instanceof CocoError) return error;
  const errno = errnoOf(error);
  const message = error instanceof Error ? error.message : String(error);
  return new CocoError(StorageErrorCode.StorageIo, `${what}: ${message}`, {
    cause: error,
    details: errno === undefined ? undefined : { errno },
  });
}

/** The `CANCELLED` error of a verb stopped after `done` of `total` bytes. */
export function stopped(ctx: StorageVerbContext, done: number, total: number): CocoError {
  return new CocoError(
    ErrorCode.Cancelled,
    `task ${ctx.taskId} stopped by request after ${done} of ${total} bytes`,
    { details: { bytes: done, total } },
  );
}
