/**
 * `coco status --watch`: under a pseudo-terminal of 80 columns (util-linux `script`) the tree is
 * redrawn in place (log-update) with every line cut to the width, so nothing wraps and no stale
 * row is left; without a terminal, only lines that changed are printed.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import type { CocoNode } from '../../src/server/node.js';
import { holdVerbs } from '../support/harness.js';
import { coco, startCliNode, type CliNode } from './support.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const hold = holdVerbs();
const long = defineCommand({
  name: 'watch.a-command-type-with-a-rather-long-name-to-overflow-eighty-columns',
  schema: z.object({ key: z.string() }),
  execute(ctx) {
    ctx.expect({ tasks: 2 });
    ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.key } });
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

let cli: CliNode;
let node: CocoNode;
let server: string;
let hasScript = true;

beforeAll(async () => {
  try {
    await promisify(execFile)('script', ['--version']);
  } catch {
    hasScript = false;
  }
  // The CLI (here and in the pseudo-terminal's child) finds the node's own token through COCO_TOKEN.
  cli = await startCliNode({ prefix: 'coco-watch-', commands: [long], verbs: hold.verbs });
  ({ node, server } = cli);
});
afterAll(() => cli.close());

const ESC = String.fromCharCode(27);
const stripAnsi = (s: string): string =>
  s.replace(new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'g'), '');

describe('coco status --watch', () => {
  it('redraws in place at 80 columns under a pseudo-terminal, no line wider than the screen', async (t) => {
    if (!hasScript) {
      console.warn('SKIPPED: util-linux `script` is not installed');
      t.skip();
    }
    const { id } = await node.engine.submit(long, { key: 'tty' });
    const cli = `stty cols 80 rows 40; exec ${process.execPath} --import tsx src/cli/bin.ts status ${id} --watch --server ${server}`;
    const child = spawn('script', ['-qfec', cli, '/dev/null'], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    await vi.waitFor(() => expect(stripAnsi(out)).toContain('running'), { timeout: 30_000 });
    hold.release('tty');
    expect(await exited).toBe(0);
    // log-update erased the previous frame (erase line, cursor up) before drawing the next.
    expect(out).toContain(`${ESC}[2K`);
    expect(out).toContain(`${ESC}[1A`);
    const lines = stripAnsi(out).split(/\r?\n|\r/);
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(80);
    expect(lines.some((l) => l.endsWith('…'))).toBe(true);
    expect(stripAnsi(out)).toMatch(/succeeded/);
  }, 60_000);

  it('without a terminal prints only the lines that changed', async () => {
    const { id } = await node.engine.submit(long, { key: 'pipe' });
    const watching = coco('status', String(id), '--watch', '--server', server);
    await vi.waitFor(() => expect(hold.held('pipe')).toBe(true));
    hold.release('pipe');
    const r = await watching;
    expect(r.code).toBe(0);
    const lines = r.out.split('\n').filter((l) => l !== '');
    expect(new Set(lines).size).toBe(lines.length);
    expect(lines.filter((l) => l.startsWith('job '))).toEqual(
      expect.arrayContaining([expect.stringContaining('succeeded')]),
    );
  }, 60_000);
});
