/**
 * `coco types`, `coco pause` and `coco resume` against a real node (SQLite, job view, HTTP API on
 * loopback) with in-process agents: a paused type's new job waits, queued, and `coco status` says
 * why; a resume runs it; errors exit as the README's table says; the pauses outlive a restart,
 * and a pause left by a type no longer registered is listed and resumed.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { EXIT } from '../../src/cli/errors.js';
import { parseConfig } from '../../src/config/config.js';
import { defineCommand, type CommandType } from '../../src/core/command-type.js';
import { pauseAnswer, resumeAnswer, typeList } from '../../src/http/contracts.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import { TOKENS, testTokens } from '../support/api.js';
import { holdVerbs, tempDir } from '../support/harness.js';
import { coco } from './support.js';

const hold = holdVerbs();
const work = defineCommand({
  name: 'typ.work',
  aliases: ['typ.old-work'],
  schema: z.object({ key: z.string().optional() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    const { key } = ctx.params;
    ctx.startTask(
      key === undefined
        ? { agent: 'a1', verb: 'noop' }
        : { agent: 'a1', verb: 'hold', args: { key } },
    );
  },
});
/** A type only other commands create: it has no roots to pause. */
const stage = defineCommand({
  name: 'typ.stage',
  childOnly: true,
  createdBy: ['typ.work'],
  schema: z.object({}),
  execute() {},
});
/** A type the restarted node no longer registers. */
const gone = defineCommand({ name: 'typ.gone', schema: z.object({}), execute() {} });

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const jsonOf = (out: string): unknown => JSON.parse(out);

let dir: string;
let node: CocoNode;
let server: string;

async function start(commands: readonly CommandType[]): Promise<void> {
  const config = parseConfig(
    { store: `sqlite:${join(dir, 'coco.db')}`, api: { port: 0, tokens: testTokens() } },
    dir,
  );
  node = await startNode({
    config,
    commands,
    broker: inProcessAgents(['a1'], { verbs: hold.verbs }),
    logger: quiet,
  });
  server = node.url!;
}

beforeAll(async () => {
  dir = tempDir('coco-types-');
  await start([work, stage, gone]);
  // The CLI calls as an operator (pause and resume need one): its name is each pause's `by`.
  process.env.COCO_TOKEN = TOKENS.operator;
});
afterAll(async () => {
  delete process.env.COCO_TOKEN;
  hold.release('before');
  await node.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A root's detail as the API gives it: what `coco status` reads of where it waits. */
async function rootQueueOf(id: number): Promise<unknown> {
  const res = await fetch(`${server}/v1/commands/${id}`, {
    headers: { authorization: `Bearer ${TOKENS.viewer}` },
  });
  return z.object({ rootQueue: z.unknown() }).parse(await res.json()).rootQueue;
}

/** The line of `coco types` for a type. */
function lineOf(out: string, type: string): string {
  const line = out.split('\n').find((l) => l.startsWith(`${type} `));
  expect(line, `${type} in:\n${out}`).toBeDefined();
  return line!;
}

describe('coco types, pause and resume', () => {
  // Each test starts with no type paused, whatever the one before left.
  afterEach(async () => {
    for (const type of [...node.engine.pausedTypes().keys()]) await node.engine.resumeType(type);
  });

  it('coco types lists the types: version, submittable or child only, no pause; --json is the API answer', async () => {
    const r = await coco('types', '--server', server);
    expect(r.code, r.err).toBe(0);
    expect(r.out.split('\n')[0]).toMatch(
      /^type\s+version\s+roots\s+limit\s+running\s+queued\s+paused$/,
    );
    expect(lineOf(r.out, 'typ.work')).toMatch(/^typ\.work\s+1\s+submittable\s+—\s+—\s+0\s+—$/);
    expect(lineOf(r.out, 'typ.stage')).toMatch(/^typ\.stage\s+1\s+child only\s+—\s+—\s+0\s+—$/);
    expect(lineOf(r.out, 'typ.gone')).toContain('submittable');
    expect(r.out).not.toContain('PAUSED');
    expect(r.out).not.toContain('not registered on this node');

    const json = await coco('types', '--server', server, '--json');
    expect(json.code, json.err).toBe(0);
    const list = typeList.parse(jsonOf(json.out));
    expect(list.types.map((t) => t.name)).toEqual(['typ.gone', 'typ.stage', 'typ.work']);
    expect(list.types.find((t) => t.name === 'typ.work')).toEqual({
      name: 'typ.work',
      version: 1,
      aliases: ['typ.old-work'],
      submittable: true,
      limit: null,
      // No root limit and no pause on this node: roots are not counted.
      running: null,
      queued: 0,
      paused: null,
    });
    expect(list.types.find((t) => t.name === 'typ.stage')?.submittable).toBe(false);
    expect(list.otherPaused).toEqual([]);
  });

  it("pause holds the type's new jobs (queued, and status says why) while running ones go on; resume runs them", async () => {
    // A job of the type running before the pause goes on through it.
    const { id: before } = await node.engine.submit(work, { key: 'before' });
    await expect.poll(() => hold.held('before')).toBe(true);

    const paused = await coco('pause', 'typ.work', '--reason', 'maint', '--server', server);
    expect(paused.code, paused.err).toBe(0);
    expect(paused.out).toMatch(
      /^paused typ\.work \(since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, \d+ s ago, by test-operator: maint\); its new jobs wait until: coco resume typ\.work$/m,
    );
    expect(paused.out).toMatch(
      /its jobs already running go on; on this node: \d+ running, 0 queued/,
    );

    // A job submitted now is stored, and waits: pending, queued, nothing of it started.
    const submitted = await coco(
      'submit',
      'typ.work',
      '--params',
      '{}',
      '--server',
      server,
      '--json',
    );
    expect(submitted.code, submitted.err).toBe(0);
    const { id } = z.object({ id: z.number() }).parse(jsonOf(submitted.out));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const waiting = await node.engine.get(id);
    expect(waiting?.status).toBe('pending');
    expect(waiting?.queuedSince).not.toBeNull();
    expect((await node.engine.inspect(id))?.tasks).toEqual([]);
    expect(await rootQueueOf(id)).toMatchObject({
      paused: { type: 'typ.work', by: 'test-operator', reason: 'maint' },
      text: 'queued: 0 ahead, typ.work paused',
    });
    // The job that was running still is.
    expect((await node.engine.get(before))?.status).not.toMatch(/succeeded|failed|cancelled/);

    await node.monitor!.flush();
    const status = await coco('status', String(id), '--server', server);
    expect(status.code, status.err).toBe(0);
    expect(status.out).toContain(`command ${id} queued: 0 ahead, typ.work paused`);
    expect(status.out).toMatch(
      /typ\.work is paused since .* UTC, \d+ s ago, by test-operator: maint; it runs once resumed: coco resume typ\.work/,
    );

    const types = await coco('types', '--server', server);
    expect(types.code, types.err).toBe(0);
    expect(lineOf(types.out, 'typ.work')).toMatch(
      /^typ\.work\s+1\s+submittable\s+—\s+\d+\s+1\s+PAUSED since .* UTC, \d+ s ago, by test-operator: maint$/,
    );
    expect(lineOf(types.out, 'typ.gone')).not.toContain('PAUSED');
    const listed = typeList.parse(jsonOf((await coco('types', '--server', server, '--json')).out));
    const entry = listed.types.find((t) => t.name === 'typ.work');
    expect(entry).toMatchObject({
      queued: 1,
      paused: { type: 'typ.work', by: 'test-operator', reason: 'maint' },
    });

    // Pausing again (through a former name) answers the first pause: its time and reason stay.
    const again = await coco(
      'pause',
      'typ.old-work',
      '--reason',
      'other',
      '--server',
      server,
      '--json',
    );
    expect(again.code, again.err).toBe(0);
    expect(pauseAnswer.parse(jsonOf(again.out))).toMatchObject({
      name: 'typ.work',
      queued: 1,
      paused: { pausedAt: entry!.paused!.pausedAt, reason: 'maint' },
    });
    expect((await node.engine.get(id))?.status).toBe('pending');

    const resumed = await coco('resume', 'typ.work', '--server', server);
    expect(resumed.code, resumed.err).toBe(0);
    expect(resumed.out).toMatch(
      /^resumed typ\.work \(paused since .* UTC, \d+ s ago, by test-operator: maint\); its waiting jobs run as the limits allow$/,
    );
    expect((await node.engine.waitFor(id)).status).toBe('succeeded');
    hold.release('before');
    expect((await node.engine.waitFor(before)).status).toBe('succeeded');

    // Resuming what is not paused changes nothing, and is no error.
    const twice = await coco('resume', 'typ.work', '--server', server);
    expect(twice.code, twice.err).toBe(0);
    expect(twice.out).toBe('typ.work was not paused');
    const json = await coco('resume', 'typ.work', '--server', server, '--json');
    expect(json.code, json.err).toBe(0);
    expect(resumeAnswer.parse(jsonOf(json.out))).toEqual({ name: 'typ.work', resumed: null });
    expect((await coco('types', '--server', server)).out).not.toContain('PAUSED');
  });

  it('errors: an unknown type and a child-only one exit 5, a long reason 2, a viewer 7; nothing is paused', async () => {
    const unknown = await coco('pause', 'no.such.type', '--server', server);
    expect(unknown.code).toBe(EXIT.invalid);
    expect(unknown.err).toContain('no command type named "no.such.type" is registered');
    const json = await coco('pause', 'no.such.type', '--server', server, '--json');
    expect(json.code).toBe(EXIT.invalid);
    expect(jsonOf(json.out)).toMatchObject({
      error: { code: 'UNKNOWN_COMMAND_TYPE', details: { commandType: 'no.such.type' } },
      exitCode: EXIT.invalid,
    });

    const child = await coco('pause', 'typ.stage', '--server', server);
    expect(child.code).toBe(EXIT.invalid);
    expect(child.err).toContain('COMMAND_TYPE_NOT_SUBMITTABLE');
    expect(child.err).toContain('"typ.stage" runs only as a child');

    const long = await coco('pause', 'typ.work', '--reason', 'x'.repeat(501), '--server', server);
    expect(long.code).toBe(EXIT.usage);
    expect(long.err).toContain('--reason must be at most 500 characters (it has 501)');

    process.env.COCO_TOKEN = TOKENS.viewer;
    try {
      const viewer = await coco('pause', 'typ.work', '--server', server);
      expect(viewer.code).toBe(EXIT.notAuthorized);
      expect(viewer.err).toContain('FORBIDDEN');
      // A viewer may list them.
      expect((await coco('types', '--server', server)).code).toBe(0);
    } finally {
      process.env.COCO_TOKEN = TOKENS.operator;
    }
    expect(node.engine.pausedTypes().size).toBe(0);
  });

  it('pauses outlive a restart; a pause left by a type no longer registered is listed apart and resumed', async () => {
    expect((await coco('pause', 'typ.work', '--reason', 'kept', '--server', server)).code).toBe(0);
    expect((await coco('pause', 'typ.gone', '--server', server)).code).toBe(0);
    await node.close();
    await start([work, stage]);

    const r = await coco('types', '--server', server);
    expect(r.code, r.err).toBe(0);
    expect(lineOf(r.out, 'typ.work')).toMatch(/PAUSED since .*, by test-operator: kept$/);
    expect(r.out.split('\n').filter((l) => l.startsWith('typ.gone'))).toEqual([]);
    expect(r.out).toMatch(
      /paused, and not registered on this node \(coco resume <type> ends it\):\n {2}typ\.gone {2}PAUSED since .* UTC, \d+ s ago, by test-operator$/,
    );
    const json = typeList.parse(jsonOf((await coco('types', '--server', server, '--json')).out));
    expect(json.otherPaused).toMatchObject([
      { type: 'typ.gone', by: 'test-operator', reason: null },
    ]);

    const gonePause = await coco('resume', 'typ.gone', '--server', server);
    expect(gonePause.code, gonePause.err).toBe(0);
    expect(gonePause.out).toMatch(/^resumed typ\.gone \(paused since .*, by test-operator\)/);
    expect((await coco('resume', 'typ.work', '--server', server)).code).toBe(0);
    const after = await coco('types', '--server', server);
    expect(after.out).not.toContain('PAUSED');
    expect(after.out).not.toContain('not registered on this node');
  });
});
