/**
 * `npm run bench [-- name...]`: runs the benchmarks (all, or the named ones), each in its own
 * process so heaps and files do not mix. Each prints human lines and, last, one JSON line.
 * Names: one-task, fanout, chain, memory, recovery, agents-http.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const BENCHES: Record<string, string[]> = {
  'one-task': [`one-task${ext}`],
  fanout: [`trees${ext}`, 'fanout'],
  chain: [`trees${ext}`, 'chain'],
  memory: [`memory${ext}`],
  recovery: [`recovery${ext}`],
  'agents-http': [`agents-http${ext}`],
};
const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const name of names) {
  if (!BENCHES[name]) {
    console.error(`unknown benchmark "${name}"; choose from: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
}
let failed = 0;
for (const name of names.length > 0 ? names : Object.keys(BENCHES)) {
  const [file, ...args] = BENCHES[name]!;
  const execArgv = ['--expose-gc', ...(ext === '.ts' ? ['--import', 'tsx'] : [])];
  const run = spawnSync(process.execPath, [...execArgv, join(here, file!), ...args], {
    stdio: 'inherit',
    env: process.env,
  });
  if (run.status !== 0) {
    failed++;
    console.error(`benchmark ${name} failed (exit ${run.status ?? run.signal})`);
  }
}
process.exit(failed > 0 ? 1 : 0);
