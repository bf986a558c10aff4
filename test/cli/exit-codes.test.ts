/**
 * The exit codes of the README's table, one test each, against a real node (SQLite, in-process
 * agents), a real reference agent, and a plain HTTP server; `--json` errors are JSON on stdout.
 */
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { EXIT } from '../../src/cli/errors.js';
import { parseConfig } from '../../src/config/config.js';
import { defineCommand } from '../../src/core/command-type.js';
import { startAgent, type RunningAgent } from '../../src/reference-agent/index.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import { tempDir } from '../support/harness.js';
import { coco } from './support.js';

const work = defineCommand({
  name: 'exit.work',
  schema: z.object({ fail: z.boolean().default(false) }),
  execute(ctx) {
    ctx.startTask({
      agent: 'a1',
      verb: ctx.params.fail ? 'fail' : 'noop',
      args: ctx.params.fail ? { message: 'on purpose' } : null,
    });
  },
  onSuccess: () => ({ answer: 42 }),
});

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
let dir: string;
let node: CocoNode;
let server: string;
let agent: RunningAgent;
let other: Server;
let otherUrl: string;
let outage: Server;
let outageUrl: string;

beforeAll(async () => {
  dir = tempDir('coco-exit-');
  const config = parseConfig({ store: `sqlite:${join(dir, 'coco.db')}`, api: { port: 0 } }, dir);
  node = await startNode({
    config,
    commands: [work],
    broker: inProcessAgents(['a1']),
    logger: quiet,
  });
  server = node.url!;
  // The CLI finds the node's own token (created beside its store) through COCO_TOKEN here.
  process.env.COCO_TOKEN = readFileSync(join(dir, 'coco.db.token'), 'utf8').trim();
  agent = await startAgent({
    id: 'host-1',
    secret: 'exit-codes-secret-0123456789',
    dataDir: join(dir, 'agent'),
    logger: quiet,
  });
  // A server that answers with an error coco does not expect: exit 6.
  other = createServer((_req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'INTERNAL', message: 'something broke' } }));
  });
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  // A node whose store is out answers so (test/http/store-outage.test.ts): exit 9.
  outage = createServer((_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5' });
    res.end(
      JSON.stringify({
        error: {
          code: 'STORE_FAILED',
          message:
            'the store has taken no write for 6.0 s (no answer); the submission was not taken',
        },
      }),
    );
  });
  await new Promise<void>((r) => outage.listen(0, '127.0.0.1', r));
  outageUrl = `http://127.0.0.1:${(outage.address() as AddressInfo).port}`;
});
afterAll(async () => {
  delete process.env.COCO_TOKEN;
  await node.close();
  await agent.close();
  await new Promise((r) => other.close(r));
  await new Promise((r) => outage.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function submitted(params: string): Promise<number> {
  const r = await coco('submit', 'exit.work', '-p', params, '--server', server, '--json');
  return z.object({ id: z.number() }).parse(JSON.parse(r.out)).id;
}

describe('coco exit codes', () => {
  it('0: ok, and status shows the result', async () => {
    const id = await submitted('{}');
    await node.engine.waitFor(id);
    await node.monitor!.flush();
    const r = await coco('status', String(id), '--server', server);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toContain('result: {"answer":42}');
  });

  it('1: the command failed', async () => {
    const r = await coco(
      'submit',
      'exit.work',
      '-p',
      '{"fail":true}',
      '--server',
      server,
      '--wait',
    );
    expect(r.code).toBe(EXIT.failed);
  });

  it('2: a --server that is not an http(s) URL', async () => {
    for (const bad of ['localhost:7390', 'not a url', 'ftp://host/']) {
      const r = await coco('list', '--server', bad);
      expect(r.code, bad).toBe(EXIT.usage);
      expect(r.err).toContain('--server must be the http(s) address of a coco node');
    }
  });

  it('2: bad list arguments (status, limit)', async () => {
    const status = await coco('list', '--status', 'runing', '--server', server);
    expect(status.code).toBe(EXIT.usage);
    expect(status.err).toContain('unknown status "runing"');
    for (const limit of ['0', 'ten', '5000']) {
      const r = await coco('list', '--limit', limit, '--server', server);
      expect(r.code, limit).toBe(EXIT.usage);
      expect(r.err).toContain('--limit must be a whole number');
    }
  });

  it('3: no node at the address', async () => {
    expect((await coco('list', '--server', 'http://127.0.0.1:9')).code).toBe(EXIT.unreachable);
  });

  it('3: an agent at the address is not a coco node (NOT_A_COCO_NODE)', async () => {
    const r = await coco('list', '--server', agent.url);
    expect(r.code).toBe(EXIT.unreachable);
    expect(r.err).toContain('NOT_A_COCO_NODE');
    expect(r.err).toContain('looks like a coco agent');
  });

  it('4: not found', async () => {
    expect((await coco('status', '999999', '--server', server)).code).toBe(EXIT.notFound);
  });

  it('5: input refused', async () => {
    const r = await coco('submit', 'exit.work', '-p', '{"fail":"yes"}', '--server', server);
    expect(r.code).toBe(EXIT.invalid);
  });

  it('6: another error', async () => {
    const r = await coco('list', '--server', otherUrl);
    expect(r.code).toBe(EXIT.error);
    expect(r.err).toContain('something broke');
  });

  it('8: cancelling a command that has already ended says so', async () => {
    const id = await submitted('{}');
    await node.engine.waitFor(id);
    const r = await coco('cancel', String(id), '--server', server);
    expect(r.code).toBe(EXIT.ended);
    expect(r.err).toContain(`command ${id} has already ended (succeeded)`);
  });

  it('9: the node cannot take it now (its store out)', async () => {
    const r = await coco('submit', 'exit.work', '-p', '{}', '--key', 'k9', '--server', outageUrl);
    expect(r.code).toBe(EXIT.unavailable);
    expect(r.err).toContain('the store has taken no write');
  });

  it('--json errors are JSON on stdout, with the code and the exit code', async () => {
    const r = await coco('status', '999999', '--server', server, '--json');
    expect(r.code).toBe(EXIT.notFound);
    expect(JSON.parse(r.out)).toMatchObject({
      error: { code: 'NOT_FOUND' },
      exitCode: EXIT.notFound,
    });
    const usage = await coco('list', '--limit', '0', '--server', server, '--json');
    expect(JSON.parse(usage.out)).toMatchObject({ error: { code: 'USAGE' }, exitCode: EXIT.usage });
  });
});
