/**
 * `coco status` says what a job reran and what reran it, against a real node (engine on SQLite,
 * job view, HTTP API on loopback) with in-process agents: `rerun of job N` under a rerun's tree,
 * `run again as job M, K` under the job it ran again (`--json` stays the tree), and a rerun whose
 * job retention has pruned since says so.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import type { CocoNode } from '../../src/server/node.js';
import { holdVerbs, whenCommitted } from '../support/harness.js';
import { coco, startCliNode, type CliNode } from './support.js';

const hold = holdVerbs();
const work = defineCommand({
  name: 'cli.rerun',
  schema: z.object({ verb: z.enum(['noop', 'hold', 'fail']), key: z.string().default('x') }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({
      agent: 'a1',
      verb: ctx.params.verb,
      args:
        ctx.params.verb === 'hold'
          ? { key: ctx.params.key }
          : ctx.params.verb === 'fail'
            ? { message: 'on purpose' }
            : null,
    });
  },
});

/** The lines `coco status <id>` prints (human output), exit 0 or 1 (a failed job). */
async function statusLines(server: string, id: number): Promise<string[]> {
  const r = await coco('status', String(id), '--server', server);
  expect([0, 1], r.err).toContain(r.code);
  expect(r.out).toMatch(new RegExp(`^job ${id} cli\\.rerun `));
  return r.out.split('\n');
}

describe('coco status: what a job reran and what reran it', () => {
  let cli: CliNode;
  let node: CocoNode;
  let server: string;

  beforeAll(async () => {
    // The node's own (admin) token, found through COCO_TOKEN: prune below needs an admin.
    cli = await startCliNode({ prefix: 'coco-cli-rerun-', commands: [work], verbs: hold.verbs });
    ({ node, server } = cli);
  });
  afterAll(() => cli?.close());

  /** Runs `coco rerun <id>` (its arguments after the id); the new job's id from what it printed. */
  const rerun = async (id: number, ...more: string[]): Promise<{ next: number; out: string }> => {
    const r = await coco('rerun', String(id), '--server', server, ...more);
    const next = Number(
      (/runs again as command (\d+);/.exec(r.out) ?? /^job (\d+) /m.exec(r.out))?.[1],
    );
    expect(next, `${r.out}\n${r.err}`).toBeGreaterThan(id);
    return { next, out: r.out };
  };

  it('a rerun says which job it ran again; the job ran again names its reruns, oldest first', async () => {
    const { id } = await node.engine.submit(work, { verb: 'fail' });
    expect((await node.engine.waitFor(id)).status).toBe('failed');
    await node.monitor!.flush();
    // Never run again yet: neither line.
    const before = await statusLines(server, id);
    expect(before.filter((l) => /rerun of|run again as/.test(l))).toEqual([]);

    const first = await rerun(id);
    // Followed to its end (--wait), the rerun's tree ends with what it ran again.
    const second = await rerun(id, '--wait');
    expect(second.out.split('\n').at(-1)).toBe(`rerun of job ${id}`);
    await node.engine.waitFor(first.next);
    await node.monitor!.flush();

    const ranAgain = await statusLines(server, id);
    expect(ranAgain).toContain(`run again as job ${first.next}, ${second.next}`);
    expect(ranAgain.filter((l) => l.startsWith('rerun of'))).toEqual([]);
    for (const next of [first.next, second.next]) {
      const lines = await statusLines(server, next);
      expect(lines).toContain(`rerun of job ${id}`);
      expect(lines.filter((l) => l.startsWith('run again as'))).toEqual([]);
    }
    // A rerun run again itself names both ways.
    const third = await rerun(first.next, '--wait');
    await node.monitor!.flush();
    const middle = await statusLines(server, first.next);
    expect(middle).toEqual(
      expect.arrayContaining([`rerun of job ${id}`, `run again as job ${third.next}`]),
    );
    // --json prints the job's tree as before: no lines, no links added.
    const json = await coco('status', String(id), '--server', server, '--json');
    expect(JSON.parse(json.out)).toMatchObject({ job: { id, status: 'failed' } });
    expect(json.out).not.toMatch(/rerunOf|"reruns"|rerun of|run again/);
  });

  it('a rerun whose job was pruned since says so', async () => {
    const { id } = await node.engine.submit(work, { verb: 'hold', key: 'pruned' });
    await expect.poll(() => hold.held('pruned')).toBe(true);
    await node.engine.cancel(id);
    expect((await node.engine.waitFor(id)).status).toBe('cancelled');
    // The rerun holds on the same key: it is still running when the ended job is pruned.
    const { next } = await rerun(id);
    expect((await node.engine.get(next))?.endedAt).toBeNull();
    await node.monitor!.flush();
    expect(await statusLines(server, id)).toContain(`run again as job ${next}`);
    expect(await statusLines(server, next)).toContain(`rerun of job ${id}`);

    const settled = async (): Promise<boolean> => {
      const { commands } = await node.engine.list({ rootId: id });
      return commands.every((c) => c.tasksCleared && c.compensation !== 'compensating');
    };
    if (!(await settled())) await whenCommitted(node.engine, settled);
    await new Promise((r) => setTimeout(r, 5));
    const pruned = await coco('prune', '--older-than', '1ms', '--server', server, '--json');
    expect(pruned.code, pruned.err).toBe(0);
    expect((await coco('status', String(id), '--server', server)).code).toBe(4);
    const lines = await statusLines(server, next);
    expect(lines).toContain(`rerun of job ${id} (pruned)`);

    hold.release('pruned');
    expect((await node.engine.waitFor(next)).status).toBe('succeeded');
  });
});
