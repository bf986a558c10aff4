/**
 * The stages of a live disk migration, one child command type each. Every stage gets its own
 * complete parameters from the migration (it never looks at its parent's), runs at most one
 * task, and records the undo step that reverts what it did:
 *
 * | # | stage | task | undo |
 * | --- | --- | --- | --- |
 * | 1 | `disk.migrate.snapshot` | `volume.snapshot` of the source | delete the snapshot |
 * | 2 | `disk.migrate.create-target` | `volume.create` of the target | delete the target |
 * | 3 | `disk.migrate.copy` | `volume.copy` source → target | delete the (partial) target |
 * | 4 | `disk.migrate.verify` | `volume.verify` of the target | — (reads only) |
 * | 5 | `disk.migrate.switch` | — (entity write) | point the disk back at the source |
 * | 6 | `disk.migrate.remove-source` | `volume.delete` of the source | restore the source from the snapshot |
 * | 7 | `disk.migrate.remove-snapshot` | `volume.snapshot.delete` | — (the last step) |
 *
 * Every stage is child-only: submitted on its own it would move or delete a volume behind the
 * registry's back (a ready disk's source removed, say), so the engine refuses it; only
 * `disk.migrate` creates them, with the disk held.
 *
 * Undo steps run in reverse order, and a failed stage runs its own undo before its parent
 * compensates the stages that succeeded, so a migration that fails anywhere ends with the
 * disk on its source, the source intact, and no target or snapshot left behind.
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, defineCommand, type Json, type UndoContext } from '../../src/index.js';
import {
  agentId,
  diskName,
  diskRecord,
  DiskErrorCode,
  findDisk,
  getDisk,
  isAt,
  locationKey,
  parseRecord,
  putDisk,
  sha256Hex,
  volumeRef,
} from './registry.js';

/** What `volume.copy`, `volume.checksum`, `volume.verify` and `volume.fill` return. */
export const checksumResult = z.object({ sha256: sha256Hex, bytes: z.number().int() });
/** What `volume.copy`, `volume.checksum`, `volume.verify` and `volume.fill` return. */
export type ChecksumResult = z.infer<typeof checksumResult>;

/** Copy chunk sizes the storage agent accepts (its own bounds: one sector to 64 MiB). */
export const chunkBytes = z
  .number()
  .int()
  .min(512)
  .max(64 * 1024 * 1024);

/**
 * A copy's rate limit, in bytes a second (the storage agent's own lower bound: one sector a
 * second). A live migration shares the disks with the machines that use them.
 */
export const bytesPerSecond = z.number().int().min(512);

/**
 * Largest volume the pack accepts at submit: a bound of sanity only. Each storage agent refuses
 * volumes over its own cap (`coco agent --max-volume-bytes`, 1 TiB by default) with
 * `VOLUME_TOO_LARGE`, which the pack cannot know at submit.
 */
export const MAX_VOLUME_BYTES = 2 ** 44;

/** The task result of a stage's only task, checked. */
export function taskResult<T>(
  tasks: readonly { readonly result: unknown }[],
  schema: z.ZodType<T>,
  what: string,
): T {
  return parseRecord(schema, tasks[0]?.result, what);
}

/** Runs `volume.delete` from an undo step (missing volumes count as deleted). */
export async function deleteVolumeTask(
  ctx: UndoContext<unknown>,
  agent: string,
  ref: z.infer<typeof volumeRef>,
): Promise<void> {
  await ctx.runTask({ agent, verb: 'volume.delete', args: { ...ref } });
}

const snapshotParams = z.strictObject({
  agent: agentId,
  domain: diskName,
  volume: diskName,
  snapshot: diskName,
});
/** Parameters of the snapshot stages (1, 6, 7): a volume, its automatic snapshot, the agent. */
export type SnapshotStageParams = z.infer<typeof snapshotParams>;

/** Stage 1: takes the automatic snapshot of the source. Undo: deletes it. */
export const snapshotStage = defineCommand({
  name: 'disk.migrate.snapshot',
  childOnly: true,
  createdBy: ['disk.migrate'],
  schema: snapshotParams,
  execute(ctx) {
    const { agent, ...args } = ctx.params;
    ctx.expect({ tasks: 1 });
    ctx.addUndo('removeSnapshot');
    ctx.startTask({ agent, verb: 'volume.snapshot', args });
  },
  onSuccess: (ctx) => ({ snapshot: ctx.params.snapshot }),
  undo: {
    async removeSnapshot(ctx) {
      const { agent, ...args } = ctx.params;
      await ctx.runTask({ agent, verb: 'volume.snapshot.delete', args });
    },
  },
});

const createTargetParams = z.strictObject({
  agent: agentId,
  domain: diskName,
  volume: diskName,
  sizeBytes: z.number().int().nonnegative().max(MAX_VOLUME_BYTES),
});
/** Parameters of stage 2. */
export type CreateTargetParams = z.infer<typeof createTargetParams>;

/** Stage 2: creates the (sparse) target volume. Undo: deletes it. */
export const createTargetStage = defineCommand({
  name: 'disk.migrate.create-target',
  childOnly: true,
  createdBy: ['disk.migrate'],
  schema: createTargetParams,
  execute(ctx) {
    const { agent, ...args } = ctx.params;
    ctx.expect({ tasks: 1 });
    ctx.addUndo('removeTarget');
    ctx.startTask({ agent, verb: 'volume.create', args });
  },
  undo: {
    async removeTarget(ctx) {
      const { agent, domain, volume } = ctx.params;
      await deleteVolumeTask(ctx, agent, { domain, volume });
    },
  },
});

const copyParams = z.strictObject({
  agent: agentId,
  from: volumeRef,
  to: volumeRef,
  chunkBytes: chunkBytes.optional(),
  /** The copy's rate limit. @default none */
  bytesPerSecond: bytesPerSecond.optional(),
});
/** Parameters of stage 3. */
export type CopyStageParams = z.infer<typeof copyParams>;

/** Stage 3: copies the data, with progress. Result: `{sha256, bytes}` of the data copied. Undo: deletes the (partial) target. */
export const copyStage = defineCommand({
  name: 'disk.migrate.copy',
  childOnly: true,
  createdBy: ['disk.migrate'],
  schema: copyParams,
  execute(ctx) {
    const { agent, from, to, chunkBytes: chunk, bytesPerSecond: rate } = ctx.params;
    ctx.expect({ tasks: 1 });
    // Recorded before the task exists: a copy that fails or stops halfway has written part of
    // the target, and only this step knows to remove it.
    ctx.addUndo('removePartialTarget');
    ctx.startTask({
      agent,
      verb: 'volume.copy',
      args: {
        from: { ...from },
        to: { ...to },
        ...(chunk === undefined ? {} : { chunkBytes: chunk }),
        ...(rate === undefined ? {} : { bytesPerSecond: rate }),
      },
    });
  },
  onSuccess: (ctx): ChecksumResult => taskResult(ctx.tasks, checksumResult, 'the copy result'),
  undo: {
    async removePartialTarget(ctx) {
      await deleteVolumeTask(ctx, ctx.params.agent, ctx.params.to);
    },
  },
});

const verifyParams = z.strictObject({
  agent: agentId,
  domain: diskName,
  volume: diskName,
  sha256: sha256Hex,
});
/** Parameters of stage 4. */
export type VerifyStageParams = z.infer<typeof verifyParams>;

/** Stage 4: checks the target's checksum against the copy's (`CHECKSUM_MISMATCH` if not). No undo: it only reads. */
export const verifyStage = defineCommand({
  name: 'disk.migrate.verify',
  childOnly: true,
  createdBy: ['disk.migrate'],
  schema: verifyParams,
  execute(ctx) {
    const { agent, ...args } = ctx.params;
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent, verb: 'volume.verify', args });
  },
  onSuccess: (ctx): ChecksumResult => taskResult(ctx.tasks, checksumResult, 'the verify result'),
});

const switchParams = z.strictObject({
  disk: diskName,
  from: volumeRef,
  to: volumeRef,
  sha256: sha256Hex,
});
/** Parameters of stage 5. */
export type SwitchStageParams = z.infer<typeof switchParams>;

/**
 * Stage 5: points the disk's entity at the target (the write commits with this stage). Only a
 * disk held by this migration (its parent) and still on the source is switched.
 * Undo: points it back at the source, with its previous checksum.
 */
export const switchStage = defineCommand({
  name: 'disk.migrate.switch',
  childOnly: true,
  createdBy: ['disk.migrate'],
  schema: switchParams,
  async execute(ctx) {
    const { disk, from, to, sha256 } = ctx.params;
    ctx.expect({ tasks: 0, children: 0 });
    const record = await getDisk(ctx.entities, disk);
    if (!isAt(record, from) || record.lockedBy !== ctx.command.parentId) {
      throw new CocoError(
        DiskErrorCode.DiskMoved,
        `disk "${disk}" is on ${locationKey(record)} held by command ${record.lockedBy ?? 'none'}, ` +
          `not on ${locationKey(from)} held by command ${ctx.command.parentId ?? 'none'}`,
        {
          details: {
            disk,
            expected: from,
            actual: { domain: record.domain, volume: record.volume },
          },
        },
      );
    }
    // The record as it was: what the undo puts back (stored with the step it protects).
    ctx.addUndo('switchBack', {
      domain: from.domain,
      volume: from.volume,
      sha256: record.sha256 ?? null,
    });
    putDisk(ctx.entities, disk, { ...record, domain: to.domain, volume: to.volume, sha256 });
  },
  onSuccess: (ctx) => ({ disk: ctx.params.disk, ...ctx.params.to }),
  undo: {
    async switchBack(ctx, data: Json | undefined) {
      const { disk, to } = ctx.params;
      const previous = parseRecord(
        z.object({ domain: diskName, volume: diskName, sha256: sha256Hex.nullable() }),
        data,
        'the switch undo data',
      );
      const record = await findDisk(ctx.entities, disk);
      // Only a disk still on the target goes back: running this step twice changes nothing.
      if (record === undefined || !isAt(record, to)) return;
      const { sha256: _target, ...rest } = parseRecord(diskRecord, record, `disk "${disk}"`);
      putDisk(ctx.entities, disk, {
        ...rest,
        domain: previous.domain,
        volume: previous.volume,
        ...(previous.sha256 === null ? {} : { sha256: previous.sha256 }),
      });
    },
  },
});

/**
 * Stage 6: deletes the source volume. Undo: recreates it from the automatic snapshot (still
 * there: it is removed only by the last stage), unless it still exists.
 */
export const removeSourceStage = defineCommand({
  name: 'disk.migrate.remove-source',
  childOnly: true,
  createdBy: ['disk.migrate'],
  schema: snapshotParams,
  execute(ctx) {
    const { agent, domain, volume } = ctx.params;
    ctx.expect({ tasks: 1 });
    ctx.addUndo('restoreSource');
    ctx.startTask({ agent, verb: 'volume.delete', args: { domain, volume } });
  },
  undo: {
    async restoreSource(ctx) {
      const { agent, ...args } = ctx.params;
      await ctx.runTask({
        agent,
        verb: 'volume.snapshot.restore',
        args: { ...args, onlyIfMissing: true },
      });
    },
  },
});

/**
 * Stage 7: deletes the automatic snapshot. No undo: it is the last stage, and a snapshot
 * deletion cannot be taken back (if it fails, the snapshot is still there for stage 6's undo).
 */
export const removeSnapshotStage = defineCommand({
  name: 'disk.migrate.remove-snapshot',
  childOnly: true,
  createdBy: ['disk.migrate'],
  schema: snapshotParams,
  execute(ctx) {
    const { agent, ...args } = ctx.params;
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent, verb: 'volume.snapshot.delete', args });
  },
});

/** The migration's stage types, in the order they run. */
export const migrationStages = [
  snapshotStage,
  createTargetStage,
  copyStage,
  verifyStage,
  switchStage,
  removeSourceStage,
  removeSnapshotStage,
] as const;
