/**
 * `coco prune` and `POST /v1/admin/prune`: through a running node (engine on SQLite, job view,
 * HTTP API on loopback), on a SQLite file no node holds (`--store`), and on a PostgreSQL store
 * beside a running node. Durations, dry runs, refusals and exit codes.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { parseConfig } from '../../src/config/config.js';
import type { Engine } from '../../src/engine/engine.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import { authHeaders, testTokens, TOKENS } from '../support/api.js';
import { Journal, testCommands } from '../support/commands.js';
import { holdVerbs, tempDir, whenCommitted } from '../support/harness.js';
import { PG_URL, describePg, freshSchema } from '../support/pg.js';
import { coco } from './support.js';

// The CLI calls the nodes of this file with the admin token (COCO_TOKEN).
process.env.COCO_TOKEN = TOKENS.admin;

const t = testCommands(new Journal());
const hold = holdVerbs();
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const answer = z
  .object({
    trees: z.number(),
    commands: z.number(),
    tasks: z.number(),
    undo: z.number(),
    jobs: z.number(),
    more: z.boolean(),
    dryRun: z.boolean(),
  })
  .strict();

/** Whether no command of the tree is active (ended, tasks cleared, not compensating). */
async function isSettled(engine: Engine, rootId: number): Promise<boolean> {
  const { commands } = await engine.list({ rootId });
  return commands.every(
    (c) =>
      ['succeeded', 'failed', 'cancelled'].includes(c.status) &&
      c.tasksCleared &&
      c.compensation !== 'compensating',
  );
}

/** Runs a group of two children (a task each) on the node until its tree has settled. */
async function settledGroup(node: CocoNode): Promise<number> {
  const engine = node.engine;
  const { id } = await engine.submit(t.group, {
    name: 'g',
    children: [{ name: 'a' }, { name: 'b' }],
  });
  await engine.waitFor(id);
  if (!(await isSettled(engine, id))) await whenCommitted(engine, () => isSettled(engine, id));
  await node.monitor?.flush();
  return id;
}

/** Waits long enough for `--older-than 1ms` to include everything ended so far. */
const aMillisecond = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

describe('coco prune: usage', () => {
  it('wants a positive duration: exit 2 naming what is accepted', async () => {
    const missing = await coco('prune');
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('--older-than');
    for (const bad of ['30', '30x', '0d', '-1d', '1.5h', 'd', '99999999999999999d']) {
      const r = await coco('prune', '--older-than', bad, '--server', 'http://127.0.0.1:9');
      expect(r.code, bad).toBe(2);
      expect(r.err).toContain(`--older-than must be a positive duration`);
      expect(r.err).toContain('30d, 12h, 90m');
    }
    const help = await coco('prune', '--help');
    expect(help.out).toContain('--dry-run');
    expect(help.out).toContain('--store');
  });
});

describe('coco prune against a running node, then on its file', () => {
  let dir: string;
  let file: string;
  let node: CocoNode;
  let server: string;

  beforeAll(async () => {
    dir = tempDir('coco-prune-');
    file = join(dir, 'coco.db');
    const config = parseConfig(
      { store: `sqlite:${file}`, api: { port: 0, tokens: testTokens() } },
      dir,
    );
    node = await startNode({
      config,
      commands: t.all,
      broker: inProcessAgents(['a1'], { verbs: hold.verbs }),
      logger: quiet,
    });
    server = node.url!;
  });
  afterAll(async () => {
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('through the node: young trees stay, a dry run counts, a real run deletes trees and jobs; live ones stay', async () => {
    const ids = [await settledGroup(node), await settledGroup(node)];
    const { id: live } = await node.engine.submit(t.group, {
      name: 'held',
      children: [{ name: 'h', verb: 'hold', args: { key: 'cli-prune' } }],
    });
    const young = await coco('prune', '--older-than', '1h', '--server', server, '--json');
    expect(young.code, young.err).toBe(0);
    expect(answer.parse(JSON.parse(young.out))).toMatchObject({ trees: 0, jobs: 0 });

    await aMillisecond();
    const dry = await coco('prune', '--older-than', '1ms', '--dry-run', '--server', server);
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toMatch(
      /^would prune 2 trees ended more than 1ms ago \(http:.*\): 6 commands, 4 tasks, 6 undo steps, 2 jobs$/,
    );
    for (const id of ids) expect(await node.engine.get(id)).not.toBeNull();

    const real = await coco('prune', '--older-than', '1ms', '--server', server, '--json');
    expect(real.code, real.err).toBe(0);
    expect(answer.parse(JSON.parse(real.out))).toEqual({
      trees: 2,
      commands: 6,
      tasks: 4,
      undo: 6,
      jobs: 2,
      more: false,
      dryRun: false,
    });
    for (const id of ids) {
      expect(await node.engine.get(id)).toBeNull();
      expect(await node.monitor!.getJob(id)).toBeNull();
    }
    expect((await node.engine.get(live))?.status).toBe('waiting');
    expect((await node.monitor!.getJob(live))?.status).toBe('running');
    hold.release('cli-prune');
    await node.engine.waitFor(live);
  });

  it('the route answers exactly its fields, and refuses a bad body with 400 naming the field', async () => {
    const post = (body: unknown): Promise<Response> =>
      fetch(`${server}/v1/admin/prune`, {
        method: 'POST',
        headers: authHeaders(),
        body: JSON.stringify(body),
      });
    const ok = await post({ olderThanMs: 3_600_000, dryRun: true });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({
      trees: 0,
      commands: 0,
      tasks: 0,
      undo: 0,
      jobs: 0,
      more: false,
    });
    for (const [body, field] of [
      [{}, 'olderThanMs'],
      [{ olderThanMs: -1 }, 'olderThanMs'],
      [{ olderThanMs: '30d' }, 'olderThanMs'],
      [{ olderThanMs: 1, dryRun: 'yes' }, 'dryRun'],
      [{ olderThanMs: 1, batch: 5 }, 'batch'],
    ] as const) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const error = ((await res.json()) as { error: { code: string; details: unknown } }).error;
      expect(error.code).toBe('BAD_REQUEST');
      expect(JSON.stringify(error.details)).toContain(field);
    }
  });

  it('--store on the file the node holds is refused, saying to go through the node', async () => {
    const r = await coco('prune', '--older-than', '1ms', '--store', `sqlite:${file}`);
    expect(r.code).toBe(6);
    expect(r.err).toContain('STORE_IN_USE');
    expect(r.err).toContain('without --store');
  });

  it('--store on the file once the node is stopped: trees and jobs go, and a node starts on it again', async () => {
    const id = await settledGroup(node);
    await node.close();
    await aMillisecond();
    const dry = await coco(
      'prune',
      '--older-than',
      '1ms',
      '--store',
      `sqlite:${file}`,
      '--dry-run',
      '--json',
    );
    expect(dry.code, dry.err).toBe(0);
    expect(answer.parse(JSON.parse(dry.out))).toMatchObject({ trees: 2, jobs: 2, dryRun: true });
    const real = await coco('prune', '--older-than', '1ms', '--store', `sqlite:${file}`);
    expect(real.code, real.err).toBe(0);
    expect(real.out).toMatch(/^pruned 2 trees .*: 5 commands, 3 tasks, 5 undo steps, 2 jobs$/);
    // The file is free again: a node opens it, and the pruned tree is gone.
    const config = parseConfig(
      { store: `sqlite:${file}`, api: { port: 0, tokens: testTokens() } },
      dir,
    );
    node = await startNode({
      config,
      commands: t.all,
      broker: inProcessAgents(['a1']),
      logger: quiet,
    });
    server = node.url!;
    expect(await node.engine.get(id)).toBeNull();
    expect(await node.monitor!.getJob(id)).toBeNull();
  });
});

describePg('coco prune --store on PostgreSQL beside a running node', () => {
  const fresh = freshSchema('coco_prune');
  let node: CocoNode;
  const url = (): string => {
    const u = new URL(PG_URL);
    u.searchParams.set('schema', fresh.schema);
    return u.toString();
  };

  beforeAll(async () => {
    const config = parseConfig(
      { store: url(), api: { port: 0, tokens: testTokens() } },
      process.cwd(),
    );
    node = await startNode({
      config,
      commands: t.all,
      broker: inProcessAgents(['a1'], { verbs: hold.verbs }),
      logger: quiet,
      listen: false,
    });
  });
  afterAll(async () => {
    await node.close();
    await fresh.drop();
  });

  it('prunes the settled trees and their jobs; the live tree and the node go on', async () => {
    const ids = [await settledGroup(node), await settledGroup(node)];
    const { id: live } = await node.engine.submit(t.group, {
      name: 'held',
      children: [{ name: 'h', verb: 'hold', args: { key: 'pg-prune' } }],
    });
    await aMillisecond();
    const r = await coco('prune', '--older-than', '1ms', '--store', url(), '--json');
    expect(r.code, r.err).toBe(0);
    expect(answer.parse(JSON.parse(r.out))).toMatchObject({ trees: 2, commands: 6, jobs: 2 });
    for (const id of ids) {
      expect(await node.engine.get(id)).toBeNull();
      expect(await node.monitor!.getJob(id)).toBeNull();
    }
    hold.release('pg-prune');
    await node.engine.waitFor(live);
    expect((await node.engine.get(live))?.status).toBe('succeeded');
  });
});
