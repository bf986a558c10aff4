/**
 * `coco --version` and `coco --help` load no server, store or agent code: subcommands are
 * loaded when they run. The help's descriptions are the subcommand modules' own.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildProgram, SUBCOMMANDS } from '../../src/cli/main.js';

const ROOT = new URL('../../', import.meta.url).pathname;

/** The CommonJS packages loaded after `coco <args>` ran in a fresh process (src/ through tsx). */
function loadedAfter(args: string[]): string[] {
  const script = `
import { createRequire } from 'node:module';
const { runCli } = await import(${JSON.stringify(`${ROOT}src/cli/main.ts`)});
const out = process.stdout.write.bind(process.stdout);
process.stdout.write = () => true;
await runCli(${JSON.stringify(args)});
process.stdout.write = out;
const names = Object.keys(createRequire(import.meta.url).cache)
  .map((k) => /node_modules[\\\\/]((?:@[^\\\\/]+[\\\\/])?[^\\\\/]+)/.exec(k)?.[1])
  .filter(Boolean);
console.log(JSON.stringify([...new Set(names)].sort()));
`;
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script],
    {
      cwd: ROOT,
    },
  );
  return JSON.parse(out.toString().trim().split('\n').pop()!) as string[];
}

describe('coco loads subcommands when they run', () => {
  it('the help describes each subcommand as its module does', async () => {
    for (const [name, { description }] of Object.entries(SUBCOMMANDS)) {
      const program = await buildProgram(() => undefined, [name]);
      const command = program.commands.find((c) => c.name() === name);
      expect(command?.description(), name).toBe(description);
    }
  });

  it('--version and --help load no server, store or agent code', { timeout: 60_000 }, () => {
    for (const args of [['--version'], ['--help']]) {
      const loaded = loadedAfter(args);
      expect(loaded).toContain('commander');
      for (const heavy of ['fastify', 'pino', 'better-sqlite3', 'pg'])
        expect(loaded, `${args[0]} loaded ${heavy}`).not.toContain(heavy);
    }
    // The check can fail: a subcommand that runs loads them.
    expect(loadedAfter(['serve', '--help'])).toContain('fastify');
  });
});
