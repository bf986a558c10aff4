/**
 * The agent process is SIGKILLed in the middle of a disk copy and started again on the same data
 * directory: the engine sees the new boot id, the copy fails with the reason, undo removes the
 * partial target and the snapshot, the disk stays on its source, and the job says what happened.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diskCommands, diskCreate, diskMigrate } from '../../examples/disk/index.js';
import type { AgentInfo } from '../../src/brokers/port.js';
import { parseConfig } from '../../src/config/config.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { startNode } from '../../src/server/node.js';
import { tempDir } from '../support/harness.js';
import { freePort, killHard, sha256File, startAgentProcess } from './support.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

describe('agent killed mid-copy', () => {
  it('fails the copy with the reason, undoes the partial target, and leaves the disk on its source', async () => {
    const dir = tempDir('coco-agent-kill-');
    const secret = 'a-shared-secret-for-tests';
    const port = await freePort();
    const agentDirs = {
      id: 'host-1',
      port,
      dataDir: join(dir, 'agent'),
      storageRoot: join(dir, 'storage'),
      secret,
    };
    let agent = await startAgentProcess(agentDirs);
    const firstBoot = agent.bootId;
    const config = parseConfig(
      {
        store: `sqlite:${join(dir, 'coco.db')}`,
        api: { port: 0 },
        agents: [{ id: 'host-1', url: agent.url, secret }],
        tuning: { pollIntervalMs: 200 },
      },
      dir,
    );
    const node = await startNode({ config, commands: diskCommands, logger: quiet });
    const infos: AgentInfo[] = [];
    node.engine.on('agent-info', (i) => infos.push(i));
    try {
      const create = await node.engine.submit(diskCreate, {
        disk: 'd1',
        domain: 'sd-a',
        sizeBytes: 64 * 1024 * 1024,
        agent: 'host-1',
        seed: 1,
      });
      expect((await node.engine.waitFor(create.id)).status).toBe('succeeded');
      const source = join(dir, 'storage', 'sd-a', 'd1.img');
      const sourceSha = await sha256File(source);

      const migration = await node.engine.submit(diskMigrate, {
        disk: 'd1',
        toDomain: 'sd-b',
        agent: 'host-1',
        chunkBytes: 256 * 1024,
        // ~2 s for the 64 MB whatever the machine: unlimited, a fast machine may copy it between
        // two polls, and no progress under 90 would ever be seen (engine-restart.test.ts).
        bytesPerSecond: 32 * 1024 * 1024,
      });
      // Kill the agent once the copy is under way (its progress reached the engine).
      await new Promise<void>((resolve) => {
        const off = node.engine.on('progress', (p) => {
          if (p.progress > 0 && p.progress < 90) {
            off();
            resolve();
          }
        });
      });
      await killHard(agent);
      agent = await startAgentProcess(agentDirs);
      expect(agent.bootId).not.toBe(firstBoot);

      const end = await node.engine.waitFor(migration.id);
      expect(end.status).toBe('failed');
      expect(end.compensation).toBe('compensated');
      expect(end.error?.code).toBe('CHILD_FAILED');
      expect(end.error?.message).toMatch(/the agent restarted \(boot .+ → .+\) while the task ran/);
      expect((end.error?.details as { cause?: { code?: string } }).cause?.code).toBe(
        'AGENT_RESTARTED',
      );

      // The engine saw the restart and stored the new boot id.
      expect(infos.some((i) => i.previousBootId === firstBoot && i.bootId === agent.bootId)).toBe(
        true,
      );
      expect((await node.engine.agents()).find((a) => a.id === 'host-1')?.bootId).toBe(
        agent.bootId,
      );

      // Undo removed the partial target and the snapshot; the source is untouched.
      expect(existsSync(join(dir, 'storage', 'sd-b', 'd1.img'))).toBe(false);
      expect(await sha256File(source)).toBe(sourceSha);
      // Stages after the copy were never created.
      const stages = (await node.engine.inspect(migration.id))!.children.map((c) => c.type);
      expect(stages).toEqual([
        'disk.migrate.snapshot',
        'disk.migrate.create-target',
        'disk.migrate.copy',
      ]);

      // The job says what happened: the copy step failed because the agent restarted.
      await node.monitor!.flush();
      const tree = await node.monitor!.getTree(migration.id);
      expect(tree?.job.status).toBe('failed');
      const copy = tree?.root?.children.find((c) => c.step.name.endsWith('.copy'));
      expect(copy?.step.status).toBe('failed');
      expect(copy?.tasks[0]?.error?.code).toBe('AGENT_RESTARTED');
    } finally {
      await node.close();
      await killHard(agent);
    }
    // The disk is still registered on its source domain.
    const store = sqliteStore({ path: join(dir, 'coco.db') });
    try {
      expect((await store.getEntity('disk', 'd1'))?.value).toMatchObject({
        domain: 'sd-a',
        volume: 'd1',
      });
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
