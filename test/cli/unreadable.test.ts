/**
 * A command row that cannot be read (bad JSON written into the file by hand) must not stop a
 * node: `coco serve` starts (engine and job view), everything else runs and lists, and the API
 * and `coco list` say which row was skipped and why.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents, type InProcessBroker } from '../../src/brokers/in-process/broker.js';
import { parseConfig } from '../../src/config/config.js';
import { defineCommand, type StageContext } from '../../src/core/command-type.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import { authHeaders, testTokens, TOKENS } from '../support/api.js';
import { holdVerbs, tempDir } from '../support/harness.js';
import { setCommandColumn } from '../support/sqlite-rows.js';
import { coco } from './support.js';

// The CLI calls the nodes of this file with the admin token (COCO_TOKEN).
process.env.COCO_TOKEN = TOKENS.admin;

const hold = holdVerbs();
const leaf = defineCommand({
  name: 'rows.leaf',
  childOnly: true,
  schema: z.object({}),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});
/** A chain: a child that ends at once, then a task held until the test releases it. */
const chainDefinition = {
  name: 'rows.chain',
  schema: z.object({ key: z.string() }),
  execute(ctx: StageContext<{ key: string }>) {
    ctx.addChild(leaf, {});
  },
  next(ctx: StageContext<{ key: string }>) {
    if (ctx.command.stage === 1)
      ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.key } });
  },
};
const chain = defineCommand(chainDefinition);

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

describe('coco serve with a command row that cannot be read', () => {
  let dir: string;
  let broker: InProcessBroker;
  let node: CocoNode | null = null;

  const start = async (): Promise<CocoNode> => {
    const config = parseConfig(
      { store: `sqlite:${join(dir, 'coco.db')}`, api: { port: 0, tokens: testTokens() } },
      dir,
    );
    node = await startNode({ config, commands: [chain, leaf], broker, logger: quiet });
    return node;
  };

  beforeEach(() => {
    dir = tempDir('coco-cli-rows-');
    broker = inProcessAgents(['a1'], { verbs: hold.verbs });
  });
  afterEach(async () => {
    await node?.close();
    node = null;
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts, runs and lists the rest, and reports the row with its reason', async () => {
    let n = await start();
    const running = await n.engine.submit(chain, { key: 'rows-1' });
    const ended = await n.engine.submit(chain, { key: 'rows-2' });
    hold.release('rows-2');
    expect((await n.engine.waitFor(ended.id)).status).toBe('succeeded');
    const child = (await n.engine.inspect(running.id))?.children[0];
    expect(child).toBeDefined();
    await n.engine.waitFor(child!.id);
    await n.close();
    // The running job's ended child: the job view rebuilds that job at start.
    setCommandColumn(join(dir, 'coco.db'), child!.id, 'params', '{"broken');

    n = await start();
    const server = n.url!;
    // The parent of the unreadable row is left as it is (it would run without its child);
    // everything else runs.
    expect(n.startReport.loadFailed).toBe(2);
    const more = await n.engine.submit(chain, { key: 'rows-3' });
    hold.release('rows-3');
    expect((await n.engine.waitFor(more.id)).status).toBe('succeeded');

    const list = await coco('list', '--server', server);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(new RegExp(`${more.id}.*rows\\.chain.*succeeded`));
    expect(list.out).toMatch(new RegExp(`${running.id}.*rows\\.chain.*waiting`));
    expect(list.out).toMatch(
      new RegExp(`${child!.id}.*cannot be read.*commands row ${child!.id}.*params: invalid JSON`),
    );
    const json = await coco('list', '--server', server, '--json');
    const page = z
      .object({
        commands: z.array(z.object({ id: z.number() })),
        unreadable: z.array(
          z.object({ commandId: z.number(), error: z.object({ code: z.string() }) }),
        ),
      })
      .parse(JSON.parse(json.out));
    expect(page.commands.map((c) => c.id)).not.toContain(child!.id);
    expect(page.unreadable).toEqual([
      expect.objectContaining({
        commandId: child!.id,
        error: expect.objectContaining({ code: 'CORRUPT_ROW' }) as unknown,
      }),
    ]);
    // The parent's details list its readable children, report the other, and say why the
    // parent is left as it is.
    const res = await fetch(`${server}/v1/commands/${running.id}`, {
      headers: authHeaders('viewer'),
    });
    expect(await res.json()).toMatchObject({
      children: [],
      unreadableChildren: [{ commandId: child!.id, error: { code: 'CORRUPT_ROW' } }],
      unloadable: { code: 'CORRUPT_ROW' },
    });
    // It cannot be ended here: the engine cannot write what it cannot read.
    const cancel = await coco('cancel', String(running.id), '--server', server);
    expect(cancel.code).toBe(6);
    expect(cancel.err).toMatch(
      new RegExp(
        `CORRUPT_ROW.*command ${running.id} cannot be ended here: .*repair or remove that row`,
      ),
    );
  });

  it('coco cancel ends a command whose parameters can no longer be loaded', async () => {
    let n = await start();
    const { id } = await n.engine.submit(chain, { key: 'rows-4' });
    await n.engine.waitFor((await n.engine.inspect(id))!.children[0]!.id);
    await n.close();
    // The same type and version, but a schema its stored parameters no longer pass.
    const stricter = defineCommand({
      ...chainDefinition,
      schema: z.object({ key: z.string(), pool: z.string() }),
    });
    const config = parseConfig(
      { store: `sqlite:${join(dir, 'coco.db')}`, api: { port: 0, tokens: testTokens() } },
      dir,
    );
    node = n = await startNode({ config, commands: [stricter, leaf], broker, logger: quiet });
    expect(n.startReport.loadFailed).toBe(1);
    expect((await n.engine.get(id))?.status).toBe('waiting');
    const cancel = await coco('cancel', String(id), '--server', n.url!);
    expect(cancel.code).toBe(0);
    const ended = await n.engine.waitFor(id);
    expect(ended).toMatchObject({ status: 'failed', error: { code: 'COMMAND_UNLOADABLE' } });
    const list = await coco('list', '--server', n.url!);
    expect(list.out).toMatch(new RegExp(`${id}.*rows\\.chain.*failed.*COMMAND_UNLOADABLE`));
  });
});
