/**
 * The documentation's code runs: every ts/js block of README.md and docs/*.md is type-checked
 * (the project's compiler options) and run in its own process, in an empty folder (so
 * `sqlite:coco.db` is a fresh temporary store), with the package's imports pointed at the
 * sources. Blocks marked `no-run` are only type-checked, `no-check` neither; the skipped ones
 * are listed.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allBlocks, entryPoints, ROOT, withSourceImports } from './blocks.js';

/** tsx's loader, by URL: the blocks run from an empty folder, where `tsx` would not resolve. */
const TSX = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
const blocks = allBlocks();
const entries = entryPoints();
// Inside the checkout (ignored by git), so that the blocks resolve zod and the other packages.
mkdirSync(join(ROOT, '.coco'), { recursive: true });
const dir = mkdtempSync(join(ROOT, '.coco', 'doc-blocks-'));
const fileOf = (file: string): string => join(dir, file);

beforeAll(() => {
  for (const b of blocks) writeFileSync(fileOf(b.file), withSourceImports(b.code, entries));
  const skipped = blocks.filter((b) => !b.run);
  if (skipped.length > 0) {
    console.log(
      `doc blocks not run: ${skipped.map((b) => `${b.where} (${b.check ? 'no-run' : 'no-check'})`).join(', ')}`,
    );
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('documentation code blocks', () => {
  it('finds the blocks of README.md and docs/', () => {
    expect(blocks.some((b) => b.where.startsWith('README.md:'))).toBe(true);
    expect(blocks.some((b) => b.where.startsWith('docs/GUIDE.md:'))).toBe(true);
  });

  it('type-checks every block', { timeout: 120_000 }, () => {
    const config = ts.getParsedCommandLineOfConfigFile(
      join(ROOT, 'tsconfig.json'),
      {},
      {
        ...ts.sys,
        onUnRecoverableConfigFileDiagnostic: (d) => {
          throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
        },
      },
    )!;
    const files = blocks.filter((b) => b.check).map((b) => fileOf(b.file));
    const program = ts.createProgram(files, { ...config.options, noEmit: true });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file !== undefined && files.includes(d.file.fileName))
      .map((d) => {
        const block = blocks.find((b) => fileOf(b.file) === d.file!.fileName)!;
        const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
        const at = Number(block.where.split(':')[1]) + line + 1;
        return `${block.where.split(':')[0]}:${at}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
    expect(problems).toEqual([]);
  });

  const run = promisify(execFile);
  for (const block of blocks.filter((b) => b.run)) {
    it(`runs ${block.where}`, { timeout: 60_000 }, async () => {
      const cwd = mkdtempSync(join(tmpdir(), 'coco-doc-'));
      try {
        const { stdout } = await run(process.execPath, ['--import', TSX, fileOf(block.file)], {
          cwd,
          timeout: 50_000,
          env: { ...process.env, COCO_LOG_LEVEL: 'warn' },
        });
        const lines = stdout.trim().split('\n');
        expect(lines.map((l, i) => (block.prints[i] === undefined ? '' : l.split(' ')[0]))).toEqual(
          lines.map((_, i) => block.prints[i] ?? ''),
        );
        expect(lines.length).toBeGreaterThanOrEqual(block.prints.length);
      } finally {
        rmSync(cwd, { recursive: true, force: true });
      }
    });
  }
});
