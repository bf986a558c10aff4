/**
 * The configuration file: agents' secrets from a file (`secretFile`) or the environment
 * (`${NAME}` in any string value), never shown in errors.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/config.js';
import { CocoError, ErrorCode } from '../../src/core/errors.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'coco-config-'));
  dirs.push(dir);
  return dir;
}

function thrown(fn: () => unknown): CocoError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CocoError) return error;
    throw error;
  }
  throw new Error('expected an error');
}

const URL_1 = 'http://10.0.0.5:7391';

describe('configuration: agent secrets', () => {
  it('reads secretFile relative to the configuration file, trimmed', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'host-1.secret'), 'from-a-file-0123456789\n');
    chmodSync(join(dir, 'host-1.secret'), 0o600);
    const file = join(dir, 'coco.json');
    writeFileSync(
      file,
      JSON.stringify({ agents: [{ id: 'host-1', url: URL_1, secretFile: 'host-1.secret' }] }),
    );
    expect(loadConfig(file).agents).toEqual([
      { id: 'host-1', url: URL_1, secret: 'from-a-file-0123456789' },
    ]);
  });

  it('replaces ${NAME} in any string value from the environment', () => {
    const env = {
      COCO_TEST_SECRET: 'from-the-env-0123456789',
      COCO_TEST_PW: 'pw',
      COCO_TEST_HOST: '10.0.0.9',
    };
    const config = parseConfig(
      {
        store: 'postgres://coco:${COCO_TEST_PW}@db/coco',
        agents: [{ id: 'h', url: 'http://${COCO_TEST_HOST}:7391', secret: '${COCO_TEST_SECRET}' }],
      },
      tempDir(),
      'configuration',
      { env },
    );
    expect(config.store).toBe('postgres://coco:pw@db/coco');
    expect(config.agents).toEqual([
      { id: 'h', url: 'http://10.0.0.9:7391', secret: 'from-the-env-0123456789' },
    ]);
  });

  it('refuses a missing variable with INVALID_OPTIONS naming it and where it is used', () => {
    const error = thrown(() =>
      parseConfig(
        { agents: [{ id: 'h', url: URL_1, secret: '${COCO_TEST_NOT_SET}' }] },
        tempDir(),
        'configuration',
        { env: {} },
      ),
    );
    expect(error.code).toBe(ErrorCode.InvalidOptions);
    expect(error.message).toContain('COCO_TEST_NOT_SET');
    expect(error.message).toContain('agents.0.secret');
  });

  it('wants exactly one of secret and secretFile, and never shows a secret in its errors', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'short.secret'), 'tiny-secret\n');
    const both = thrown(() =>
      parseConfig(
        { agents: [{ id: 'h', url: URL_1, secret: 'x'.repeat(16), secretFile: 'short.secret' }] },
        dir,
      ),
    );
    expect(both.code).toBe(ErrorCode.InvalidOptions);
    expect(both.message).toMatch(/agents\.0.*exactly one of secret and secretFile/);

    const neither = thrown(() => parseConfig({ agents: [{ id: 'h', url: URL_1 }] }, dir));
    expect(neither.message).toMatch(/agents\.0.*exactly one of secret and secretFile/);

    const short = thrown(() =>
      parseConfig({ agents: [{ id: 'h', url: URL_1, secretFile: 'short.secret' }] }, dir),
    );
    expect(short.code).toBe(ErrorCode.InvalidOptions);
    expect(short.message).toMatch(/agents\.0\.secretFile: .*at least 16 characters/);
    expect(short.message).not.toContain('tiny-secret');

    const missing = thrown(() =>
      parseConfig({ agents: [{ id: 'h', url: URL_1, secretFile: 'gone.secret' }] }, dir),
    );
    expect(missing.message).toMatch(/agents\.0\.secretFile: .*gone\.secret/);

    const fromEnv = thrown(() =>
      parseConfig(
        { agents: [{ id: 'h', url: URL_1, secret: '${COCO_TEST_SHORT}' }] },
        dir,
        'configuration',
        { env: { COCO_TEST_SHORT: 'short-env-pw' } },
      ),
    );
    expect(fromEnv.message).toMatch(/agents\.0\.secret/);
    expect(fromEnv.message).not.toContain('short-env-pw');
  });

  it('warns about a secret file readable by group or others', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'open.secret'), 'readable-secret-0123456789');
    chmodSync(join(dir, 'open.secret'), 0o640);
    const warnings: string[] = [];
    parseConfig({ agents: [{ id: 'h', url: URL_1, secretFile: 'open.secret' }] }, dir, 'x', {
      warn: (message) => warnings.push(message),
    });
    expect(warnings).toEqual([expect.stringMatching(/open\.secret.*readable by group or others/)]);
  });

  it('an engine-side secretFile holds one secret: an agent’s rotation file of two lines is refused', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'two.secret'), 'new-secret-0123456789\nold-secret-0123456789\n');
    chmodSync(join(dir, 'two.secret'), 0o600);
    const error = thrown(() =>
      parseConfig({ agents: [{ id: 'h', url: URL_1, secretFile: 'two.secret' }] }, dir),
    );
    expect(JSON.stringify(error.details)).toMatch(
      /two\.secret holds 2 lines; this one takes a single secret/,
    );
    expect(JSON.stringify(error.details)).not.toContain('secret-0123456789');
  });
});
