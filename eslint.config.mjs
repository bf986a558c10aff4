import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import js from '@eslint/js';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/**
 * The import matrix: what each part of src/ may import (paths under src/; a folder stands for
 * everything in it). Everything else under src/ is refused by `import-x/no-restricted-paths`.
 * docs/ARCHITECTURE.md draws the same matrix; change both together.
 */
const STORE_PORT = ['store/port.ts', 'store/shared-port.ts'];
const JOBS_ROOT = ['jobs/*.ts'];
const LAYERS = [
  // The domain: pure, imports nothing of ours.
  { target: 'core', may: [] },
  // What every agent shares, the agent protocol, and database driver facts: the core only.
  { target: 'verbs', may: ['core'] },
  { target: 'protocol', may: ['core'] },
  { target: 'db', may: ['core'] },
  // The store port and the row codec both stores use.
  { target: 'store/*.ts', may: ['core', ...STORE_PORT] },
  { target: 'store/rows', may: ['core', ...STORE_PORT] },
  // The stores: the core, the port, the rows, driver facts and their migrations.
  { target: 'store/sqlite', may: ['core', ...STORE_PORT, 'store/rows', 'db', 'generated'] },
  { target: 'store/postgres', may: ['core', ...STORE_PORT, 'store/rows', 'db', 'generated'] },
  // The broker port, and the brokers: the core, the port, the protocol and the verb model.
  { target: 'brokers/port.ts', may: ['core'] },
  ...['in-process', 'ipc', 'http'].map((b) => ({
    target: `brokers/${b}`,
    may: ['core', 'brokers/port.ts', 'protocol', 'verbs'],
  })),
  // The reference agent (`coco agent`): the core, the protocol, the verb model and driver
  // facts (its task table is a SQLite file, its driver loaded as the stores load theirs).
  { target: 'reference-agent', may: ['core', 'protocol', 'verbs', 'db'] },
  // The engine: the core and the two ports.
  { target: 'engine', may: ['core', ...STORE_PORT, 'brokers/port.ts'] },
  // The job view: the core, the store port, the engine's types (type imports only, below).
  { target: 'jobs/*.ts', may: ['core', 'store/port.ts', 'engine'], except: ['jobs/index.ts'] },
  { target: 'jobs/sqlite', may: ['core', ...JOBS_ROOT, 'db', 'generated'] },
  { target: 'jobs/postgres', may: ['core', ...JOBS_ROOT, 'db', 'generated'] },
  // Metrics: the engine's and the job view's events and figures (their types; store port types).
  { target: 'observability', may: ['core', 'engine', 'store/port.ts', ...JOBS_ROOT] },
  // The node's HTTP API: the core, the engine, the job view (not its stores), the metrics.
  { target: 'http', may: ['core', 'engine', ...JOBS_ROOT, 'observability'] },
  // The dashboard (browser code, bundled by scripts/build-dashboard.mjs): nothing of ours — it
  // knows the node only through the public API.
  { target: 'dashboard', may: [] },
  // Configuration and the composition root of a node: anything but the CLI.
  { target: 'config', may: ['*', '!cli', '!server', '!http'] },
  { target: 'server', may: ['*', '!cli'] },
];

const SRC = join(import.meta.dirname, 'src');
/** The entries of a folder of src/ (`''` for src/ itself), as paths relative to src/. */
function entries(folder) {
  return readdirSync(join(SRC, folder)).map((name) => (folder === '' ? name : `${folder}/${name}`));
}
const isTs = (entry) => entry.endsWith('.ts');

/**
 * A layer as import-x zones: the parts of src/ it may not import, each refused for its target.
 * A part partly allowed (a folder some of whose entries are allowed) is refused entry by entry.
 */
function zones({ target, may, except = [] }) {
  const glob = target.endsWith('/*.ts');
  const folder = glob ? target.slice(0, -5) : target;
  const everything = may.includes('*');
  const allowed = [...may.filter((m) => !m.startsWith('!') && m !== '*'), target];
  const isAllowed = (entry) =>
    (everything && !may.includes(`!${entry.split('/')[0]}`)) ||
    allowed.some((a) =>
      a.endsWith('/*.ts')
        ? entry.startsWith(`${a.slice(0, -5)}/`) &&
          isTs(entry) &&
          !entry.slice(a.length - 4).includes('/')
        : entry === a || entry.startsWith(`${a}/`),
    );
  const touches = (entry) => allowed.some((a) => a.startsWith(`${entry}/`));
  const refused = [];
  const visit = (entry) => {
    if (isAllowed(entry)) return;
    if (!isTs(entry) && touches(entry)) entries(entry).forEach(visit);
    else refused.push(entry);
  };
  entries('').forEach(visit);
  const targets = glob ? entries(folder).filter((e) => isTs(e) && !except.includes(e)) : [target];
  return refused.map((from) => ({
    target: targets.map((t) => `./src/${t}`),
    from: `./src/${from}`,
    message: `${target} may import only ${may.join(', ') || 'nothing of ours'} (the import matrix: eslint.config.mjs, docs/ARCHITECTURE.md)`,
  }));
}

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'src/generated/**',
      'coverage/**',
      'scripts/**',
      'eslint.config.mjs',
      '*.mts',
      '.coco/**',
      'bench/*.tmp.ts',
      // A consumer's project (its own tsconfig; type-checked by test/consumer/run.ts).
      'test/consumer/project/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    // Layering (the import matrix above) and no import cycles (type imports do not count).
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver({ alwaysTryTypes: true })],
    },
    rules: {
      'import-x/no-restricted-paths': ['error', { zones: LAYERS.flatMap(zones) }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  {
    // The job view may read the engine's types, never run its code.
    files: ['src/jobs/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/engine/*'],
              allowTypeImports: true,
              message: 'the job view reads engine types only',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
);
