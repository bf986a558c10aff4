/**
 * The engine (`coco serve`, its own process) is SIGKILLed in the middle of a disk copy and started
 * again on the same store: the migration completes, each stage ran once, and the data is intact.
 * Also exercises `coco serve` and `coco agent` as processes, and the CLI client against them.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ApiClient, findToken } from '../../src/cli/client.js';
import { tempDir } from '../support/harness.js';
import { coco } from '../cli/support.js';
import { freePort, killHard, sha256File, startAgentProcess, startServeProcess } from './support.js';

const idOf = z.object({ id: z.number() });
const commandOf = z
  .object({
    type: z.string(),
    status: z.string(),
    children: z.array(z.number()),
    tasks: z.array(z.unknown()),
  })
  .passthrough();
const treeOf = z
  .object({
    root: z
      .object({
        children: z.array(
          z.object({
            step: z.object({ name: z.string(), progress: z.number(), status: z.string() }),
          }),
        ),
      })
      .nullable(),
  })
  .passthrough();

async function until<T>(
  what: string,
  probe: () => Promise<T | null>,
  timeoutMs = 60_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value !== null) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('engine killed mid-copy', () => {
  it('resumes after a restart: the migration completes, each stage once, data intact', async () => {
    const dir = tempDir('coco-engine-kill-');
    const secret = 'another-shared-secret-for-tests';
    const agent = await startAgentProcess({
      id: 'host-1',
      port: await freePort(),
      dataDir: join(dir, 'agent'),
      storageRoot: join(dir, 'storage'),
      secret,
    });
    const apiPort = await freePort();
    const configFile = join(dir, 'coco.json');
    const pack = new URL('../../examples/disk/index.ts', import.meta.url).pathname;
    writeFileSync(
      configFile,
      JSON.stringify({
        store: 'sqlite:coco.db',
        api: { port: apiPort },
        agents: [{ id: 'host-1', url: agent.url, secret }],
        commands: [pack],
        tuning: { pollIntervalMs: 200 },
      }),
    );
    const server = `http://127.0.0.1:${apiPort}`;
    let serve = await startServeProcess(configFile);
    // The node created its admin token beside its store: the CLI finds it through the
    // configuration (--config), as a user on this machine would.
    const api = new ApiClient(server, findToken({ config: configFile }));
    try {
      // The CLI client against the served node.
      const created = await coco(
        'submit',
        'disk.create',
        '--params',
        JSON.stringify({
          disk: 'd1',
          domain: 'sd-a',
          sizeBytes: 64 * 1024 * 1024,
          agent: 'host-1',
          seed: 3,
        }),
        '--server',
        server,
        '--config',
        configFile,
        '--json',
      );
      expect(created.code, created.err).toBe(0);
      const createId = idOf.parse(JSON.parse(created.out)).id;
      await until('disk.create to end', async () => {
        const c = commandOf.parse(await api.get(`/v1/commands/${createId}`));
        return c.status === 'succeeded' ? true : null;
      });
      const source = join(dir, 'storage', 'sd-a', 'd1.img');
      const sourceSha = await sha256File(source);

      const { id } = idOf.parse(
        await api.post('/v1/commands', {
          type: 'disk.migrate',
          // Rate-limited to ~2 s for the 64 MB, whatever the machine: unlimited, a fast machine
          // copied it between two looks (every 25 ms at the job, every 200 ms by the node's poll),
          // and the test never saw the copy under way to kill the node in it.
          params: {
            disk: 'd1',
            toDomain: 'sd-b',
            agent: 'host-1',
            chunkBytes: 256 * 1024,
            bytesPerSecond: 32 * 1024 * 1024,
          },
        }),
      );
      await until('the copy to be under way', async () => {
        const tree = treeOf.parse(await api.get(`/v1/jobs/${id}`));
        const copy = tree.root?.children.find((c) => c.step.name.endsWith('.copy'));
        return copy && copy.step.progress > 0 && copy.step.progress < 90 ? true : null;
      });
      await killHard(serve);
      serve = await startServeProcess(configFile);

      const done = await until('the migration to end', async () => {
        const c = commandOf.parse(await api.get(`/v1/commands/${id}`));
        return ['succeeded', 'failed', 'cancelled'].includes(c.status) ? c : null;
      });
      expect(done.status).toBe('succeeded');
      // Each stage ran once: seven children, one per stage, each with its tasks run once.
      const children = await Promise.all(
        done.children.map(async (child) => commandOf.parse(await api.get(`/v1/commands/${child}`))),
      );
      expect(children.map((c) => c.type)).toEqual([
        'disk.migrate.snapshot',
        'disk.migrate.create-target',
        'disk.migrate.copy',
        'disk.migrate.verify',
        'disk.migrate.switch',
        'disk.migrate.remove-source',
        'disk.migrate.remove-snapshot',
      ]);
      for (const c of children) {
        expect(c.status).toBe('succeeded');
        expect(c.tasks.length).toBeLessThanOrEqual(1);
      }
      expect(await sha256File(join(dir, 'storage', 'sd-b', 'd1.img'))).toBe(sourceSha);
      expect(existsSync(source)).toBe(false);
      const status = await coco('status', String(id), '--server', server, '--config', configFile);
      expect(status.code).toBe(0);
      expect(status.out).toMatch(/disk\.migrate .*100%.*succeeded/);
    } finally {
      serve.child.kill('SIGTERM');
      expect(await serve.exited).toBe(0);
      await killHard(agent);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});
