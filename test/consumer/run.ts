/**
 * The consumer test (`npm run test:consumer`): the package as a user gets it. Builds, packs the
 * tarball, installs it into a temporary project (with TypeScript and zod, nothing else), then
 * type-checks (strict, `skipLibCheck: false`) and runs an ES module and a CommonJS module that
 * import every entry — the ES module runs a command through the HTTP broker to an embedded
 * reference agent, the CommonJS one on in-process agents. Also checks that the root, the
 * in-process and the HTTP entries' declarations never name a database driver's types.
 *
 * Installs prefer npm's cache (`--prefer-offline`). better-sqlite3's native part is taken from
 * this checkout's node_modules when the versions match (its prebuilt download is unreachable
 * from some machines, and compiling takes minutes); otherwise it is rebuilt. Each phase's time
 * is printed. `--keep` leaves the temporary project in place.
 */
import { execFileSync, type ExecFileSyncOptions } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const PROJECT = join(import.meta.dirname, 'project');
const keep = process.argv.includes('--keep');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface Manifest {
  version: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}
const readJson = (path: string): Manifest => JSON.parse(readFileSync(path, 'utf8')) as Manifest;

function timed<T>(what: string, fn: () => T): T {
  const start = performance.now();
  const value = fn();
  console.log(`== ${what}: ${((performance.now() - start) / 1000).toFixed(1)} s`);
  return value;
}

function run(cmd: string, args: string[], options: ExecFileSyncOptions = {}): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    ...options,
  }) as string;
}

/** Bare module specifiers the declarations reachable from `entry` import (relative ones followed). */
function declarationImports(entry: string): Set<string> {
  const bare = new Set<string>();
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file) || !existsSync(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\(\s*)['"]([^'"]+)['"]/g)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec.replace(/\.js$/, '.d.ts')));
      else bare.add(spec);
    }
  }
  return bare;
}

const total = performance.now();
const work = mkdtempSync(join(tmpdir(), 'coco-consumer-'));
try {
  if (!process.argv.includes('--no-build'))
    timed('build', () => run(npm, ['run', 'build'], { cwd: ROOT }));
  const tarball = timed('npm pack', () =>
    run(npm, ['pack', '--ignore-scripts', '--silent', '--pack-destination', work], { cwd: ROOT })
      .trim()
      .split('\n')
      .pop()!,
  );
  const own = readJson(join(ROOT, 'package.json'));
  const app = join(work, 'app');
  mkdirSync(app);
  for (const f of readdirSync(PROJECT)) copyFileSync(join(PROJECT, f), join(app, f));
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'coco-consumer', private: true }, null, 2),
  );
  timed('npm install (tarball, typescript, zod)', () =>
    run(
      npm,
      [
        'install',
        join(work, tarball),
        `typescript@${own.devDependencies?.typescript ?? 'latest'}`,
        `zod@${own.dependencies?.zod ?? 'latest'}`,
        '--prefer-offline',
        '--ignore-scripts',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
      ],
      { cwd: app },
    ),
  );

  // better-sqlite3's native part: this checkout's build when the versions match, else a rebuild.
  const installed = join(app, 'node_modules/better-sqlite3');
  const local = join(ROOT, 'node_modules/better-sqlite3');
  const binary = 'build/Release/better_sqlite3.node';
  if (
    existsSync(join(local, binary)) &&
    readJson(join(local, 'package.json')).version ===
      readJson(join(installed, 'package.json')).version
  ) {
    mkdirSync(join(installed, 'build/Release'), { recursive: true });
    copyFileSync(join(local, binary), join(installed, binary));
    console.log('== better-sqlite3: native part copied from this checkout (same version)');
  } else {
    timed('npm rebuild better-sqlite3 (compiles when no prebuilt binary is reachable)', () =>
      run(npm, ['rebuild', 'better-sqlite3'], { cwd: app, stdio: 'inherit' }),
    );
  }

  // The root, in-process and HTTP entries: no driver types in their declarations.
  const pkg = join(app, 'node_modules/coco-engine/dist/src');
  for (const entry of ['index.d.ts', 'entries/in-process.d.ts', 'entries/http.d.ts']) {
    const drivers = [...declarationImports(join(pkg, entry))].filter(
      (s) => s === 'pg' || s === 'better-sqlite3',
    );
    if (drivers.length > 0)
      throw new Error(`${entry} declarations import driver types: ${drivers.join(', ')}`);
  }
  console.log('== declarations: the root, in-process and http entries name no driver types');

  timed('tsc (strict, skipLibCheck false: ESM and CommonJS consumers)', () =>
    run(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', app], {
      cwd: app,
      stdio: 'inherit',
    }),
  );
  timed('run the ES module', () =>
    console.log(run(process.execPath, [join(app, 'out/consumer.mjs')], { cwd: app }).trim()),
  );
  timed('run the CommonJS module', () =>
    console.log(run(process.execPath, [join(app, 'out/consumer.cjs')], { cwd: app }).trim()),
  );
  console.log(`== consumer test passed in ${((performance.now() - total) / 1000).toFixed(1)} s`);
} finally {
  if (keep) console.log(`== kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
