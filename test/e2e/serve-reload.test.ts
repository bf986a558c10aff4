/**
 * SIGHUP to a real `coco serve`: the admission limits are read again from its configuration file
 * (no restart); a file that no longer parses leaves the limits in force, logged.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { TOKENS, testTokens } from '../support/api.js';
import { tempDir } from '../support/harness.js';
import { until } from '../store-conformance/pg-harness.js';
import { startServeProcess } from './support.js';

const dir = tempDir('coco-reload-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('SIGHUP reloads the agents’ limits from the file, and keeps them when the file is bad', async () => {
  const config = join(dir, 'coco.json');
  const write = (maxRunning: number): void =>
    writeFileSync(
      config,
      JSON.stringify({
        store: 'sqlite:coco.db',
        api: { port: 0, tokens: testTokens() },
        // An agent nobody runs: only its limit matters here.
        agents: [
          { id: 'h1', url: 'http://127.0.0.1:9', secret: 'reload-test-secret-0123', maxRunning },
        ],
      }),
    );
  write(1);
  const serve = await startServeProcess(config, { COCO_LOG_LEVEL: 'info' });
  const limit = async (): Promise<unknown> => {
    const res = await fetch(`${serve.url}/v1/admission`, {
      headers: { authorization: `Bearer ${TOKENS.viewer}` },
    });
    const body = (await res.json()) as { limits: { agents: Record<string, unknown> } };
    return body.limits.agents.h1;
  };
  try {
    expect(await limit()).toEqual({ maxRunning: 1 });

    write(3);
    serve.child.kill('SIGHUP');
    await until(
      'the limit to be reloaded',
      async () => JSON.stringify(await limit()) === JSON.stringify({ maxRunning: 3 }),
    );
    expect(serve.stderr()).toContain('admission limits reloaded');

    writeFileSync(config, '{ not json');
    serve.child.kill('SIGHUP');
    await until('the failed reload to be logged', () =>
      Promise.resolve(serve.stderr().includes('configuration reload failed; limits unchanged')),
    );
    expect(await limit()).toEqual({ maxRunning: 3 });
    expect(serve.child.exitCode).toBeNull();
  } finally {
    serve.child.kill('SIGTERM');
    await serve.exited;
  }
}, 60_000);
