/**
 * Rotating an agent's shared secret with no restart and no failed call, over real HTTP: the
 * agent accepts the new secret beside the old, the node (a `coco serve` reloading its
 * configuration) signs with the new one from its next request, then the agent drops the old.
 * Tasks run at each step; a node still signing with the old secret at the end is refused.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, expect, it } from 'vitest';
import { z } from 'zod';
import { parseConfig, type AgentConfig } from '../../src/config/config.js';
import { defineCommand } from '../../src/core/command-type.js';
import { startAgent } from '../../src/reference-agent/index.js';
import { startNode } from '../../src/server/node.js';
import { tempDir } from '../support/harness.js';
import { Client } from '../reference-agent/support.js';

const OLD = 'the-old-secret-0123456789';
const NEW = 'the-new-secret-0123456789';
const dir = tempDir('coco-rotation-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const echo = defineCommand({
  name: 'rotation.echo',
  schema: z.object({ n: z.number().int() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'host-1', verb: 'echo', args: { n: ctx.params.n } });
  },
});

it('agent first, then the node, then the old secret goes: every command succeeds', async () => {
  const agent = await startAgent({
    id: 'host-1',
    secret: OLD,
    dataDir: join(dir, 'agent'),
    logger: pino({ level: 'silent' }),
  });
  const agentsWith = (secret: string): AgentConfig[] => [{ id: 'host-1', url: agent.url, secret }];
  const node = await startNode({
    config: parseConfig(
      { store: `sqlite:${join(dir, 'coco.db')}`, api: { port: 0 }, agents: agentsWith(OLD) },
      dir,
    ),
    commands: [echo],
    logger: { debug() {}, info() {}, warn() {}, error() {} },
    listen: false,
  });
  const run = async (n: number): Promise<string> => {
    const { id } = await node.engine.submit(echo, { n });
    return (await node.engine.waitFor(id)).status;
  };
  const served = (secret: string): Promise<boolean> =>
    new Client(agent.url, { secret, agentId: 'host-1' }).health().then(
      () => true,
      () => false,
    );
  try {
    expect(await run(1)).toBe('succeeded');
    // 1. The agent accepts both.
    agent.setSecrets([NEW, OLD]);
    expect(await run(2)).toBe('succeeded');
    // 2. The node signs with the new one (its configuration reloaded).
    expect(node.setAgents(agentsWith(NEW))).toEqual({
      added: [],
      retired: [],
      moved: [],
      secrets: ['host-1'],
    });
    // An unchanged secret changes nothing.
    expect(node.setAgents(agentsWith(NEW)).secrets).toEqual([]);
    // 3. The agent drops the old one: the node's calls go on.
    agent.setSecrets([NEW]);
    expect(await run(3)).toBe('succeeded');
    expect([await served(OLD), await served(NEW)]).toEqual([false, true]);
    // Too short a secret is refused, naming the agent, and changes nothing.
    expect(() => node.setAgents(agentsWith('short'))).toThrow(/agents\.0\.secret: .*16/);
    expect(await run(4)).toBe('succeeded');
  } finally {
    await node.close();
    await agent.close();
  }
});
