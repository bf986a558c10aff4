import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('layering', () => {
  it('the engine never imports the job monitor (it works the same without one)', () => {
    const root = new URL('../../src/engine', import.meta.url).pathname;
    const offenders = files(root).filter(
      (f) =>
        /from\s+['"][^'"]*\/jobs\//.test(readFileSync(f, 'utf8')) ||
        /import\(\s*['"][^'"]*\/jobs\//.test(readFileSync(f, 'utf8')),
    );
    expect(offenders).toEqual([]);
  });
});
