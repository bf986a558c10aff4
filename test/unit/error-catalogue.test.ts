/**
 * Every error code coco raises comes from one catalogue (`ErrorCode`, src/core/errors.ts): a
 * code written as a string literal anywhere in src/ must be one of the catalogue's, so a new
 * code cannot slip in beside it unnoticed.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';

const SRC = new URL('../../src/', import.meta.url).pathname;
/** Codes that are not coco's: the SQLite writer thread's own reply (a cause, wrapped in STORE_FAILED). */
const NOT_OURS = new Set(['COCO_SKIPPED']);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'generated' ? [] : sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

describe('the error catalogue', () => {
  it('holds every code written as a literal in src/', () => {
    const catalogue = new Set<string>(Object.values(ErrorCode));
    const strays: string[] = [];
    for (const file of sources(SRC)) {
      const text = readFileSync(file, 'utf8');
      const literals = [
        ...text.matchAll(/(?:CocoError|ValidationError)\(\s*'([A-Z][A-Z0-9_]*)'/g),
        ...text.matchAll(/\bcode:\s*'([A-Z][A-Z0-9_]+)'/g),
        ...text.matchAll(/\bcase\s+'([A-Z][A-Z0-9_]+)'/g),
      ].map((m) => m[1]!);
      for (const code of literals)
        if (!catalogue.has(code) && !NOT_OURS.has(code))
          strays.push(`${file.slice(SRC.length)}: ${code}`);
    }
    expect(strays).toEqual([]);
  });

  it('gives each code one name', () => {
    const values = Object.values(ErrorCode);
    expect(new Set(values).size).toBe(values.length);
  });
});
