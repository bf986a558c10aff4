/**
 * Verb plug-ins (loading modules, refusing clashes), options checks and the logger adapter.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { resolve } from 'node:path';
import {
  createAgentServer,
  loadVerbModules,
  startAgent,
  type Verb,
} from '../../src/reference-agent/index.js';
import type { Logger } from '../../src/core/command-type.js';
import { ErrorCode } from '../../src/core/errors.js';
import { PATHS } from '../../src/protocol/agent-v2.js';
import { agent, cleanup, Client, refusal, SECRET, send, tempDir } from './support.js';

afterEach(cleanup);

const fixture = (name: string): string =>
  fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

describe('verb plug-ins', () => {
  it('loads modules exporting verbs and runs them over HTTP', async () => {
    const verbs = await loadVerbModules([fixture('verbs-module.ts')]);
    expect(Object.keys(verbs).sort()).toEqual(['double', 'greet']);
    const { client } = await agent({ verbs });
    expect((await client.health()).verbs).toEqual(
      expect.arrayContaining(['double', 'greet', 'noop']),
    );
    const { results } = await client.start([
      { taskId: 'd', verb: 'double', args: 21 },
      { taskId: 'x', verb: 'double', args: 'no' },
      { taskId: 'g', verb: 'greet', args: 'you' },
    ]);
    expect(results.map((r) => r.accepted)).toEqual([true, false, true]);
    expect(await client.one('d')).toEqual({ taskId: 'd', state: 'succeeded', result: 42 });
    await vi.waitFor(async () =>
      expect(await client.one('g')).toEqual({
        taskId: 'g',
        state: 'succeeded',
        result: 'hello you from g',
      }),
    );
  });

  it('refuses a verb name exported twice, a module without verbs, a missing module', async () => {
    await expect(
      loadVerbModules([fixture('verbs-module.ts'), fixture('verbs-clash.ts')]),
    ).rejects.toMatchObject({
      code: ErrorCode.InvalidOptions,
      message: expect.stringContaining('"double"') as string,
    });
    await expect(loadVerbModules([fixture('verbs-none.ts')])).rejects.toMatchObject({
      code: ErrorCode.InvalidOptions,
    });
    await expect(loadVerbModules([fixture('missing.ts')])).rejects.toMatchObject({
      code: ErrorCode.InvalidOptions,
    });
  });

  it('gives a plug-in verb the storage root and the agent id (undefined root without one)', async () => {
    const root = tempDir();
    const where: Verb = (_args, ctx) => ({ root: ctx.storageRoot ?? null, agent: ctx.agentId });
    const { client } = await agent({ verbs: { where }, storageRoot: root });
    await client.start([{ taskId: 'w', verb: 'where', args: null }]);
    expect(await client.one('w')).toEqual({
      taskId: 'w',
      state: 'succeeded',
      result: { root: resolve(root), agent: 'agent-1' },
    });
    const other = await agent({ verbs: { where } });
    await other.client.start([{ taskId: 'w2', verb: 'where', args: null }]);
    expect(await other.client.one('w2')).toMatchObject({ result: { root: null } });
  });

  it('can run without the built-in verbs', async () => {
    const { client } = await agent({ builtins: false, verbs: { only: () => 1 } });
    expect((await client.health()).verbs).toEqual(['only']);
  });
});

describe('agent options', () => {
  it('refuses bad options with INVALID_OPTIONS', () => {
    const dataDir = tempDir();
    for (const bad of [
      { id: '', secret: SECRET, dataDir },
      { id: 'a', secret: '', dataDir },
      { id: 'a', secret: SECRET, dataDir, port: 70_000 },
      { id: 'a', secret: SECRET, dataDir, verbs: { '': () => 1 } },
    ]) {
      expect(() => createAgentServer(bad)).toThrow(
        expect.objectContaining({ code: ErrorCode.InvalidOptions }),
      );
    }
  });

  it("accepts coco's minimal Logger (e.g. the CLI's) and logs refusals through it", async () => {
    const entries: { level: string; obj: object; msg?: string }[] = [];
    const logger: Logger = {
      debug: (obj, msg) => void entries.push({ level: 'debug', obj, msg }),
      info: (obj, msg) => void entries.push({ level: 'info', obj, msg }),
      warn: (obj, msg) => void entries.push({ level: 'warn', obj, msg }),
      error: (obj, msg) => void entries.push({ level: 'error', obj, msg }),
    };
    const running = await startAgent({ id: 'agent-1', secret: SECRET, dataDir: tempDir(), logger });
    try {
      expect(entries.some((e) => e.msg === 'agent listening')).toBe(true);
      refusal(await send(running.url, 'GET', PATHS.health, undefined, { unsigned: true }), 401);
      const warning = entries.find((e) => e.level === 'warn');
      expect(warning?.obj).toMatchObject({ caller: null, url: PATHS.health });
      expect(warning?.msg).toContain('refused');
      expect((await new Client(running.url).health()).agentId).toBe('agent-1');
    } finally {
      await running.close();
    }
  });
});
