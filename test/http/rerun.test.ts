/**
 * `POST /v1/commands/:id/rerun` and `coco rerun`: an ended root runs again as a new command of its
 * type with its parameters (brought to the type's current version), the ended one untouched; a
 * running command, a child or a missing one is refused with its code; an idempotency key makes a
 * retried rerun answer the first; operators only.
 */
import { join } from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { TOKENS } from '../support/api.js';
import { tempDir } from '../support/harness.js';
import { coco } from '../cli/support.js';
import { chain, codeOf, hold, other, startApiNode, work, type ApiNode } from './support.js';

const commandOf = z.object({
  id: z.number(),
  type: z.string(),
  status: z.string(),
  params: z.unknown(),
  paramsVersion: z.number(),
  parentId: z.number().nullable(),
  priority: z.number().optional(),
});

async function ended(node: ApiNode, id: number): Promise<z.infer<typeof commandOf>> {
  await node.node.engine.waitFor(id);
  return commandOf.parse((await node.call('GET', `/v1/commands/${id}`)).body);
}

describe('rerun', () => {
  let node: ApiNode;
  beforeAll(async () => {
    node = await startApiNode({ commands: [work, chain, other] });
  });
  afterAll(() => node?.close());

  /** Submits a command as an operator; its id (once ended, with `ended`). */
  const submit = async (type: string, params: unknown, end = true): Promise<number> => {
    const res = await node.call('POST', '/v1/commands', {
      role: 'operator',
      body: { type, params },
    });
    const { id } = res.body as { id: number };
    if (end) await node.node.engine.waitFor(id);
    return id;
  };
  /** The first child of an ended `api.chain`. */
  const chainChild = async (): Promise<{ root: number; child: number }> => {
    const root = await submit('api.chain', {});
    const { commands } = await node.node.engine.list({ rootId: root });
    return { root, child: commands.find((c) => c.parentId === root)!.id };
  };

  it('runs an ended root again as a new command with its type and parameters; the ended one stays as it was', async () => {
    const params = { tasks: 1, verb: 'fail', note: 'first try' };
    const submitted = await node.call('POST', '/v1/commands', {
      role: 'operator',
      body: { type: 'api.work', params, priority: 7 },
    });
    const { id } = submitted.body as { id: number };
    const first = await ended(node, id);
    expect(first.status).toBe('failed');

    const again = await node.call('POST', `/v1/commands/${id}/rerun`, {
      role: 'operator',
      body: {},
    });
    expect(again.status).toBe(201);
    const { id: next, rerunOf } = again.body as { id: number; rerunOf: number };
    expect(rerunOf).toBe(id);
    expect(next).toBeGreaterThan(id);
    const rerun = await ended(node, next);
    expect(rerun).toMatchObject({
      type: 'api.work',
      params,
      parentId: null,
      status: 'failed',
    });
    expect(await ended(node, id)).toEqual(first);
    // Its priority carried over unless given.
    expect((await node.node.engine.get(next))?.priority).toBe(7);
    const given = await node.call('POST', `/v1/commands/${id}/rerun`, {
      role: 'operator',
      body: { priority: -3 },
    });
    const third = (given.body as { id: number }).id;
    expect((await node.node.engine.get(third))?.priority).toBe(-3);

    // Each detail names the other: what a rerun ran again, and the reruns of the ended one — read
    // anew though its detail was final (kept) before the reruns.
    const links = z.object({ rerunOf: z.number().nullable(), reruns: z.array(z.number()) });
    const linksOf = async (c: number) =>
      links.parse((await node.call('GET', `/v1/commands/${c}`)).body);
    expect(await linksOf(id)).toEqual({ rerunOf: null, reruns: [next, third] });
    expect(await linksOf(next)).toEqual({ rerunOf: id, reruns: [] });
    expect(await linksOf(third)).toEqual({ rerunOf: id, reruns: [] });
  });

  it('answers a retried rerun with the same idempotency key with the first (200)', async () => {
    const id = await submit('api.other', {});
    const body = { idempotencyKey: `rerun-${id}` };
    const first = await node.call('POST', `/v1/commands/${id}/rerun`, { role: 'operator', body });
    const second = await node.call('POST', `/v1/commands/${id}/rerun`, { role: 'operator', body });
    expect([first.status, second.status]).toEqual([201, 200]);
    expect(second.body).toEqual(first.body);
    const detail = (await node.call('GET', `/v1/commands/${id}`)).body as { reruns: number[] };
    expect(detail.reruns).toEqual([(first.body as { id: number }).id]);
  });

  it('refuses a running command, a child, a missing one, and a viewer, saying why', async () => {
    const held = await submit('api.work', { tasks: 1, verb: 'hold', key: 'rerun-held' }, false);
    const running = await node.call('POST', `/v1/commands/${held}/rerun`, {
      role: 'operator',
      body: {},
    });
    expect(running.status).toBe(409);
    expect(codeOf(running.body)).toBe('COMMAND_STATE');
    expect(JSON.stringify(running.body)).toContain('has not ended');
    hold.release('rerun-held');
    await ended(node, held);

    const { root, child } = await chainChild();
    const refused = await node.call('POST', `/v1/commands/${child}/rerun`, {
      role: 'operator',
      body: {},
    });
    expect(refused.status).toBe(409);
    expect(JSON.stringify(refused.body)).toContain(`only a root runs again (its root is ${root})`);

    const missing = await node.call('POST', '/v1/commands/999999/rerun', {
      role: 'operator',
      body: {},
    });
    expect([missing.status, codeOf(missing.body)]).toEqual([404, 'COMMAND_NOT_FOUND']);
    const viewer = await node.call('POST', `/v1/commands/${root}/rerun`, {
      role: 'viewer',
      body: {},
    });
    expect(viewer.status).toBe(403);
    const bad = await node.call('POST', `/v1/commands/${root}/rerun`, {
      role: 'operator',
      body: { priority: 'high' },
    });
    expect([bad.status, codeOf(bad.body)]).toEqual([400, 'BAD_REQUEST']);
  });

  it('coco rerun prints the new id, and with --wait follows it', async () => {
    const id = await submit('api.other', {});
    const tokenFile = join(node.dir, 'rerun.token');
    writeFileSync(tokenFile, TOKENS.operator, { mode: 0o600 });
    const r = await coco('rerun', String(id), '--server', node.url, '--token-file', tokenFile);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(new RegExp(`^command ${id} runs again as command \\d+;`));
    const waited = await coco(
      'rerun',
      String(id),
      '--wait',
      '--server',
      node.url,
      '--token-file',
      tokenFile,
    );
    expect(waited.code, waited.err).toBe(0);
    // A child is refused: the command's state does not allow it (exit 8).
    const { child } = await chainChild();
    const refused = await coco(
      'rerun',
      String(child),
      '--server',
      node.url,
      '--token-file',
      tokenFile,
    );
    expect(refused.code, refused.err).toBe(8);
    expect(refused.err).toContain('COMMAND_STATE');
  });
});

it('brings stored parameters of an older version to the type’s current one', async () => {
  const dir = tempDir('coco-rerun-upgrade-');
  const store = `sqlite:${join(dir, 'coco.db')}`;
  const v1 = defineCommand({
    name: 'api.versioned',
    schema: z.object({ disk: z.string() }),
    execute() {},
  });
  const v2 = defineCommand({
    name: 'api.versioned',
    version: 2,
    schema: z.object({ disks: z.array(z.string()) }),
    upgrades: { 1: (p: unknown) => ({ disks: [(p as { disk: string }).disk] }) },
    execute() {},
  });
  try {
    const before = await startApiNode({ store, commands: [v1] });
    let id: number;
    try {
      ({ id } = (
        await before.call('POST', '/v1/commands', {
          role: 'operator',
          body: { type: 'api.versioned', params: { disk: 'd1' } },
        })
      ).body as { id: number });
      await before.node.engine.waitFor(id);
    } finally {
      await before.node.close();
    }
    const after = await startApiNode({ store, commands: [v2] });
    try {
      const again = await after.call('POST', `/v1/commands/${id}/rerun`, {
        role: 'operator',
        body: {},
      });
      expect(again.status, JSON.stringify(again.body)).toBe(201);
      const rerun = await after.node.engine.get((again.body as { id: number }).id);
      expect(rerun).toMatchObject({ paramsVersion: 2, params: { disks: ['d1'] } });
      expect(await after.node.engine.get(id)).toMatchObject({
        paramsVersion: 1,
        params: { disk: 'd1' },
      });
    } finally {
      await after.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
