/**
 * `disk.migrate`: live storage migration of a registered disk, a serial chain of the seven
 * stage commands of {@link ./stages.ts}.
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, defineCommand, type CommandType } from '../../src/index.js';
import {
  agentId,
  DiskErrorCode,
  diskName,
  getDisk,
  isAt,
  LOCATION_KIND,
  locationKey,
  lockDisk,
  parseRecord,
  releaseLocation,
  reserveLocation,
  unlockDisk,
  volumeRef,
  type VolumeRef,
} from './registry.js';
import {
  bytesPerSecond,
  checksumResult,
  chunkBytes,
  copyStage,
  createTargetStage,
  migrationStages,
  removeSnapshotStage,
  removeSourceStage,
  snapshotStage,
  switchStage,
  verifyStage,
  type ChecksumResult,
} from './stages.js';

const migrateParams = z.strictObject({
  disk: diskName,
  toDomain: diskName,
  /** The volume's name in the target domain. @default its name in the source domain */
  toVolume: diskName.optional(),
  agent: agentId,
  chunkBytes: chunkBytes.optional(),
  /** The copy's rate limit, in bytes a second. @default none */
  bytesPerSecond: bytesPerSecond.optional(),
});
/** Parameters of `disk.migrate`. */
export type DiskMigrateParams = z.infer<typeof migrateParams>;
/** Result of `disk.migrate`: where the disk is now and its checksum. */
export interface DiskMigrateResult extends ChecksumResult {
  readonly disk: string;
  readonly domain: string;
  readonly volume: string;
}

/** What `disk.migrate`'s first stage decides, kept in `ctx.data` for the next stages. */
const migrationPlan = z.strictObject({
  source: volumeRef,
  target: volumeRef,
  sizeBytes: z.number().int().nonnegative(),
  snapshot: diskName,
});
/** The migration plan: source and target volumes, size, automatic snapshot name. */
export type MigrationPlan = z.infer<typeof migrationPlan>;

/** Number of stage children of a migration: declared up front so it cannot end early. */
const MIGRATION_STAGES = migrationStages.length;

/**
 * `disk.migrate`: live storage migration as a serial chain, one child per stage (see
 * {@link ./stages.ts}): snapshot the source, create the target, copy, verify, switch the disk
 * to the target, remove the source, remove the snapshot. The disk is held (`migrating`) and the
 * target reserved from the first stage; on success the disk is `ready` on the target and the
 * source's location is freed. On failure the stages' undo steps run in reverse, then the
 * target is freed and the disk made `ready` — on its source.
 */
export const diskMigrate: CommandType<DiskMigrateParams> = defineCommand({
  name: 'disk.migrate',
  schema: migrateParams,
  async execute(ctx) {
    const { disk, toDomain, agent } = ctx.params;
    const record = await getDisk(ctx.entities, disk);
    const source: VolumeRef = { domain: record.domain, volume: record.volume };
    const target: VolumeRef = { domain: toDomain, volume: ctx.params.toVolume ?? record.volume };
    if (isAt(record, target))
      throw new CocoError(
        DiskErrorCode.SameLocation,
        `disk "${disk}" is already on ${locationKey(target)}`,
      );
    await lockDisk(ctx.entities, disk, 'migrating', ctx.command.id);
    await reserveLocation(ctx.entities, target, disk, ctx.command.id);
    // Named after the command: a re-run of this stage (after a crash) picks the same name.
    const plan: MigrationPlan = {
      source,
      target,
      sizeBytes: record.sizeBytes,
      snapshot: `auto-${ctx.command.id}`,
    };
    ctx.data.set(plan);
    ctx.expect({ children: MIGRATION_STAGES });
    ctx.addUndo('unlock');
    ctx.addUndo('releaseTarget', target);
    ctx.addChild(snapshotStage, { agent, ...source, snapshot: plan.snapshot });
  },
  next(ctx) {
    const { disk, agent, chunkBytes: chunk, bytesPerSecond: rate } = ctx.params;
    const { source, target, sizeBytes, snapshot } = parseRecord(
      migrationPlan,
      ctx.data.get(),
      'the migration plan',
    );
    const copied = (): ChecksumResult =>
      parseRecord(
        checksumResult,
        ctx.children.find((c) => c.type === copyStage.name)?.result,
        'the copy stage result',
      );
    switch (ctx.command.stage) {
      case 1:
        ctx.addChild(createTargetStage, { agent, ...target, sizeBytes });
        break;
      case 2:
        ctx.addChild(copyStage, {
          agent,
          from: source,
          to: target,
          ...(chunk === undefined ? {} : { chunkBytes: chunk }),
          ...(rate === undefined ? {} : { bytesPerSecond: rate }),
        });
        break;
      case 3:
        ctx.addChild(verifyStage, { agent, ...target, sha256: copied().sha256 });
        break;
      case 4:
        ctx.addChild(switchStage, { disk, from: source, to: target, sha256: copied().sha256 });
        break;
      case 5:
        ctx.addChild(removeSourceStage, { agent, ...source, snapshot });
        break;
      case 6:
        ctx.addChild(removeSnapshotStage, { agent, ...source, snapshot });
        break;
      default:
        break; // no child: the chain ends
    }
  },
  async onSuccess(ctx): Promise<DiskMigrateResult> {
    const { disk } = ctx.params;
    const { source, target } = parseRecord(migrationPlan, ctx.data.get(), 'the migration plan');
    const copied = parseRecord(
      checksumResult,
      ctx.children.find((c) => c.type === copyStage.name)?.result,
      'the copy stage result',
    );
    await unlockDisk(ctx.entities, disk, ctx.command.id);
    ctx.entities.delete(LOCATION_KIND, locationKey(source));
    return { disk, ...target, ...copied };
  },
  undo: {
    async releaseTarget(ctx, data) {
      await releaseLocation(
        ctx.entities,
        parseRecord(volumeRef, data, 'the target'),
        ctx.command.id,
      );
    },
    async unlock(ctx) {
      await unlockDisk(ctx.entities, ctx.params.disk, ctx.command.id);
    },
  },
});
