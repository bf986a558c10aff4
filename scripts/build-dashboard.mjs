// Builds the dashboard (src/dashboard/) into dist/dashboard/: the browser code type-checked
// against its own tsconfig (lib DOM), bundled by esbuild into one ES module with lit-html inside,
// the stylesheet and the page copied beside it. Nothing is fetched at run time: the node serves
// these three files (src/http/dashboard-route.ts). Run by `npm run build` (and so by `npm install`).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src', 'dashboard');
const out = join(root, 'dist', 'dashboard');
const check = !process.argv.includes('--no-check');

if (check)
  execFileSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', src],
    {
      stdio: 'inherit',
    },
  );
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(src, 'main.ts')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  logLevel: 'warning',
});
copyFileSync(join(src, 'index.html'), join(out, 'index.html'));
copyFileSync(join(src, 'app.css'), join(out, 'app.css'));
copyFileSync(join(src, 'icon.svg'), join(out, 'icon.svg'));
