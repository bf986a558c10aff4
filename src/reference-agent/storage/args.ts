/**
 * Arguments of the storage verbs (`./verbs.ts`): the name pattern, the size and chunk limits,
 * the zod schema of each verb's arguments, and the parse that refuses a start with a
 * `TASK_REJECTED` {@link CocoError} naming every bad field.
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, ErrorCode } from '../../core/errors.js';

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

const name = z.string().regex(STORAGE_NAME, 'must match /^[a-z0-9][a-z0-9._-]{0,63}$/');
const sha256Hex = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal digits')
  .transform((s) => s.toLowerCase());
const chunkBytes = z.number().int().min(MIN_CHUNK_BYTES).max(MAX_CHUNK_BYTES).optional();
/**
 * Slowest copy rate accepted: one sector a second. A rate limit is for sharing a disk's
 * bandwidth with the machines that use it, not for stopping a copy: that is what a stop is for.
 */
export const MIN_BYTES_PER_SECOND = 512;
const bytesPerSecond = z.number().int().min(MIN_BYTES_PER_SECOND).optional();

/** A volume: `{domain, volume}` (also the arguments of `volume.delete`). */
export const volumeRef = z.strictObject({ domain: name, volume: name });

/** Arguments of `volume.create`. */
export const createArgs = z.strictObject({
  domain: name,
  volume: name,
  // A whole number of bytes; the agent's cap (`./space.ts`) bounds it when the verb runs.
  sizeBytes: z.number().int().nonnegative(),
});

/**
 * Arguments of `volume.copy`: two different volumes; `bytesPerSecond` caps the copy's rate (a
 * live migration's bandwidth limit), unlimited when absent.
 */
export const copyArgs = z
  .strictObject({
    from: volumeRef,
    to: volumeRef,
    chunkBytes,
    bytesPerSecond,
  })
  .refine((a) => a.from.domain !== a.to.domain || a.from.volume !== a.to.volume, {
    message: 'must differ from "from" (a volume cannot be copied onto itself)',
    path: ['to'],
  });

/** Arguments of `volume.checksum`. */
export const checksumArgs = z.strictObject({ domain: name, volume: name, chunkBytes });

/** Arguments of `volume.verify` (the expected checksum is lower-cased). */
export const verifyArgs = z.strictObject({
  domain: name,
  volume: name,
  sha256: sha256Hex,
  chunkBytes,
});

/** Arguments of `volume.snapshot` and `volume.snapshot.delete`. */
export const snapshotArgs = z.strictObject({ domain: name, volume: name, snapshot: name });

/** Arguments of `volume.snapshot.restore`. */
export const restoreArgs = z.strictObject({
  domain: name,
  volume: name,
  snapshot: name,
  onlyIfMissing: z.boolean().optional(),
});

/** Arguments of `volume.fill`. */
export const fillArgs = z.strictObject({
  domain: name,
  volume: name,
  seed: z.union([z.string().min(1).max(256), z.number().int()]),
  chunkBytes,
});

/** Parses a verb's arguments, refusing the start with every bad field named. */
export function parseArgs<T>(verb: string, schema: z.ZodType<T>, args: unknown): T {
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
