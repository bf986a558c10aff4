/**
 * Admission seen from outside: limits from the configuration's agents (`maxRunning`), changed
 * through `POST /v1/admin/limits`, a submit's priority (API field, `--priority`), and a queued
 * task's position in the API's command detail and in `coco status` — against a real node
 * (SQLite, job view, HTTP API on loopback) with in-process agents.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { limitsOf, parseConfig } from '../../src/config/config.js';
import { defineCommand } from '../../src/core/command-type.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import { holdVerbs, tempDir } from '../support/harness.js';
import { coco } from './support.js';

const hold = holdVerbs();
const held = defineCommand({
  name: 'adm.held',
  schema: z.object({ key: z.string() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.key } });
  },
});

const SECRET = 'admission-secret-0123456789';

describe('admission through the configuration, the API and the CLI', () => {
  let dir: string;
  let node: CocoNode;
  let server: string;
  let token: string;

  beforeAll(async () => {
    dir = tempDir('coco-adm-');
    const config = parseConfig(
      {
        store: `sqlite:${join(dir, 'coco.db')}`,
        api: { port: 0 },
        agents: [{ id: 'a1', url: 'http://127.0.0.1:9', secret: SECRET, maxRunning: 1 }],
      },
      dir,
    );
    expect(limitsOf(config)).toEqual({ agents: { a1: { maxRunning: 1 } } });
    expect(
      limitsOf(
        parseConfig(
          { admission: { ageStep: '2m', types: { 'disk.migrate': { maxRunning: 8 } } } },
          dir,
        ),
      ),
    ).toEqual({ agents: {}, ageStepMs: 120_000, types: { 'disk.migrate': { maxRunning: 8 } } });
    node = await startNode({
      config,
      commands: [held],
      broker: inProcessAgents(['a1'], { verbs: hold.verbs }),
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    });
    server = node.url!;
    // The node's own token (admin), created beside its store; the CLI finds it in COCO_TOKEN.
    token = readFileSync(join(dir, 'coco.db.token'), 'utf8').trim();
    process.env.COCO_TOKEN = token;
  });
  afterAll(async () => {
    for (const key of ['a', 'b', 'c', 'd', 'e']) hold.release(key);
    await node.close();
    delete process.env.COCO_TOKEN;
    rmSync(dir, { recursive: true, force: true });
  });

  it('queues past the configured limit, shows where a task waits, and takes new limits at run time', async () => {
    const post = async (path: string, body: unknown): Promise<Response> =>
      fetch(`${server}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
    const submit = async (key: string, priority?: number): Promise<number> => {
      const r = await post('/v1/commands', {
        type: 'adm.held',
        params: { key },
        ...(priority === undefined ? {} : { priority }),
      });
      expect(r.status).toBe(201);
      return z.object({ id: z.number() }).parse(await r.json()).id;
    };
    const a = await submit('a');
    const b = await submit('b');
    const cli = await coco(
      'submit',
      'adm.held',
      '--params',
      '{"key":"c"}',
      '--priority',
      '5',
      '--server',
      server,
      '--json',
    );
    expect(cli.code).toBe(0);
    const c = z.object({ id: z.number() }).parse(JSON.parse(cli.out)).id;
    const detail = async (id: number) =>
      z
        .object({
          queue: z.record(z.string(), z.unknown()).nullable(),
          tasks: z.array(z.object({ queue: z.record(z.string(), z.unknown()).nullable() })),
          queued: z.array(z.object({ position: z.object({ text: z.string() }) })),
        })
        .parse(
          await (
            await fetch(`${server}/v1/commands/${id}`, {
              headers: { authorization: `Bearer ${token}` },
            })
          ).json(),
        );
    const queuedOf = async (id: number): Promise<string[]> => {
      const d = await detail(id);
      // The deprecated `queued` says the same as the tasks' `queue`.
      expect(d.queued.map((q) => q.position.text)).toEqual(
        d.tasks.flatMap((t) => (t.queue ? [t.queue.text] : [])),
      );
      return d.tasks.flatMap((t) => (t.queue ? [String(t.queue.text)] : []));
    };
    // a runs; c (priority 5) is ahead of b.
    await node.monitor!.flush();
    while ((await queuedOf(b)).length === 0) await node.monitor!.flush();
    expect(await queuedOf(a)).toEqual([]);
    expect(await queuedOf(c)).toEqual(['queued for a1: 0 ahead, limit 1']);
    expect(await queuedOf(b)).toEqual(['queued for a1: 1 ahead, limit 1']);
    // The command's `queue`: its best-placed queued task, what it waits for.
    const bq = {
      agent: 'a1',
      ahead: 1,
      limit: 1,
      running: 1,
      text: 'queued for a1: 1 ahead, limit 1',
    };
    expect((await detail(b)).queue).toEqual({ ordinal: 0, ...bq });
    expect((await detail(b)).tasks[0]?.queue).toEqual(bq);
    expect((await detail(a)).queue).toBeNull();
    expect((await detail(a)).tasks[0]?.queue).toBeNull();
    await node.monitor!.flush();
    const status = await coco('status', String(b), '--server', server);
    expect(status.code).toBe(0);
    expect(status.out).toContain('queued');
    expect(status.out).toContain(`task ${b}/0 queued for a1: 1 ahead, limit 1`);

    const bad = await post('/v1/admin/limits', { agents: { a1: { maxRunning: 0 } } });
    expect(bad.status).toBe(400);
    const ok = await post('/v1/admin/limits', { agents: { a1: { maxRunning: 3 } } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({
      limits: { agents: { a1: { maxRunning: 3 } } },
      agents: [{ agentId: 'a1', limit: 3, running: 3, queued: 0 }],
    });
    // A root limit per type (set at run time: the roots already running are not counted): d
    // runs, e waits for d's slot, and its `queue` says so.
    const typed = await post('/v1/admin/limits', {
      agents: { a1: { maxRunning: 3, maxRunningByVerb: { hold: 3 } } },
      types: { 'adm.held': { maxRunning: 1 } },
    });
    expect(typed.status).toBe(200);
    const d = await submit('d');
    const e = await submit('e');
    expect((await detail(e)).queue).toEqual({
      type: 'adm.held',
      ahead: 0,
      limit: 1,
      nodeLimit: null,
      paused: null,
      text: 'queued: 0 ahead, adm.held limit 1',
    });
    const eStatus = await coco('status', String(e), '--server', server);
    expect(eStatus.out).toContain(`command ${e} queued: 0 ahead, adm.held limit 1`);
    // d's task waits for a1 (3 running, a verb limit too): verb and its limit are named.
    await node.monitor!.flush();
    while ((await detail(d)).tasks[0]?.queue == null) await node.monitor!.flush();
    expect((await detail(d)).tasks[0]?.queue).toEqual({
      agent: 'a1',
      verb: 'hold',
      verbLimit: 3,
      ahead: 0,
      limit: 3,
      running: 3,
      text: 'queued for a1: 0 ahead, limit 3, hold limit 3',
    });
    for (const key of ['a', 'b', 'c', 'd', 'e']) hold.release(key);
    for (const id of [a, b, c, d, e])
      expect((await node.engine.waitFor(id)).status).toBe('succeeded');
  });
});
