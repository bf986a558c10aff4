/**
 * Graceful shutdown of a real `coco serve`: SIGTERM with a client following the job events ends
 * the stream, stops the node within its bound (not the tens of seconds a follower used to hold
 * it) and logs the shutdown; a handle left open by a user's command module does not keep the
 * stopped node's process up.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { LINGER_MS, SHUTDOWN_MARGIN_MS } from '../../src/cli/commands/node-commands.js';
import { TOKENS, testTokens } from '../support/api.js';
import { tempDir } from '../support/harness.js';
import { startServeProcess } from './support.js';

const dir = tempDir('coco-shutdown-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('SIGTERM closes the open event streams and stops the node within its bound, logged', async () => {
  const config = join(dir, 'coco.json');
  writeFileSync(
    config,
    JSON.stringify({
      store: 'sqlite:coco.db',
      api: { port: 0, tokens: testTokens() }, // any free port: the node reports it
      // An agent nobody runs: the node needs one configured, and never reaches it here.
      agents: [{ id: 'h1', url: 'http://127.0.0.1:9', secret: 'shutdown-test-secret-0123' }],
    }),
  );
  const serve = await startServeProcess(config, { COCO_LOG_LEVEL: 'info' });
  try {
    const res = await fetch(`${serve.url}/v1/events`, {
      headers: { authorization: `Bearer ${TOKENS.viewer}` },
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read(); // the opening comment: the stream is open
    const started = Date.now();
    serve.child.kill('SIGTERM');
    // The stream ends (done), rather than hanging until the client gives up.
    let done = false;
    while (!done) done = ((await reader.read()) as { done: boolean }).done;
    expect(await serve.exited).toBe(0);
    const took = Date.now() - started;
    // Far within the bound on the defaults: the monitor's 5 s, the grace's 5, the store's 10.
    expect(took).toBeLessThan(20_000 + SHUTDOWN_MARGIN_MS);
    const log = serve.stderr();
    expect(log).toContain('coco node shutting down');
    expect(log).toContain('closed the open event streams for shutdown');
    expect(log).toContain('coco node stopped');
    expect(log).not.toContain(TOKENS.viewer);
  } finally {
    if (serve.child.exitCode === null) serve.child.kill('SIGKILL');
  }
}, 60_000);

it('a handle a command module leaves open does not keep the stopped node up', async () => {
  // The disk example's commands, and a timer of the module's own that nothing ever clears.
  const module = join(dir, 'lingering.mjs');
  const disk = pathToFileURL(join(import.meta.dirname, '..', '..', 'examples', 'disk', 'index.ts'));
  writeFileSync(
    module,
    `export * from ${JSON.stringify(disk.href)};\nsetInterval(() => {}, 60_000);\n`,
  );
  const config = join(dir, 'lingering.json');
  writeFileSync(
    config,
    JSON.stringify({
      store: 'sqlite:lingering.db',
      api: { port: 0, tokens: testTokens() },
      agents: [{ id: 'h1', url: 'http://127.0.0.1:9', secret: 'shutdown-test-secret-0123' }],
      commands: [module],
    }),
  );
  const serve = await startServeProcess(config, { COCO_LOG_LEVEL: 'info' });
  try {
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    const log = serve.stderr();
    expect(log).toContain('coco node stopped');
    expect(log).toContain('handles still open after the node stopped; exiting');
    expect(log).toContain(`"ms":${LINGER_MS}`);
  } finally {
    if (serve.child.exitCode === null) serve.child.kill('SIGKILL');
  }
}, 60_000);
