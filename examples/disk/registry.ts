/**
 * The disk registry of the disk command pack, kept with `ctx.entities` so that every change
 * commits atomically with the handler that makes it:
 *
 * - kind `disk`, id = the disk's name: {@link DiskRecord} — where the disk's volume lives, its
 *   size, its last known checksum, and whether a command holds it (`state` other than
 *   `ready`, with `lockedBy` naming that command);
 * - kind `volume`, id = `<domain>/<volume>`: {@link LocationRecord} — which disk uses (or is
 *   about to use) that volume, so two disks never share one and no command overwrites a
 *   volume it does not own.
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, type EntityAccess, type Json } from '../../src/index.js';

/** Entity kind of disks. */
export const DISK_KIND = 'disk';
/** Entity kind of the location index (`<domain>/<volume>` -> disk). */
export const LOCATION_KIND = 'volume';

/**
 * Names of disks, domains and volumes: the storage agent's own name rule (see
 * `src/reference-agent/storage/verbs.ts`), repeated here because the pack uses only the public API; a
 * bad name is then refused at submit, not by the agent halfway through a chain.
 */
export const diskName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'must match /^[a-z0-9][a-z0-9._-]{0,63}$/');

/** Agent ids: any non-empty string the broker knows. */
export const agentId = z.string().min(1).max(128);

/** A volume's address on the storage agents. */
export const volumeRef = z.strictObject({ domain: diskName, volume: diskName });
/** A volume's address on the storage agents. */
export type VolumeRef = z.infer<typeof volumeRef>;

/** A sha256 as lower-case hex. */
export const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');

/** What a disk is doing: `ready` is free; anything else is held by `lockedBy`. */
export const diskState = z.enum(['creating', 'ready', 'copying', 'migrating', 'deleting']);
/** What a disk is doing. */
export type DiskState = z.infer<typeof diskState>;

/** A registered disk (entity kind `disk`). */
export const diskRecord = z.strictObject({
  domain: diskName,
  volume: diskName,
  sizeBytes: z.number().int().nonnegative(),
  /** Checksum of the data, when known (after a fill, a copy or a migration). */
  sha256: sha256Hex.optional(),
  state: diskState,
  /** The command holding the disk, while `state` is not `ready`. */
  lockedBy: z.number().int().optional(),
});
/** A registered disk (entity kind `disk`). */
export type DiskRecord = z.infer<typeof diskRecord>;

/** An entry of the location index (entity kind `volume`). */
export const locationRecord = z.strictObject({
  disk: diskName,
  /** The command that reserved the location for the disk. */
  commandId: z.number().int(),
});
/** An entry of the location index (entity kind `volume`). */
export type LocationRecord = z.infer<typeof locationRecord>;

/** Stable codes of the pack's own failures. */
export const DiskErrorCode = {
  /** No disk of that name is registered. */
  DiskNotFound: 'DISK_NOT_FOUND',
  /** A disk of that name is already registered. */
  DiskExists: 'DISK_EXISTS',
  /** Another command holds the disk. */
  DiskLocked: 'DISK_LOCKED',
  /** The target volume belongs to (or is reserved for) a disk. */
  VolumeInUse: 'VOLUME_IN_USE',
  /** A migration or copy onto the disk's own volume. */
  SameLocation: 'SAME_LOCATION',
  /** The disk is neither where a stage expected it nor where it moves it. */
  DiskMoved: 'DISK_MOVED',
  /** A stored record or a task result does not have the expected shape. */
  RecordInvalid: 'DISK_RECORD_INVALID',
} as const;

/** The location index key of a volume. */
export function locationKey(ref: VolumeRef): string {
  return `${ref.domain}/${ref.volume}`;
}

/** Whether a disk record points at `ref`. */
export function isAt(record: DiskRecord, ref: VolumeRef): boolean {
  return record.domain === ref.domain && record.volume === ref.volume;
}

/** Parses a stored record or a task result; a mismatch fails with `DISK_RECORD_INVALID`. */
export function parseRecord<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new CocoError(
    DiskErrorCode.RecordInvalid,
    `${what} is malformed: ${z.prettifyError(parsed.error)}`,
  );
}

/** A disk record as JSON (optional fields left out rather than `undefined`). */
export function diskJson(record: DiskRecord): Json {
  const { sha256, lockedBy, ...rest } = record;
  return {
    ...rest,
    ...(sha256 === undefined ? {} : { sha256 }),
    ...(lockedBy === undefined ? {} : { lockedBy }),
  };
}

/** Reads a disk; `undefined` if it is not registered. */
export async function findDisk(
  entities: EntityAccess,
  disk: string,
): Promise<DiskRecord | undefined> {
  const value = await entities.get(DISK_KIND, disk);
  return value === undefined ? undefined : parseRecord(diskRecord, value, `disk "${disk}"`);
}

/** Reads a disk that must be registered. */
export async function getDisk(entities: EntityAccess, disk: string): Promise<DiskRecord> {
  const record = await findDisk(entities, disk);
  if (record === undefined)
    throw new CocoError(DiskErrorCode.DiskNotFound, `disk "${disk}" is not registered`, {
      details: { disk },
    });
  return record;
}

/** Writes a disk record. */
export function putDisk(entities: EntityAccess, disk: string, record: DiskRecord): void {
  entities.put(DISK_KIND, disk, diskJson(record));
}

/**
 * Takes a ready disk for `commandId`, in `state`: the write commits with the calling handler.
 * Fails with `DISK_LOCKED` if another command holds it.
 */
export async function lockDisk(
  entities: EntityAccess,
  disk: string,
  state: Exclude<DiskState, 'ready' | 'creating'>,
  commandId: number,
): Promise<DiskRecord> {
  const record = await getDisk(entities, disk);
  if (record.state !== 'ready') {
    throw new CocoError(
      DiskErrorCode.DiskLocked,
      `disk "${disk}" is ${record.state} (command ${record.lockedBy ?? '?'})`,
      { details: { disk, state: record.state, lockedBy: record.lockedBy } },
    );
  }
  const locked: DiskRecord = { ...record, state, lockedBy: commandId };
  putDisk(entities, disk, locked);
  return locked;
}

/** Makes the disk ready again if `commandId` holds it (idempotent; other holders untouched). */
export async function unlockDisk(
  entities: EntityAccess,
  disk: string,
  commandId: number,
): Promise<void> {
  const record = await findDisk(entities, disk);
  if (record === undefined || record.lockedBy !== commandId) return;
  const { lockedBy: _held, ...rest } = record;
  putDisk(entities, disk, { ...rest, state: 'ready' });
}

/** Who uses a volume, if anyone. */
export async function findLocation(
  entities: EntityAccess,
  ref: VolumeRef,
): Promise<LocationRecord | undefined> {
  const key = locationKey(ref);
  const value = await entities.get(LOCATION_KIND, key);
  return value === undefined ? undefined : parseRecord(locationRecord, value, `volume "${key}"`);
}

/** Reserves a free volume for `disk`; fails with `VOLUME_IN_USE` if it is taken. */
export async function reserveLocation(
  entities: EntityAccess,
  ref: VolumeRef,
  disk: string,
  commandId: number,
): Promise<void> {
  await assertLocationFree(entities, ref);
  entities.put(LOCATION_KIND, locationKey(ref), { disk, commandId });
}

/** Frees a volume reserved by `commandId` (idempotent; reservations of others untouched). */
export async function releaseLocation(
  entities: EntityAccess,
  ref: VolumeRef,
  commandId: number,
): Promise<void> {
  const held = await findLocation(entities, ref);
  if (held !== undefined && held.commandId === commandId)
    entities.delete(LOCATION_KIND, locationKey(ref));
}

/** Fails with `VOLUME_IN_USE` if a disk uses (or is about to use) the volume. */
export async function assertLocationFree(entities: EntityAccess, ref: VolumeRef): Promise<void> {
  const taken = await findLocation(entities, ref);
  if (taken !== undefined) {
    throw new CocoError(
      DiskErrorCode.VolumeInUse,
      `volume ${locationKey(ref)} belongs to disk "${taken.disk}"`,
      { details: { ...ref, disk: taken.disk } },
    );
  }
}
