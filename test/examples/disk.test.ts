/**
 * The disk command pack, run by the real engine (SQLite file) with in-process agents whose
 * verbs are the real storage verbs on a temporary folder: migrations that succeed, and
 * migrations that fail at the copy, after the switch, and at the very last stage — each one
 * ending with the disk where its entity says, its data intact, and nothing left behind.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CocoError } from '../../src/core/errors.js';
import {
  storageVerbs,
  type StorageVerbContext,
  type Verb,
} from '../../src/reference-agent/storage/verbs.js';
import {
  diskCommands,
  diskCopy,
  diskCreate,
  diskDelete,
  diskMigrate,
  migrationStages,
  type DiskRecord,
} from '../../examples/disk/index.js';
import {
  assertNoLeakedEngines,
  gate,
  startEnv,
  tempDir,
  type TestEnv,
} from '../support/harness.js';

const MiB = 1024 * 1024;
/** A few MiB with a short last chunk: enough chunks to copy, small for a shared machine. */
const SIZE = 3 * MiB + 4_321;
const CHUNK = 128 * 1024;
const AGENT = 'host-1';

/** One verb call, as the agent saw it. */
interface Call {
  readonly verb: string;
  readonly args: Record<string, unknown>;
}

/** A fault: replaces a verb's run for the calls it matches (`undefined`: run the real verb). */
type Fault = (call: Call, real: Verb, ctx: StorageVerbContext) => Promise<unknown> | undefined;

let root: string;
let calls: Call[];
let fault: Fault | undefined;
let env: TestEnv | undefined;

/** The storage verbs, recording every call and passing it through {@link fault}. */
function instrumented(): Record<string, Verb> {
  const verbs: Record<string, Verb> = {};
  for (const [name, real] of Object.entries(storageVerbs(root))) {
    verbs[name] = (args, ctx) => {
      const call = { verb: name, args: args as Record<string, unknown> };
      calls.push(call);
      return fault?.(call, real, ctx) ?? real(args, ctx);
    };
  }
  return verbs;
}

beforeEach(() => {
  root = tempDir('coco-disk-storage-');
  calls = [];
  fault = undefined;
});

afterEach(async () => {
  await env?.cleanup();
  env = undefined;
  rmSync(root, { recursive: true, force: true });
  await assertNoLeakedEngines();
});

async function start(): Promise<TestEnv> {
  env = await startEnv({ commands: diskCommands, agents: [AGENT], verbs: instrumented() });
  return env;
}

const file = (domain: string, volume: string): string => join(root, domain, `${volume}.img`);
const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
/** Image files of a domain (volumes and snapshots, temporary files too), sorted. */
const filesOf = (domain: string): string[] =>
  existsSync(join(root, domain)) ? readdirSync(join(root, domain)).sort() : [];

async function disk(e: TestEnv, name: string): Promise<DiskRecord | undefined> {
  return (await e.store.getEntity('disk', name))?.value as DiskRecord | undefined;
}

async function location(e: TestEnv, key: string): Promise<unknown> {
  return (await e.store.getEntity('volume', key))?.value;
}

/** Creates disk `d1` on `sd1`, filled from a seed; returns its checksum. */
async function createDisk(e: TestEnv): Promise<string> {
  const { id } = await e.engine.submit(diskCreate, {
    disk: 'd1',
    domain: 'sd1',
    sizeBytes: SIZE,
    agent: AGENT,
    seed: 'demo',
  });
  const ended = await e.engine.waitFor(id);
  expect(ended.status).toBe('succeeded');
  const checksum = sha(file('sd1', 'd1'));
  expect(ended.result).toEqual({
    disk: 'd1',
    domain: 'sd1',
    volume: 'd1',
    sizeBytes: SIZE,
    sha256: checksum,
  });
  calls = [];
  e.agent(AGENT).resetCounters();
  return checksum;
}

/** A verb call by name and volume, for readable order assertions. */
const described = (c: Call): string => {
  const a = c.args;
  const to = a.to as { domain: string; volume: string } | undefined;
  const where = to ? `${to.domain}/${to.volume}` : `${String(a.domain)}/${String(a.volume)}`;
  return `${c.verb} ${where}${typeof a.snapshot === 'string' ? '@' : ''}`;
};

/** Runs the real copy, but fails it with an I/O error once it has written `percent`. */
function copyFailingAt(percent: number): Fault {
  return (call, real, ctx) => {
    if (call.verb !== 'volume.copy') return undefined;
    const inner = new AbortController();
    const progress = (p: number): void => {
      ctx.progress(p);
      if (p >= percent) inner.abort();
    };
    const signal = AbortSignal.any([ctx.signal, inner.signal]);
    return Promise.resolve(real(call.args, { taskId: ctx.taskId, signal, progress })).catch(
      (error: unknown) => {
        if (!inner.signal.aborted) throw error;
        const to = call.args.to as { domain: string; volume: string };
        const from = call.args.from as { domain: string; volume: string };
        partialCopied = copiedPrefix(file(from.domain, from.volume), file(to.domain, to.volume));
        throw new CocoError('STORAGE_IO_ERROR', 'injected: no space left on device');
      },
    );
  };
}
/** Bytes of the source found at the start of the target when the injected failure hit. */
let partialCopied = 0;

/** How many leading bytes of `target` equal `source`'s, in whole chunks. */
function copiedPrefix(source: string, target: string): number {
  const a = readFileSync(source);
  const b = readFileSync(target);
  let n = 0;
  while (n < a.length && a.subarray(n, n + CHUNK).equals(b.subarray(n, n + CHUNK))) n += CHUNK;
  return Math.min(n, a.length);
}

/** Fails the matching calls (the first `times` of them) with an I/O error. */
function failing(match: (c: Call) => boolean, times = Infinity): Fault {
  let left = times;
  return (call) => {
    if (!match(call) || left-- <= 0) return undefined;
    return Promise.reject(new CocoError('STORAGE_IO_ERROR', `injected: ${call.verb} failed`));
  };
}

describe('disk.migrate', () => {
  it('moves a disk: data intact, source and snapshot gone, entity on the target, each stage once', async () => {
    const e = await start();
    const before = await createDisk(e);
    const { id } = await e.engine.submit(diskMigrate, {
      disk: 'd1',
      toDomain: 'sd2',
      agent: AGENT,
      chunkBytes: CHUNK,
    });
    const ended = await e.engine.waitFor(id);
    expect(ended.status).toBe('succeeded');
    expect(ended.result).toEqual({
      disk: 'd1',
      domain: 'sd2',
      volume: 'd1',
      sha256: before,
      bytes: SIZE,
    });

    expect(sha(file('sd2', 'd1'))).toBe(before);
    expect(filesOf('sd2')).toEqual(['d1.img']);
    expect(filesOf('sd1')).toEqual([]); // no source, no snapshot, no temporary file
    expect(await disk(e, 'd1')).toEqual({
      domain: 'sd2',
      volume: 'd1',
      sizeBytes: SIZE,
      sha256: before,
      state: 'ready',
    });
    expect(await location(e, 'sd2/d1')).toEqual({ disk: 'd1', commandId: id });
    expect(await location(e, 'sd1/d1')).toBeUndefined();

    // One child per stage, in order, each created and run once, each with one task.
    const details = (await e.engine.inspect(id))!;
    expect(details.children.map((c) => [c.type, c.status])).toEqual(
      migrationStages.map((s) => [s.name, 'succeeded']),
    );
    expect(calls.map(described)).toEqual([
      'volume.snapshot sd1/d1@',
      'volume.create sd2/d1',
      'volume.copy sd2/d1',
      'volume.verify sd2/d1',
      'volume.delete sd1/d1',
      'volume.snapshot.delete sd1/d1@',
    ]);
    const counters = e.agent(AGENT).counters();
    expect(counters.starts).toBe(6);
    expect(counters.duplicateStarts).toBe(0);
  });

  it('a failed copy leaves the disk on its source; target and snapshot are removed in reverse', async () => {
    const e = await start();
    const before = await createDisk(e);
    const entityBefore = await disk(e, 'd1');
    fault = copyFailingAt(40);
    const { id } = await e.engine.submit(diskMigrate, {
      disk: 'd1',
      toDomain: 'sd2',
      agent: AGENT,
      chunkBytes: CHUNK,
    });
    const ended = await e.engine.waitFor(id);
    expect(ended.status).toBe('failed');
    expect(ended.compensation).toBe('compensated');
    expect(ended.error?.code).toBe('CHILD_FAILED');
    expect(JSON.stringify(ended.error)).toContain('injected: no space left on device');

    // The copy had really written part of the target before failing.
    expect(partialCopied).toBeGreaterThanOrEqual(0.4 * SIZE);
    expect(partialCopied).toBeLessThan(SIZE);
    // Now: the disk is where it was, untouched, and nothing else is left.
    expect(await disk(e, 'd1')).toEqual(entityBefore);
    expect(sha(file('sd1', 'd1'))).toBe(before);
    expect(filesOf('sd1')).toEqual(['d1.img']);
    expect(filesOf('sd2')).toEqual([]);
    expect(await location(e, 'sd2/d1')).toBeUndefined();
    expect(await location(e, 'sd1/d1')).toMatchObject({ disk: 'd1' });

    // Each stage ran once; compensation: the copy's own undo, then the create's, then the snapshot's.
    expect(calls.map(described)).toEqual([
      'volume.snapshot sd1/d1@',
      'volume.create sd2/d1',
      'volume.copy sd2/d1',
      'volume.delete sd2/d1',
      'volume.delete sd2/d1',
      'volume.snapshot.delete sd1/d1@',
    ]);
    const children = (await e.engine.inspect(id))!.children;
    expect(children.map((c) => [c.type, c.status, c.compensation])).toEqual([
      ['disk.migrate.snapshot', 'succeeded', 'compensated'],
      ['disk.migrate.create-target', 'succeeded', 'compensated'],
      ['disk.migrate.copy', 'failed', 'compensated'],
    ]);
  });

  it('a failure after the switch switches the disk back to its intact source', async () => {
    const e = await start();
    const before = await createDisk(e);
    const entityBefore = await disk(e, 'd1');
    fault = failing((c) => c.verb === 'volume.delete' && c.args.domain === 'sd1');
    const { id } = await e.engine.submit(diskMigrate, {
      disk: 'd1',
      toDomain: 'sd2',
      agent: AGENT,
    });
    const ended = await e.engine.waitFor(id);
    expect(ended.status).toBe('failed');
    expect(ended.compensation).toBe('compensated');

    expect(await disk(e, 'd1')).toEqual(entityBefore);
    expect(sha(file('sd1', 'd1'))).toBe(before);
    expect(filesOf('sd1')).toEqual(['d1.img']);
    expect(filesOf('sd2')).toEqual([]);
    const children = (await e.engine.inspect(id))!.children;
    expect(children.map((c) => [c.type, c.status, c.compensation])).toEqual([
      ['disk.migrate.snapshot', 'succeeded', 'compensated'],
      ['disk.migrate.create-target', 'succeeded', 'compensated'],
      ['disk.migrate.copy', 'succeeded', 'compensated'],
      ['disk.migrate.verify', 'succeeded', 'compensated'],
      ['disk.migrate.switch', 'succeeded', 'compensated'],
      ['disk.migrate.remove-source', 'failed', 'compensated'],
    ]);
    expect(calls.map(described).slice(4)).toEqual([
      'volume.delete sd1/d1', // fails
      'volume.snapshot.restore sd1/d1@', // its own undo: the source is still there, kept
      'volume.delete sd2/d1', // the copy's undo
      'volume.delete sd2/d1', // the create's undo
      'volume.snapshot.delete sd1/d1@', // the snapshot's undo
    ]);
  });

  it('a failure of the last stage restores the deleted source from the snapshot', async () => {
    const e = await start();
    const before = await createDisk(e);
    const entityBefore = await disk(e, 'd1');
    fault = failing((c) => c.verb === 'volume.snapshot.delete', 1);
    const { id } = await e.engine.submit(diskMigrate, {
      disk: 'd1',
      toDomain: 'sd2',
      agent: AGENT,
    });
    const ended = await e.engine.waitFor(id);
    expect(ended.status).toBe('failed');
    expect(ended.compensation).toBe('compensated');
    expect(await disk(e, 'd1')).toEqual(entityBefore);
    expect(sha(file('sd1', 'd1'))).toBe(before); // deleted by stage 6, then restored
    expect(filesOf('sd1')).toEqual(['d1.img']);
    expect(filesOf('sd2')).toEqual([]);
    expect(calls.filter((c) => c.verb === 'volume.snapshot.restore')).toHaveLength(1);
  });

  it('holds the disk, and survives an engine restart during the copy: each stage runs once', async () => {
    let e = await start();
    const before = await createDisk(e);
    const copying = gate();
    fault = (call, real, ctx) =>
      call.verb === 'volume.copy' ? copying.promise.then(() => real(call.args, ctx)) : undefined;
    const { id } = await e.engine.submit(diskMigrate, {
      disk: 'd1',
      toDomain: 'sd2',
      agent: AGENT,
    });
    await expect.poll(() => calls.some((c) => c.verb === 'volume.copy')).toBe(true);
    // The migration holds the disk: other commands on it are refused, touching nothing.
    const del = await e.engine.submit(diskDelete, { disk: 'd1', agent: AGENT });
    expect((await e.engine.waitFor(del.id)).error?.code).toBe('DISK_LOCKED');
    e = env = await e.restart(); // same database file, same (still running) agents
    copying.open();
    const ended = await e.engine.waitFor(id);
    expect(ended.status).toBe('succeeded');
    expect(sha(file('sd2', 'd1'))).toBe(before);
    expect(filesOf('sd1')).toEqual([]);
    expect(await disk(e, 'd1')).toMatchObject({ domain: 'sd2', state: 'ready', sha256: before });
    expect(calls.map((c) => c.verb)).toEqual([
      'volume.snapshot',
      'volume.create',
      'volume.copy',
      'volume.verify',
      'volume.delete',
      'volume.snapshot.delete',
    ]);
  });

  it('refuses an unknown disk, its own volume and a volume another disk uses, touching nothing', async () => {
    const e = await start();
    await createDisk(e);
    const other = await e.engine.submit(diskCreate, {
      disk: 'd2',
      domain: 'sd2',
      volume: 'd1',
      sizeBytes: MiB,
      agent: AGENT,
    });
    expect((await e.engine.waitFor(other.id)).status).toBe('succeeded');
    calls = [];
    const taken = await e.engine.submit(diskMigrate, { disk: 'd1', toDomain: 'sd2', agent: AGENT });
    expect((await e.engine.waitFor(taken.id)).error?.code).toBe('VOLUME_IN_USE');
    const unknown = await e.engine.submit(diskMigrate, {
      disk: 'nope',
      toDomain: 'sd3',
      agent: AGENT,
    });
    expect((await e.engine.waitFor(unknown.id)).error?.code).toBe('DISK_NOT_FOUND');
    const same = await e.engine.submit(diskMigrate, { disk: 'd1', toDomain: 'sd1', agent: AGENT });
    expect((await e.engine.waitFor(same.id)).error?.code).toBe('SAME_LOCATION');
    expect(calls).toEqual([]);
    expect((await disk(e, 'd1'))?.state).toBe('ready');
    await expect(
      e.engine.submit(diskMigrate, { disk: 'd1', toDomain: '../etc', agent: AGENT }),
    ).rejects.toMatchObject({ code: 'PARAMETERS_INVALID' });
  });
});

describe('disk.create, disk.copy, disk.delete', () => {
  it('copy verifies and returns the checksum; delete removes volume and entity, idempotently', async () => {
    const e = await start();
    const before = await createDisk(e);
    const copy = await e.engine.submit(diskCopy, {
      disk: 'd1',
      toDomain: 'backup',
      toVolume: 'd1-copy',
      agent: AGENT,
      chunkBytes: CHUNK,
    });
    const copied = await e.engine.waitFor(copy.id);
    expect(copied.status).toBe('succeeded');
    expect(copied.result).toEqual({
      disk: 'd1',
      domain: 'backup',
      volume: 'd1-copy',
      sha256: before,
      bytes: SIZE,
    });
    expect(sha(file('backup', 'd1-copy'))).toBe(before);
    expect(calls.map((c) => c.verb)).toEqual(['volume.copy', 'volume.verify']);
    expect(await disk(e, 'd1')).toMatchObject({ domain: 'sd1', state: 'ready', sha256: before });
    expect(await location(e, 'backup/d1-copy')).toBeUndefined(); // nothing new registered

    const del = await e.engine.submit(diskDelete, { disk: 'd1', agent: AGENT });
    expect((await e.engine.waitFor(del.id)).result).toEqual({ disk: 'd1', deleted: true });
    expect(existsSync(file('sd1', 'd1'))).toBe(false);
    expect(await disk(e, 'd1')).toBeUndefined();
    expect(await location(e, 'sd1/d1')).toBeUndefined();
    const again = await e.engine.submit(diskDelete, { disk: 'd1', agent: AGENT });
    expect((await e.engine.waitFor(again.id)).result).toEqual({ disk: 'd1', deleted: false });
  });

  it('a create whose fill fails deletes the volume and unregisters the disk', async () => {
    const e = await start();
    fault = failing((c) => c.verb === 'volume.fill');
    const { id } = await e.engine.submit(diskCreate, {
      disk: 'd1',
      domain: 'sd1',
      sizeBytes: SIZE,
      agent: AGENT,
      seed: 1,
    });
    const ended = await e.engine.waitFor(id);
    expect(ended.status).toBe('failed');
    expect(ended.compensation).toBe('compensated');
    expect(calls.map((c) => c.verb)).toEqual(['volume.create', 'volume.fill', 'volume.delete']);
    expect(filesOf('sd1')).toEqual([]);
    expect(await disk(e, 'd1')).toBeUndefined();
    expect(await location(e, 'sd1/d1')).toBeUndefined();
  });
});

describe('the migration stages', () => {
  it('are child-only: submitting one on its own is refused and touches nothing', async () => {
    const e = await start();
    const checksum = await createDisk(e);
    for (const type of migrationStages) {
      const error = await e.engine
        .submit(type as never, {
          agent: AGENT,
          domain: 'sd1',
          volume: 'd1',
          snapshot: 'd1-snap',
        })
        .then(
          () => null,
          (err: unknown) => err,
        );
      expect(error, type.name).toBeInstanceOf(CocoError);
      expect((error as CocoError).code, type.name).toBe('COMMAND_TYPE_NOT_SUBMITTABLE');
      expect((error as CocoError).message, type.name).toContain('disk.migrate');
    }
    expect(calls).toEqual([]);
    expect(sha(file('sd1', 'd1'))).toBe(checksum);
    expect((await disk(e, 'd1'))?.state).toBe('ready');
  });
});
