/**
 * A command pack for disks on storage agents (the storage verbs of `src/reference-agent/storage/verbs.ts`),
 * built on coco's public API only. Disks are registered with `ctx.entities` (see
 * {@link ./registry.ts}); every command holds the disk it works on (`state` + `lockedBy`) and
 * releases it when it ends, whichever way.
 *
 * - `disk.create` — create a volume (and fill it from a seed), register the disk.
 * - `disk.delete` — delete the volume and unregister the disk.
 * - `disk.copy` — copy the disk's volume elsewhere and verify it (nothing new is registered).
 * - `disk.migrate` ({@link ./migrate.ts}) — live storage migration: a serial chain of seven
 *   stage commands ({@link ./stages.ts}) that moves the disk to another domain and undoes
 *   itself on failure.
 *
 * @example
 * ```ts
 * const engine = createEngine({ store, agents, commands: diskCommands });
 * await engine.submit(diskCreate, { disk: 'd1', domain: 'sd1', sizeBytes: 4 << 20, agent: 'host-1', seed: 7 });
 * await engine.submit(diskMigrate, { disk: 'd1', toDomain: 'sd2', agent: 'host-1' });
 * ```
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, defineCommand, type CommandType } from '../../src/index.js';
import {
  agentId,
  DISK_KIND,
  DiskErrorCode,
  diskName,
  findDisk,
  getDisk,
  isAt,
  LOCATION_KIND,
  locationKey,
  lockDisk,
  parseRecord,
  putDisk,
  releaseLocation,
  reserveLocation,
  unlockDisk,
  type VolumeRef,
} from './registry.js';
import {
  checksumResult,
  chunkBytes,
  deleteVolumeTask,
  MAX_VOLUME_BYTES,
  migrationStages,
  taskResult,
  type ChecksumResult,
} from './stages.js';
import { diskMigrate } from './migrate.js';

export * from './registry.js';
export * from './stages.js';
export * from './migrate.js';

const createParams = z.strictObject({
  disk: diskName,
  domain: diskName,
  /** The volume's name in its domain. @default the disk's name */
  volume: diskName.optional(),
  sizeBytes: z.number().int().nonnegative().max(MAX_VOLUME_BYTES),
  agent: agentId,
  /** Fill the volume with deterministic data from this seed (else it stays sparse, all zeros). */
  seed: z.union([z.string().min(1).max(256), z.number().int()]).optional(),
});
/** Parameters of `disk.create`. */
export type DiskCreateParams = z.infer<typeof createParams>;
/** Result of `disk.create`. */
export interface DiskCreateResult {
  readonly disk: string;
  readonly domain: string;
  readonly volume: string;
  readonly sizeBytes: number;
  readonly sha256: string | null;
}

/**
 * `disk.create`: registers the disk (held in state `creating`) and reserves its volume, creates
 * the volume, then fills it when a seed is given; on success the disk is `ready` with the
 * fill's checksum. Undo: deletes the volume, then unregisters the disk.
 */
export const diskCreate: CommandType<DiskCreateParams> = defineCommand({
  name: 'disk.create',
  schema: createParams,
  async execute(ctx) {
    const { disk, domain, sizeBytes, agent, seed } = ctx.params;
    const volume = ctx.params.volume ?? disk;
    if ((await findDisk(ctx.entities, disk)) !== undefined)
      throw new CocoError(DiskErrorCode.DiskExists, `disk "${disk}" is already registered`, {
        details: { disk },
      });
    await reserveLocation(ctx.entities, { domain, volume }, disk, ctx.command.id);
    putDisk(ctx.entities, disk, {
      domain,
      volume,
      sizeBytes,
      state: 'creating',
      lockedBy: ctx.command.id,
    });
    ctx.expect({ tasks: seed === undefined ? 1 : 2 });
    ctx.addUndo('unregister');
    ctx.addUndo('deleteVolume');
    ctx.startTask({ agent, verb: 'volume.create', args: { domain, volume, sizeBytes } });
  },
  next(ctx) {
    const { disk, domain, seed, agent } = ctx.params;
    if (ctx.command.stage === 1 && seed !== undefined)
      ctx.startTask({
        agent,
        verb: 'volume.fill',
        args: { domain, volume: ctx.params.volume ?? disk, seed },
      });
  },
  onSuccess(ctx): DiskCreateResult {
    const { disk, domain, sizeBytes } = ctx.params;
    const volume = ctx.params.volume ?? disk;
    const fill = ctx.tasks[1];
    const sha256 =
      fill === undefined
        ? null
        : parseRecord(checksumResult, fill.result, 'the fill result').sha256;
    putDisk(ctx.entities, disk, {
      domain,
      volume,
      sizeBytes,
      state: 'ready',
      ...(sha256 === null ? {} : { sha256 }),
    });
    return { disk, domain, volume, sizeBytes, sha256 };
  },
  undo: {
    async deleteVolume(ctx) {
      const { disk, domain, agent } = ctx.params;
      await deleteVolumeTask(ctx, agent, { domain, volume: ctx.params.volume ?? disk });
    },
    async unregister(ctx) {
      const { disk, domain } = ctx.params;
      const record = await findDisk(ctx.entities, disk);
      if (record?.lockedBy === ctx.command.id) ctx.entities.delete(DISK_KIND, disk);
      await releaseLocation(
        ctx.entities,
        { domain, volume: ctx.params.volume ?? disk },
        ctx.command.id,
      );
    },
  },
});

const deleteParams = z.strictObject({ disk: diskName, agent: agentId });
/** Parameters of `disk.delete`. */
export type DiskDeleteParams = z.infer<typeof deleteParams>;

/**
 * `disk.delete`: holds the disk (`deleting`), deletes its volume, then unregisters it and frees
 * its location. Deleting an unregistered disk succeeds with `{deleted: false}`. Undo: makes
 * the disk `ready` again (the volume deletion either happened whole or not at all).
 */
export const diskDelete: CommandType<DiskDeleteParams> = defineCommand({
  name: 'disk.delete',
  schema: deleteParams,
  async execute(ctx) {
    const { disk, agent } = ctx.params;
    if ((await findDisk(ctx.entities, disk)) === undefined) return; // nothing to delete
    const record = await lockDisk(ctx.entities, disk, 'deleting', ctx.command.id);
    ctx.expect({ tasks: 1 });
    ctx.addUndo('unlock');
    ctx.startTask({
      agent,
      verb: 'volume.delete',
      args: { domain: record.domain, volume: record.volume },
    });
  },
  async onSuccess(ctx) {
    const { disk } = ctx.params;
    if (ctx.tasks.length === 0) return { disk, deleted: false };
    const record = await getDisk(ctx.entities, disk);
    ctx.entities.delete(DISK_KIND, disk);
    ctx.entities.delete(LOCATION_KIND, locationKey(record));
    return { disk, deleted: true };
  },
  undo: {
    async unlock(ctx) {
      await unlockDisk(ctx.entities, ctx.params.disk, ctx.command.id);
    },
  },
});

const copyParams = z.strictObject({
  disk: diskName,
  toDomain: diskName,
  toVolume: diskName,
  agent: agentId,
  chunkBytes: chunkBytes.optional(),
});
/** Parameters of `disk.copy`. */
export type DiskCopyParams = z.infer<typeof copyParams>;
/** Result of `disk.copy`: where the copy is and its checksum. */
export interface DiskCopyResult extends ChecksumResult {
  readonly disk: string;
  readonly domain: string;
  readonly volume: string;
}

/**
 * `disk.copy`: holds the disk (`copying`) and reserves the target volume for the duration,
 * copies (stage 0), then verifies the copy against the copy's checksum (stage 1). The copy is
 * not registered; the disk's record learns its checksum. Undo: deletes the (partial) copy,
 * frees the target, makes the disk `ready`.
 */
export const diskCopy: CommandType<DiskCopyParams> = defineCommand({
  name: 'disk.copy',
  schema: copyParams,
  async execute(ctx) {
    const { disk, toDomain, toVolume, agent, chunkBytes: chunk } = ctx.params;
    const target: VolumeRef = { domain: toDomain, volume: toVolume };
    const record = await getDisk(ctx.entities, disk);
    if (isAt(record, target))
      throw new CocoError(
        DiskErrorCode.SameLocation,
        `disk "${disk}" is already on ${locationKey(target)}`,
      );
    await lockDisk(ctx.entities, disk, 'copying', ctx.command.id);
    await reserveLocation(ctx.entities, target, disk, ctx.command.id);
    ctx.expect({ tasks: 2 });
    ctx.addUndo('unlock');
    ctx.addUndo('removeCopy');
    ctx.startTask({
      agent,
      verb: 'volume.copy',
      args: {
        from: { domain: record.domain, volume: record.volume },
        to: target,
        ...(chunk === undefined ? {} : { chunkBytes: chunk }),
      },
    });
  },
  next(ctx) {
    if (ctx.command.stage !== 1) return;
    const { sha256 } = taskResult(ctx.tasks, checksumResult, 'the copy result');
    const { agent, toDomain, toVolume } = ctx.params;
    ctx.startTask({
      agent,
      verb: 'volume.verify',
      args: { domain: toDomain, volume: toVolume, sha256 },
    });
  },
  async onSuccess(ctx): Promise<DiskCopyResult> {
    const { disk, toDomain, toVolume } = ctx.params;
    const copied = taskResult(ctx.tasks, checksumResult, 'the copy result');
    const record = await getDisk(ctx.entities, disk);
    const { lockedBy: _held, ...rest } = record;
    putDisk(ctx.entities, disk, { ...rest, state: 'ready', sha256: copied.sha256 });
    await releaseLocation(ctx.entities, { domain: toDomain, volume: toVolume }, ctx.command.id);
    return { disk, domain: toDomain, volume: toVolume, ...copied };
  },
  undo: {
    async removeCopy(ctx) {
      const { agent, toDomain, toVolume } = ctx.params;
      await deleteVolumeTask(ctx, agent, { domain: toDomain, volume: toVolume });
      await releaseLocation(ctx.entities, { domain: toDomain, volume: toVolume }, ctx.command.id);
    },
    async unlock(ctx) {
      await unlockDisk(ctx.entities, ctx.params.disk, ctx.command.id);
    },
  },
});

/** Every command type of the pack (give them all to the engine: stages are children). */
export const diskCommands: readonly CommandType[] = [
  diskCreate,
  diskDelete,
  diskCopy,
  diskMigrate,
  ...migrationStages,
];
