/**
 * `coco agent --max-volume-bytes` reaches the storage verbs of a real agent process: a volume
 * over the cap is refused with VOLUME_TOO_LARGE naming both sizes, one at the cap is created.
 */
import { existsSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { StorageErrorCode } from '../../src/reference-agent/storage/verbs.js';
import { Client, SECRET } from '../reference-agent/support.js';
import { tempDir } from '../support/harness.js';
import { freePort, killHard, startAgentProcess } from './support.js';

describe('coco agent --max-volume-bytes', () => {
  it('caps the volumes the storage verbs create', async () => {
    const dir = tempDir('coco-agent-limits-');
    const storageRoot = join(dir, 'storage');
    const agent = await startAgentProcess({
      id: 'host-1',
      port: await freePort(),
      dataDir: join(dir, 'agent'),
      storageRoot,
      secret: SECRET,
      args: ['--max-volume-bytes', String(1024 * 1024)],
    });
    try {
      const client = new Client(agent.url, { agentId: 'host-1' });
      await client.start([
        {
          taskId: 'big',
          verb: 'volume.create',
          args: { domain: 'sd1', volume: 'big', sizeBytes: 1024 * 1024 + 1 },
        },
        {
          taskId: 'fits',
          verb: 'volume.create',
          args: { domain: 'sd1', volume: 'fits', sizeBytes: 1024 * 1024 },
        },
      ]);
      await vi.waitFor(async () => {
        const { tasks } = await client.status(['big', 'fits']);
        expect(tasks.map((t) => t.state)).toEqual(['failed', 'succeeded']);
      });
      const big = await client.one('big');
      expect(big.error).toMatchObject({
        code: StorageErrorCode.VolumeTooLarge,
        details: { sizeBytes: 1024 * 1024 + 1, maxVolumeBytes: 1024 * 1024 },
      });
      expect(existsSync(join(storageRoot, 'sd1', 'big.img'))).toBe(false);
      expect(statSync(join(storageRoot, 'sd1', 'fits.img')).size).toBe(1024 * 1024);
    } finally {
      await killHard(agent);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
