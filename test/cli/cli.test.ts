/**
 * The `coco` CLI: help and usage errors, and every client subcommand against a real node (engine
 * on SQLite, job view, HTTP API on loopback) with in-process agents.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import type { CocoNode } from '../../src/server/node.js';
import { holdVerbs } from '../support/harness.js';
import { coco, startCliNode, type CliNode } from './support.js';
import { migrations as sqliteMigrations } from '../../src/generated/sqlite-migrations.js';

const hold = holdVerbs();
const work = defineCommand({
  name: 'cli.work',
  aliases: ['cli.old-work'],
  schema: z.object({
    tasks: z.number().int().min(0).max(5),
    verb: z.enum(['noop', 'hold', 'fail']).default('noop'),
  }),
  execute(ctx) {
    ctx.expect({ tasks: ctx.params.tasks });
    for (let i = 0; i < ctx.params.tasks; i++) {
      ctx.startTask({
        agent: 'a1',
        verb: ctx.params.verb,
        args:
          ctx.params.verb === 'hold'
            ? { key: 'cli' }
            : ctx.params.verb === 'fail'
              ? { message: 'on purpose' }
              : null,
      });
    }
  },
});

/** A noop task, then (its end stored first) a task failing on purpose, whose insert may be refused. */
const later = defineCommand({
  name: 'cli.later',
  schema: z.object({}),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
  async next(ctx) {
    if (ctx.command.stage !== 1) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
    ctx.startTask({ agent: 'a1', verb: 'fail', args: { message: 'refuse-me' } });
  },
});

/** A type only other commands create: submitting it is refused. */
const stage = defineCommand({
  name: 'cli.stage',
  childOnly: true,
  createdBy: ['cli.work'],
  schema: z.object({}),
  execute() {},
});

describe('coco CLI: help and usage', () => {
  it('--help lists every subcommand and the exit codes', async () => {
    const r = await coco('--help');
    expect(r.code).toBe(0);
    for (const sub of [
      'serve',
      'agent',
      'submit',
      'status',
      'list',
      'cancel',
      'release',
      'migrate',
      'demo',
    ])
      expect(r.out).toContain(sub);
    expect(r.out).toContain('Exit codes');
  });

  it('each subcommand has useful help', async () => {
    const r = await coco('submit', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toContain('--params');
    expect(r.out).toContain('--wait');
  });

  it('bad arguments give a clear error and exit 2', async () => {
    expect((await coco('no-such-command')).code).toBe(2);
    const missing = await coco('submit', 'x');
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('--params');
    const badId = await coco('status', 'abc');
    expect(badId.code).toBe(2);
    expect(badId.err).toContain('"abc" is not a command id');
    const badJson = await coco('submit', 'x', '--params', '{nope');
    expect(badJson.code).toBe(2);
    expect(badJson.err).toContain('--params must be JSON');
  });

  it('coco agent refuses a --max-volume-bytes that is not a positive whole number, exit 2', async () => {
    for (const bad of ['abc', '0', '-5', '1.5', '1e12', '99999999999999999999']) {
      const r = await coco('agent', '--id', 'h1', '--max-volume-bytes', bad);
      expect(r.code, bad).toBe(2);
      expect(r.err).toContain(
        `--max-volume-bytes must be a positive whole number of bytes, not "${bad}"`,
      );
    }
  });

  it('a node that is not there is reported with what to do, exit 3', async () => {
    const r = await coco('list', '--server', 'http://127.0.0.1:9');
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/cannot reach a coco node at http:\/\/127\.0\.0\.1:9.*coco serve/);
  });
});

describe('coco CLI against a running node', () => {
  let cli: CliNode;
  let dir: string;
  let node: CocoNode;
  let server: string;

  beforeAll(async () => {
    // The CLI finds the node's own token through COCO_TOKEN here (beside its store: see below).
    cli = await startCliNode({
      prefix: 'coco-cli-',
      commands: [work, stage, later],
      verbs: hold.verbs,
    });
    ({ dir, node, server } = cli);
  });
  afterAll(() => cli.close());

  it('finds the token the node created beside its store (--store), else says where it looked: exit 7', async () => {
    const token = process.env.COCO_TOKEN;
    delete process.env.COCO_TOKEN;
    try {
      const store = `sqlite:${join(dir, 'coco.db')}`;
      const found = await coco('list', '--server', server, '--store', store, '--json');
      expect(found.code, found.err).toBe(0);
      const missing = await coco(
        'list',
        '--server',
        server,
        '--store',
        `sqlite:${join(dir, 'x.db')}`,
      );
      expect(missing.code).toBe(7);
      expect(missing.err).toContain('UNAUTHORIZED');
      expect(missing.err).toContain(`${join(dir, 'x.db')}.token`);
      const refused = await coco('list', '--server', server, '--token', 'in-the-arguments-0123');
      expect(refused.code).toBe(2);
      expect(refused.err).toContain('--token is not accepted');
    } finally {
      process.env.COCO_TOKEN = token;
    }
  });

  it('submit --json gives the id; status shows the job tree; list shows it', async () => {
    const submitted = await coco(
      'submit',
      'cli.work',
      '--params',
      '{"tasks":2}',
      '--server',
      server,
      '--json',
    );
    expect(submitted.code).toBe(0);
    const { id } = z.object({ id: z.number() }).parse(JSON.parse(submitted.out));
    await node.engine.waitFor(id);
    await node.monitor!.flush();
    const status = await coco('status', String(id), '--server', server);
    expect(status.code).toBe(0);
    expect(status.out).toMatch(new RegExp(`job ${id} cli\\.work .*100%.*succeeded`));
    expect(status.out).toContain('task noop@a1');
    const json = await coco('status', String(id), '--server', server, '--json');
    expect(JSON.parse(json.out)).toMatchObject({ job: { id, status: 'succeeded', progress: 100 } });
    const list = await coco('list', '--server', server, '--type', 'cli.work');
    expect(list.out).toMatch(new RegExp(`${id}.*cli\\.work.*succeeded`));
  });

  it('submit --wait follows the job and exits 1 when it fails', async () => {
    const r = await coco(
      'submit',
      'cli.work',
      '--params',
      '{"tasks":1,"verb":"fail"}',
      '--server',
      server,
      '--wait',
    );
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/failed/);
  });

  it('invalid parameters are refused naming the field, exit 5, nothing stored', async () => {
    const before = (await node.engine.list()).commands.length;
    const r = await coco('submit', 'cli.work', '--params', '{"tasks":"two"}', '--server', server);
    expect(r.code).toBe(5);
    expect(r.err).toContain('PARAMETERS_INVALID');
    expect(r.err).toContain('tasks');
    const unknown = await coco('submit', 'no.such.type', '--params', '{}', '--server', server);
    expect(unknown.code).toBe(5);
    expect(unknown.err).toContain('unknown command type "no.such.type"');
    const renamed = await coco('submit', 'cli.old-work', '--params', '{}', '--server', server);
    expect(renamed.code).toBe(5);
    expect(renamed.err).toContain('command type "cli.old-work" was renamed "cli.work"');
    expect((await node.engine.list()).commands.length).toBe(before);
  });

  it('a child-only type is refused: HTTP 422, exit 5, nothing stored', async () => {
    const before = (await node.engine.list()).commands.length;
    const r = await coco('submit', 'cli.stage', '--params', '{}', '--server', server);
    expect(r.code).toBe(5);
    expect(r.err).toContain('COMMAND_TYPE_NOT_SUBMITTABLE');
    expect(r.err).toMatch(/"cli\.stage" runs only as a child.*cli\.work/);
    const res = await fetch(`${server}/v1/commands`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${process.env.COCO_TOKEN ?? ''}`,
      },
      body: JSON.stringify({ type: 'cli.stage', params: {} }),
    });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({
      error: { code: 'COMMAND_TYPE_NOT_SUBMITTABLE', details: { commandType: 'cli.stage' } },
    });
    expect((await node.engine.list()).commands.length).toBe(before);
  });

  it('cancel stops a running command and its tasks', async () => {
    const submitted = await coco(
      'submit',
      'cli.work',
      '--params',
      '{"tasks":1,"verb":"hold"}',
      '--server',
      server,
      '--json',
    );
    const { id } = z.object({ id: z.number() }).parse(JSON.parse(submitted.out));
    const cancel = await coco('cancel', String(id), '--server', server);
    expect(cancel.code).toBe(0);
    expect(cancel.out).toContain(`cancel of command ${id} requested`);
    expect((await node.engine.waitFor(id)).status).toBe('cancelled');
    const again = await coco('cancel', String(id), '--server', server);
    expect(again.code).toBe(8); // the command has already ended
    expect(again.err).toContain('COMMAND_STATE');
    // Only a tree held because the store refused it is released.
    const release = await coco('release', String(id), '--server', server);
    expect(release.code).toBe(8);
    expect(release.err).toMatch(/COMMAND_STATE.*not held on this node/s);
  });

  it('status --watch follows a job live until it ends', async () => {
    const { id } = await node.engine.submit(work, { tasks: 1, verb: 'hold' });
    await node.monitor!.flush();
    const listening = node.monitor!.events.has('step');
    const watching = coco('status', String(id), '--watch', '--server', server, '--json');
    // End the job once the stream is open (the API then listens to the monitor's steps).
    while (node.monitor!.events.has('step') === listening)
      await new Promise((r) => setImmediate(r));
    await node.engine.cancel(id);
    const watched = await watching;
    expect(watched.code).toBe(1);
    const events = watched.out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { job: { status: string } });
    expect(events.length).toBeGreaterThanOrEqual(2);
    expect(events[0]!.job.status).toBe('running');
    expect(events.at(-1)!.job).toMatchObject({ id, status: 'cancelled' });
  });

  it('status of a command whose job is not written yet waits for it (just submitted, maybe on another node)', async () => {
    const { id } = await node.engine.submit(work, { tasks: 1 });
    await node.engine.waitFor(id);
    await node.monitor!.flush();
    // The job row appears only on the third look, as when the node running the command has
    // not written it yet.
    const monitor = node.monitor!;
    const getTree = monitor.getTree.bind(monitor);
    let looks = 0;
    monitor.getTree = async (jobId) => (jobId === id && ++looks < 3 ? null : getTree(jobId));
    try {
      const status = await coco('status', String(id), '--server', server);
      expect(status.code, status.err).toBe(0);
      expect(status.out).toMatch(new RegExp(`job ${id} cli\\.work .*succeeded`));
      expect(looks).toBe(3);
    } finally {
      monitor.getTree = getTree;
    }
  });

  it('a job that does not exist: exit 4', async () => {
    const r = await coco('status', '999999', '--server', server);
    expect(r.code).toBe(4);
  });

  it('migrate creates the schema of a new store', async () => {
    const r = await coco('migrate', '--store', `sqlite:${join(dir, 'other.db')}`, '--json');
    expect(r.code).toBe(0);
    // The latest migration of the SQLite store (each branch that adds one need not edit this).
    expect(JSON.parse(r.out)).toMatchObject({
      store: { current: sqliteMigrations.at(-1)!.version },
    });
    const bad = await coco('migrate', '--store', 'mysql://x');
    expect(bad.code).toBe(5);
    expect(bad.err).toContain('use sqlite:<path>');
  });

  it('serve with no agents configured says how to configure them, exit 5, and creates nothing', async () => {
    const store = join(dir, 'no-agents', 'coco.db');
    const r = await coco('serve', '--store', `sqlite:${store}`, '--port', '0');
    expect(r.code).toBe(5);
    expect(r.err).toContain('no agents configured');
    expect(r.err).toContain('"agents" in the configuration file');
    // Neither the node's token file nor the store's folder.
    expect(existsSync(join(dir, 'no-agents'))).toBe(false);
  });

  it('serve and agent on a port already taken say so, exit 5, before they start', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const file = join(dir, 'taken.json');
      writeFileSync(
        file,
        JSON.stringify({
          store: 'sqlite:taken/coco.db',
          api: { port },
          agents: [{ id: 'h1', url: 'http://127.0.0.1:9', secret: 'port-test-secret-0123456' }],
        }),
      );
      const r = await coco('serve', '--config', file);
      expect(r.code).toBe(5);
      expect(r.err).toContain(`cannot serve the API on 127.0.0.1:${port} (EADDRINUSE`);
      // The engine never opened its store (it would have resumed work and called its agents).
      expect(existsSync(join(dir, 'taken', 'coco.db'))).toBe(false);
      // The agent likewise, before its data folder is made.
      const secretFile = join(dir, 'taken-agent.secret');
      writeFileSync(secretFile, 'port-test-secret-0123456\n', { mode: 0o600 });
      const agent = await coco(
        'agent',
        '--id',
        'h1',
        '--port',
        String(port),
        '--secret-file',
        secretFile,
        '--data-dir',
        join(dir, 'taken-agent'),
      );
      expect(agent.code).toBe(5);
      expect(agent.err).toContain(`cannot serve the agent on 127.0.0.1:${port} (EADDRINUSE`);
      expect(agent.err).toContain('--port / --host');
      expect(existsSync(join(dir, 'taken-agent'))).toBe(false);
    } finally {
      taken.close();
    }
  });

  it('status says why a tree the store refused is held and what ends it; release runs it on (last: the node rejoins)', async () => {
    const db = new Database(join(dir, 'coco.db'));
    db.exec(
      "CREATE TRIGGER refuse BEFORE INSERT ON tasks WHEN NEW.args LIKE '%refuse-me%' " +
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    );
    db.close();
    const first = node.engine;
    const { id } = await first.submit(later, {});
    await expect.poll(() => node.engine !== first, { timeout: 10_000 }).toBe(true);
    await node.rejoined();
    await expect
      .poll(async () => (await node.engine.inspect(id))?.releasable, { timeout: 10_000 })
      .toBe(true);
    await node.monitor!.flush();
    const status = await coco('status', String(id), '--server', server);
    expect(status.out).toMatch(/held: TREE_REFUSED: the store refused the changes/);
    expect(status.out).toContain(`once the cause is gone: coco release ${id}`);
    const cure = new Database(join(dir, 'coco.db'));
    cure.exec('DROP TRIGGER refuse');
    cure.close();
    const release = await coco('release', String(id), '--server', server);
    expect(release.code).toBe(0);
    expect(release.out).toContain(`tree ${id} released: 1 command(s) run on`);
    // It runs on: its second task fails on purpose, so the command fails.
    expect((await node.engine.waitFor(id)).error?.code).toBe('TASK_FAILED');
  });
});
