/**
 * The code blocks of the documentation: every fenced block whose info string starts with `ts`,
 * `typescript` or `js` in README.md and docs/*.md, with what its info string says of it
 * (`ts no-run`: type-checked, not run; `ts no-check`: neither), and its imports of the package
 * (`coco-engine`, `coco-engine/sqlite`, ...) pointed at the sources, through package.json's
 * `exports`.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = new URL('../../', import.meta.url).pathname;

/** One code block of a document. */
export interface DocBlock {
  /** `README.md:149`: the document and the line of the opening fence. */
  readonly where: string;
  /** A file name for it: `README.md-149.mts`. */
  readonly file: string;
  readonly code: string;
  readonly check: boolean;
  readonly run: boolean;
  /**
   * What each `console.log(...); // text` line says it prints: the comment's first word, which
   * the block's output lines start with, in order.
   */
  readonly prints: readonly string[];
}

/** The documents whose blocks are tested. */
export function documents(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs.sort()];
}

const FENCE = /^```(\S*)(.*)$/;

/** The ts/js blocks of one document. */
export function blocksOf(doc: string, text: string): DocBlock[] {
  const lines = text.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) body.push(lines[i]!);
    const lang = open[1]!;
    if (!['ts', 'typescript', 'js', 'javascript'].includes(lang)) continue;
    const flags = open[2]!.trim().split(/\s+/);
    const check = !flags.includes('no-check');
    blocks.push({
      where: `${doc}:${start + 1}`,
      file: `${doc.replace(/\//g, '_')}-${start + 1}.${lang.startsWith('t') ? 'mts' : 'mjs'}`,
      code: body.join('\n'),
      check,
      run: check && !flags.includes('no-run'),
      prints: body.flatMap((l) => /^\s*console\.log\(.*\);\s*\/\/\s*(\S+)/.exec(l)?.slice(1) ?? []),
    });
  }
  return blocks;
}

/** Every block of every document. */
export function allBlocks(): DocBlock[] {
  return documents().flatMap((doc) => blocksOf(doc, readFileSync(join(ROOT, doc), 'utf8')));
}

/** The package's entries by import specifier, as source files (`coco-engine` → src/index.js). */
export function entryPoints(): Map<string, string> {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    name: string;
    exports: Record<string, string | { default: string }>;
  };
  const map = new Map<string, string>();
  for (const [sub, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue;
    const spec = sub === '.' ? pkg.name : `${pkg.name}/${sub.slice(2)}`;
    map.set(spec, join(ROOT, target.default.replace(/^\.\/dist\//, '')));
  }
  return map;
}

/** The block's code with the package's imports pointed at the sources. */
export function withSourceImports(code: string, entries: Map<string, string>): string {
  return code.replace(
    /(from\s+|import\(\s*)(['"])([^'"]+)\2/g,
    (all, lead: string, q: string, spec: string) => {
      const file = entries.get(spec);
      return file === undefined ? all : `${lead}${q}${file}${q}`;
    },
  );
}
