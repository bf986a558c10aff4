/**
 * Every error code coco raises comes from one catalogue (`ErrorCode`, src/core/errors.ts). Code
 * in src/ names a code through the catalogue, never as a string literal: a literal that is a
 * catalogue code should be `ErrorCode.X`, and one that is not would be a code beside the
 * catalogue — unless it is not coco's at all (a driver's or the system's, listed below).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';

const SRC = new URL('../../src/', import.meta.url).pathname;
/**
 * Code-shaped strings that are not coco's error codes: SQLite's and the system's codes, the
 * SQLite writer thread's replies to the store (always wrapped in STORE_FAILED before anyone sees
 * them), environment variables, and placeholders.
 */
const NOT_OURS = new Set([
  'SQLITE_BUSY',
  'SQLITE_CONSTRAINT_UNIQUE',
  'EAI_AGAIN',
  'COCO_SKIPPED',
  'COCO_MISSING_ROW',
  // Environment variables, and the placeholders of the agent protocol's canonical text.
  'COCO_AGENT_SECRET',
  'COCO_TOKEN',
  'AGENT_ID',
  'BODY_SHA256',
]);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'generated' ? [] : sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** The text without comments (a code named in prose is fine). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

describe('the error catalogue', () => {
  it('is the only place src/ spells an error code', () => {
    const catalogue = new Set<string>(Object.values(ErrorCode));
    const strays: string[] = [];
    for (const file of sources(SRC)) {
      if (file.endsWith('core/errors.ts')) continue;
      for (const m of code(readFileSync(file, 'utf8')).matchAll(/'([A-Z][A-Z0-9]*_[A-Z0-9_]+)'/g)) {
        const literal = m[1]!;
        if (NOT_OURS.has(literal)) continue;
        strays.push(
          `${file.slice(SRC.length)}: '${literal}' ${catalogue.has(literal) ? '(use ErrorCode)' : '(not in the catalogue)'}`,
        );
      }
    }
    expect(strays).toEqual([]);
  });

  it('gives each code one name', () => {
    const values = Object.values(ErrorCode);
    expect(new Set(values).size).toBe(values.length);
  });
});
