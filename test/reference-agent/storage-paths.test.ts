/**
 * The storage verbs stay beneath their root, on real files: a symbolic link anywhere on a path
 * (a domain that is a link, a link inside a domain, dangling or not, one pointing back inside
 * the root) is refused with STORAGE_PATH_REFUSED naming the path, by every verb that creates,
 * overwrites, fills, reads or deletes, and nothing outside the root changes.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  StorageErrorCode,
  storageVerbs,
  type StorageVerbContext,
  type Verb,
} from '../../src/reference-agent/storage/verbs.js';
import { tempDir } from '../support/harness.js';
import { rejection as failure } from '../support/errors.js';
import { runVerb } from './storage-support.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let root: string;
let outside: string;
let verbs: Record<string, Verb>;

beforeEach(() => {
  root = tempDir('coco-storage-');
  outside = tempDir('coco-outside-');
  verbs = storageVerbs(root);
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

const run = (name: string, args: unknown, ctx?: StorageVerbContext): Promise<unknown> =>
  runVerb(verbs, name, args, ctx);

/** Every file of a folder with the sha256 of its content. */
function contents(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort())
    out[name] = createHash('sha256')
      .update(readFileSync(join(dir, name)))
      .digest('hex');
  return out;
}

describe('paths stay beneath the root: symbolic links are refused', () => {
  let before: Record<string, string>;

  beforeEach(() => {
    // Outside the root: a victim volume and a snapshot of it.
    writeFileSync(join(outside, 'victim.img'), Buffer.alloc(64 * KiB, 7));
    writeFileSync(join(outside, 'victim@s.img'), Buffer.alloc(64 * KiB, 9));
    // Inside: a real domain with a real volume, links inside it, and domains that are links.
    mkdirSync(join(root, 'sd1'));
    writeFileSync(join(root, 'sd1', 'real.img'), Buffer.alloc(64 * KiB, 1));
    symlinkSync(join(outside, 'victim.img'), join(root, 'sd1', 'v.img'));
    symlinkSync(join(outside, 'victim@s.img'), join(root, 'sd1', 'real@s.img'));
    symlinkSync(join(outside, 'new.img'), join(root, 'sd1', 'dangling.img'));
    symlinkSync(outside, join(root, 'evil'));
    mkdirSync(join(root, 'sd2'));
    symlinkSync(join(root, 'sd2'), join(root, 'alias')); // a link that stays inside the root
    before = contents(outside);
  });

  /** Runs a verb that must be refused for the path `path` (relative to the root). */
  async function refused(name: string, args: unknown, path: string): Promise<void> {
    const error = await failure(run(name, args));
    expect(error.code, `${name} ${JSON.stringify(args)}: ${error.message}`).toBe(
      StorageErrorCode.PathRefused,
    );
    expect(error.message).toContain(join(root, path));
    expect(error.details).toMatchObject({ path: join(root, path) });
    expect(contents(outside), `${name} changed something outside the root`).toEqual(before);
  }

  it('create: through a domain link, onto a link, onto a dangling link', async () => {
    await refused('volume.create', { domain: 'evil', volume: 'new', sizeBytes: MiB }, 'evil');
    await refused('volume.create', { domain: 'alias', volume: 'new', sizeBytes: MiB }, 'alias');
    await refused(
      'volume.create',
      { domain: 'sd1', volume: 'v', sizeBytes: 64 * KiB },
      'sd1/v.img',
    );
    await refused(
      'volume.create',
      { domain: 'sd1', volume: 'dangling', sizeBytes: MiB },
      'sd1/dangling.img',
    );
    expect(existsSync(join(outside, 'new.img'))).toBe(false);
    expect(existsSync(join(root, 'sd2', 'new.img'))).toBe(false);
  });

  it('overwrite: a copy onto a link, a dangling link or through a domain link', async () => {
    const from = { domain: 'sd1', volume: 'real' };
    await refused('volume.copy', { from, to: { domain: 'sd1', volume: 'v' } }, 'sd1/v.img');
    await refused(
      'volume.copy',
      { from, to: { domain: 'sd1', volume: 'dangling' } },
      'sd1/dangling.img',
    );
    await refused('volume.copy', { from, to: { domain: 'evil', volume: 'victim' } }, 'evil');
    await refused(
      'volume.snapshot.restore',
      { domain: 'evil', volume: 'victim', snapshot: 's' },
      'evil',
    );
    expect(existsSync(join(outside, 'new.img'))).toBe(false);
  });

  it('fill: a link, or a volume through a domain link', async () => {
    await refused('volume.fill', { domain: 'sd1', volume: 'v', seed: 1 }, 'sd1/v.img');
    await refused('volume.fill', { domain: 'evil', volume: 'victim', seed: 1 }, 'evil');
  });

  it('read: checksum, verify, copy from and snapshot of a link', async () => {
    await refused('volume.checksum', { domain: 'sd1', volume: 'v' }, 'sd1/v.img');
    await refused(
      'volume.verify',
      { domain: 'evil', volume: 'victim', sha256: '0'.repeat(64) },
      'evil',
    );
    await refused(
      'volume.copy',
      { from: { domain: 'sd1', volume: 'v' }, to: { domain: 'sd1', volume: 'stolen' } },
      'sd1/v.img',
    );
    await refused('volume.snapshot', { domain: 'sd1', volume: 'v', snapshot: 's' }, 'sd1/v.img');
    await refused(
      'volume.snapshot.restore',
      { domain: 'sd1', volume: 'real', snapshot: 's' },
      'sd1/real@s.img',
    );
    expect(readdirSync(join(root, 'sd1')).sort()).toEqual([
      'dangling.img',
      'real.img',
      'real@s.img',
      'v.img',
    ]);
    expect(readFileSync(join(root, 'sd1', 'real.img'))).toEqual(Buffer.alloc(64 * KiB, 1));
  });

  it('delete: a volume or snapshot through a domain link, or a link itself', async () => {
    await refused('volume.delete', { domain: 'evil', volume: 'victim' }, 'evil');
    await refused(
      'volume.snapshot.delete',
      { domain: 'evil', volume: 'victim', snapshot: 's' },
      'evil',
    );
    await refused('volume.delete', { domain: 'sd1', volume: 'v' }, 'sd1/v.img');
    expect(existsSync(join(root, 'sd1', 'v.img'))).toBe(true);
  });

  it('a root that is itself a link (the operator chose it) works as before', async () => {
    const link = join(outside, 'root-link');
    symlinkSync(root, link);
    verbs = storageVerbs(link);
    const created = await run('volume.create', { domain: 'sd3', volume: 'v', sizeBytes: MiB });
    expect(created).toEqual({ path: join(link, 'sd3', 'v.img'), sizeBytes: MiB, created: true });
    expect(statSync(join(root, 'sd3', 'v.img')).size).toBe(MiB);
    expect(await run('volume.delete', { domain: 'sd3', volume: 'v' })).toEqual({ deleted: true });
  });
});
