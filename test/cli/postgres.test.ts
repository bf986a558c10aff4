/**
 * The CLI and a node on a `postgres://` store URL: `coco migrate` creates the schema (engine and
 * job view tables) in the URL's schema, and a node on PostgreSQL serves the CLI's submit and
 * status as it does on SQLite.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { parseConfig } from '../../src/config/config.js';
import { parseStoreUrl, storeFromUrl } from '../../src/config/store-url.js';
import { defineCommand } from '../../src/core/command-type.js';
import { SLOW_OPEN_MS, SLOW_OPEN_TEXT, startNode, type CocoNode } from '../../src/server/node.js';
import { testTokens, TOKENS } from '../support/api.js';
import { holdVerbs } from '../support/harness.js';
import { adminQuery, describePg, freshSchema, PG_URL } from '../support/pg.js';
import { coco, cocoSeeing } from './support.js';
import { CuttingProxy } from '../store-conformance/pg-harness.js';
import { migrations } from '../../src/generated/postgres-migrations.js';

// The CLI calls the nodes of this file with the admin token (COCO_TOKEN).
process.env.COCO_TOKEN = TOKENS.admin;

const hold = holdVerbs();
const work = defineCommand({
  name: 'pg.work',
  schema: z.object({ tasks: z.number().int().min(0).max(5), hold: z.string().optional() }),
  execute(ctx) {
    ctx.expect({ tasks: ctx.params.tasks });
    for (let i = 0; i < ctx.params.tasks; i++) {
      ctx.startTask(
        ctx.params.hold === undefined
          ? { agent: 'a1', verb: 'noop' }
          : { agent: 'a1', verb: 'hold', args: { key: ctx.params.hold } },
      );
    }
  },
});

/** The test server's URL with a `schema` parameter. */
function storeUrl(schema: string): string {
  const url = new URL(PG_URL);
  url.searchParams.set('schema', schema);
  return url.toString();
}

it('postgres store URLs: schema parameter, password never shown, clear errors', () => {
  expect(parseStoreUrl('postgres://u:secret@db.example:5433/coco?schema=tenant_a')).toEqual({
    kind: 'postgres',
    url: 'postgres://u:secret@db.example:5433/coco',
    schema: 'tenant_a',
  });
  expect(parseStoreUrl('postgresql://db.example/coco')).toMatchObject({ schema: 'coco' });
  expect(() => parseStoreUrl('postgres://u:secret@db/x?schema=Bad-Name')).toThrow(
    /postgres:\/\/u:\*\*\*@db\/x\?schema=Bad-Name.*lower-case SQL identifier/,
  );
  expect(() => parseStoreUrl('postgres://u:secret@db/x?schema=Bad-Name')).not.toThrow(/secret/);
  expect(parseStoreUrl('postgres://db/x?applyConnections=3&leaseMs=5000')).toEqual({
    kind: 'postgres',
    url: 'postgres://db/x',
    schema: 'coco',
    leaseMs: 5000,
    applyConnections: 3,
  });
  expect(() => parseStoreUrl('postgres://db/x?applyConnections=9')).toThrow(
    /applyConnections "9" must be a whole number from 1 to 8/,
  );
  expect(parseStoreUrl('postgres://db/x?poolSize=40')).toEqual({
    kind: 'postgres',
    url: 'postgres://db/x',
    schema: 'coco',
    poolSize: 40,
  });
  for (const bad of ['2', '1001', '0', '-5', '4.5', '', 'ten']) {
    expect(() => parseStoreUrl(`postgres://db/x?poolSize=${bad}`)).toThrow(
      new RegExp(`poolSize "${bad}" must be a whole number of connections from 3 to 1000`),
    );
  }
  // Too small for its apply connections: the store's own check names both.
  expect(() => storeFromUrl('postgres://db/x?poolSize=3&applyConnections=2')).toThrow(
    /poolSize: 3 is too small for 2 apply connections/,
  );
  expect(parseStoreUrl('postgres://db/x?statementTimeoutMs=0&sslmode=require')).toEqual({
    kind: 'postgres',
    url: 'postgres://db/x?sslmode=require',
    schema: 'coco',
    statementTimeoutMs: 0,
  });
  expect(parseStoreUrl('postgres://db/x?statementTimeoutMs=86400000')).toMatchObject({
    statementTimeoutMs: 86_400_000,
  });
  for (const bad of ['-1', '1.5', '86400001', '', '030', 'abc']) {
    expect(() => parseStoreUrl(`postgres://db/x?statementTimeoutMs=${bad}`)).toThrow(
      new RegExp(`statementTimeoutMs "${bad}" must be a whole number of milliseconds`),
    );
  }
});

describePg('coco on a postgres:// store', () => {
  const fresh = freshSchema('coco_cli');
  let node: CocoNode;
  let other: CocoNode;
  let server: string;

  beforeAll(async () => {
    const r = await coco('migrate', '--store', storeUrl(fresh.schema), '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      store: { current: migrations.at(-1)?.version },
      jobs: { current: 2 },
    });
    const config = parseConfig(
      { store: storeUrl(fresh.schema), api: { port: 0, tokens: testTokens() } },
      process.cwd(),
    );
    const agents = inProcessAgents(['a1'], { verbs: hold.verbs });
    const quiet = { debug() {}, info() {}, warn() {}, error() {} };
    node = await startNode({ config, commands: [work], broker: agents, logger: quiet });
    other = await startNode({
      config: { ...config, nodeId: 'other-node' },
      commands: [work],
      broker: agents,
      logger: quiet,
    });
    server = node.url!;
  });
  afterAll(async () => {
    await other?.close();
    await node?.close();
    await fresh.drop();
  });

  it('migrate put the engine and job tables in the URL’s schema', async () => {
    const { rows } = await adminQuery(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = '${fresh.schema}'`,
    );
    const tables = rows.map((r: { table_name: string }) => r.table_name);
    expect(tables).toEqual(expect.arrayContaining(['commands', 'tasks', 'coco_nodes', 'job_jobs']));
  });

  it('submit --wait and status work against a node on PostgreSQL', async () => {
    const submitted = await coco(
      'submit',
      'pg.work',
      '--params',
      '{"tasks":3}',
      '--server',
      server,
      '--wait',
    );
    expect(submitted.code, submitted.err).toBe(0);
    expect(submitted.out).toMatch(/job \d+ pg\.work .*100%.*succeeded/);
    const id = Number(/job (\d+)/.exec(submitted.out)![1]);
    await node.monitor!.flush();
    const status = await coco('status', String(id), '--server', server, '--json');
    expect(JSON.parse(status.out)).toMatchObject({
      job: { id, status: 'succeeded', progress: 100 },
    });
    const row = await node.engine.get(id);
    expect(row?.owner).toBe(node.engine.nodeId);
  });

  it('status --watch on another node follows a job to its end; cancel through it works', async () => {
    const submitted = await coco(
      'submit',
      'pg.work',
      '--params',
      '{"tasks":1,"hold":"w"}',
      '--server',
      server,
      '--json',
    );
    const { id } = z.object({ id: z.number() }).parse(JSON.parse(submitted.out));
    // The job ends only once the watcher on the other node has read it running: its end then
    // reaches the watcher through the other node's re-reads, never through that node's monitor.
    const monitor = other.monitor!;
    const getTree = monitor.getTree.bind(monitor);
    monitor.getTree = async (jobId) => {
      const tree = await getTree(jobId);
      if (jobId === id && tree?.job.status === 'running') hold.release('w');
      return tree;
    };
    const watched = await coco('status', String(id), '--watch', '--server', other.url!);
    expect(watched.code, watched.err).toBe(0);
    expect(watched.out).toMatch(new RegExp(`job ${id} pg\\.work .*100%.*succeeded`));

    const second = await coco(
      'submit',
      'pg.work',
      '--params',
      '{"tasks":1,"hold":"never"}',
      '--server',
      server,
      '--json',
    );
    const { id: id2 } = z.object({ id: z.number() }).parse(JSON.parse(second.out));
    const cancel = await coco('cancel', String(id2), '--server', other.url!);
    expect(cancel.code, cancel.err).toBe(0);
    const ended = await coco('status', String(id2), '--watch', '--server', other.url!);
    expect(ended.out).toMatch(/cancelled/);
  });
});

describePg("a store URL's poolSize", () => {
  it('sizes the pool: calls beyond it wait for a connection, and the store shows them waiting', async () => {
    const fresh = freshSchema('coco_pool');
    const url = new URL(storeUrl(fresh.schema));
    url.searchParams.set('poolSize', '3');
    url.searchParams.set('applyConnections', '1');
    const store = storeFromUrl(url.toString());
    try {
      await store.open('n');
      let done = false;
      const reads = Promise.all(Array.from({ length: 20 }, (_, i) => store.getCommand(i + 1)));
      void reads.finally(() => (done = true));
      // The figures seen at each turn of the event loop while the reads go on.
      let open = 0;
      let waiting = 0;
      while (!done) {
        const now = store.connections?.();
        open = Math.max(open, now?.open ?? 0);
        waiting = Math.max(waiting, now?.waiting ?? 0);
        await new Promise((r) => setImmediate(r));
      }
      expect(await reads).toEqual(Array.from({ length: 20 }, () => null));
      expect(open).toBe(3);
      expect(waiting).toBeGreaterThan(0);
      expect(store.connections?.().waiting).toBe(0);
    } finally {
      await store.close('n');
      await fresh.drop();
    }
  });
});

describePg('coco migrate against a store that does not answer yet', () => {
  const fresh = freshSchema('coco_cli_slow');
  const proxy = new CuttingProxy();
  afterAll(async () => {
    proxy.refuse = false;
    await proxy.stop();
    await fresh.drop();
  });

  it('says so on stderr after SLOW_OPEN_MS, without the password, and migrates once it answers', async () => {
    const url = new URL(await proxy.start());
    url.password = 'not-a-real-password';
    url.searchParams.set('schema', fresh.schema);
    // Refused until the migration has said that it waits.
    proxy.refuse = true;
    const started = Date.now();
    let saidAfter = -1;
    const r = await cocoSeeing(
      (text) => {
        if (!text.includes(SLOW_OPEN_TEXT)) return;
        saidAfter = Date.now() - started;
        proxy.refuse = false;
      },
      'migrate',
      '--store',
      url.toString(),
      '--json',
    );
    expect(r.code, r.err).toBe(0);
    expect(saidAfter).toBeGreaterThanOrEqual(SLOW_OPEN_MS - 100);
    expect(r.err).toContain(`store postgres://postgres:***@`);
    expect(r.err).not.toContain('not-a-real-password');
    expect(JSON.parse(r.out)).toMatchObject({ store: { current: migrations.at(-1)?.version } });
  }, 60_000);
});
