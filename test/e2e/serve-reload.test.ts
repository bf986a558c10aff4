/**
 * SIGHUP to a real `coco serve`: the admission limits, the API tokens and the agents are read
 * again from its configuration file (no restart); a file that no longer parses leaves them in force, logged; a
 * token no longer accepted is refused from the next call on and its open event streams end.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { TOKENS, testTokens } from '../support/api.js';
import { tempDir } from '../support/harness.js';
import { until } from '../store-conformance/pg-harness.js';
import { coco } from '../cli/support.js';
import { startServeProcess, type CocoProcess } from './support.js';

const dir = tempDir('coco-reload-');

/** The first (or `nth`, from 0) log line of `serve` with this message, once written, parsed. */
async function logged(serve: CocoProcess, msg: string, nth = 0): Promise<Record<string, unknown>> {
  const find = (): string | undefined =>
    serve
      .stderr()
      .split('\n')
      .filter((l) => l.includes(`"msg":"${msg}"`))[nth];
  await until(`"${msg}" to be logged`, () => Promise.resolve(find() !== undefined));
  return JSON.parse(find()!) as Record<string, unknown>;
}
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('SIGHUP reloads the agents (limits, secrets, added, retired) from the file, and keeps them when the file is bad', async () => {
  const config = join(dir, 'coco.json');
  const write = (maxRunning: number, secret = 'reload-test-secret-0123', id = 'h1'): void =>
    writeFileSync(
      config,
      JSON.stringify({
        store: 'sqlite:coco.db',
        api: { port: 0, tokens: testTokens() },
        // An agent nobody runs: only its limit matters here.
        agents: [{ id, url: 'http://127.0.0.1:9', secret, maxRunning }],
      }),
    );
  write(1);
  const serve = await startServeProcess(config, { COCO_LOG_LEVEL: 'info' });
  const limit = async (agent = 'h1'): Promise<unknown> => {
    const res = await fetch(`${serve.url}/v1/admission`, {
      headers: { authorization: `Bearer ${TOKENS.viewer}` },
    });
    const body = (await res.json()) as { limits: { agents: Record<string, unknown> } };
    return body.limits.agents[agent];
  };
  // The reload metrics: the last outcome, and the counts by outcome.
  const reloads = async (): Promise<string> => {
    const res = await fetch(`${serve.url}/metrics`, {
      headers: { authorization: `Bearer ${TOKENS.viewer}` },
    });
    const text = await res.text();
    const series = [
      'coco_config_last_reload_successful',
      'coco_config_reloads_total{outcome="ok"}',
      'coco_config_reloads_total{outcome="failed"}',
    ];
    const lines = text.split('\n');
    return series
      .map((m) => lines.find((l) => l.startsWith(`${m} `))?.slice(m.length + 1) ?? '-')
      .join(' ');
  };
  try {
    expect(await limit()).toEqual({ maxRunning: 1 });
    expect(await reloads()).toBe('- - -');

    // The limit, and the agent's secret (a rotation).
    write(3, 'reload-test-secret-rotated-0123');
    serve.child.kill('SIGHUP');
    await until(
      'the limit to be reloaded',
      async () => JSON.stringify(await limit()) === JSON.stringify({ maxRunning: 3 }),
    );
    // The log comes through the process's stderr pipe, not in step with its HTTP answers.
    expect(await logged(serve, 'admission limits reloaded')).toMatchObject({ config });
    expect(await logged(serve, 'agents reloaded')).toMatchObject({
      added: [],
      retired: [],
      moved: [],
      secrets: ['h1'],
    });
    expect(await logged(serve, 'retention reloaded')).toMatchObject({ retention: 'off' });
    expect(await logged(serve, 'API rate limit reloaded')).toMatchObject({ rateLimit: 'off' });
    expect(serve.stderr()).not.toContain('reload-test-secret');
    expect(await reloads()).toBe('1 1 0');

    // Another agent in its place: h2 added, h1 retired (said, with what to do next).
    write(3, 'reload-test-secret-rotated-0123', 'h2');
    serve.child.kill('SIGHUP');
    const retiredLine = await logged(serve, 'agents reloaded', 1);
    expect(retiredLine).toMatchObject({ added: ['h2'], retired: ['h1'], moved: [], secrets: [] });
    expect(serve.stderr()).toContain('are retired: drained — still reached, so that the');
    expect(await reloads()).toBe('1 2 0');
    // The API tells the retired agent from the configured one (each once checked: a row).
    const configured = async (): Promise<string> => {
      const res = await fetch(`${serve.url}/v1/agents`, {
        headers: { authorization: `Bearer ${TOKENS.viewer}` },
      });
      const { agents } = (await res.json()) as {
        agents: { id: string; configured: boolean; retiredAt: number | null }[];
      };
      return agents
        .map((a) => `${a.id}:${a.configured}${a.retiredAt === null ? '' : ':retired-at'}`)
        .join(' ');
    };
    await until(
      'both agents to be listed',
      async () => (await configured()) === 'h1:false:retired-at h2:true',
    );
    // And `coco agents` says so.
    const tokenFile = join(dir, 'viewer.token');
    writeFileSync(tokenFile, TOKENS.viewer, { mode: 0o600 });
    const listed = await coco('agents', '--server', serve.url, '--token-file', tokenFile);
    expect(listed.code, listed.err).toBe(0);
    expect(listed.out).toMatch(/^h1\s+down, retired\s+0\s+never\s+http:\/\/127\.0\.0\.1:9 — /m);
    expect(listed.out).toMatch(/^h2\s+down\s+0\s+never\s+/m);

    writeFileSync(config, '{ not json');
    serve.child.kill('SIGHUP');
    await until('the failed reload to be logged', () =>
      Promise.resolve(serve.stderr().includes('configuration reload failed; nothing reloaded')),
    );
    expect(await limit('h2')).toEqual({ maxRunning: 3 });
    expect(await reloads()).toBe('0 2 1');
    expect(serve.child.exitCode).toBeNull();
  } finally {
    serve.child.kill('SIGTERM');
    await serve.exited;
  }
}, 60_000);

it('SIGHUP reloads the API tokens: a rotated token works at once, the old one is refused and its event streams end', async () => {
  const config = join(dir, 'tokens.json');
  const tokenFile = join(dir, 'rotating.token');
  writeFileSync(tokenFile, 'first-rotating-token-0123456789\n', { mode: 0o600 });
  writeFileSync(
    config,
    JSON.stringify({
      store: 'sqlite:tokens.db',
      api: {
        port: 0,
        tokens: [...testTokens(), { name: 'rotating', role: 'viewer', tokenFile }],
      },
      agents: [{ id: 'h1', url: 'http://127.0.0.1:9', secret: 'reload-test-secret-0123' }],
    }),
  );
  const serve = await startServeProcess(config, { COCO_LOG_LEVEL: 'info' });
  const call = (token: string): Promise<number> =>
    fetch(`${serve.url}/v1/admission`, { headers: { authorization: `Bearer ${token}` } }).then(
      (r) => r.status,
    );
  const follow = async (token: string): Promise<ReadableStreamDefaultReader<Uint8Array>> => {
    const res = await fetch(`${serve.url}/v1/events`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read(); // the opening comment: the stream is open
    return reader;
  };
  try {
    expect(await call('first-rotating-token-0123456789')).toBe(200);
    const revoked = await follow('first-rotating-token-0123456789');
    const kept = await follow(TOKENS.viewer);

    writeFileSync(tokenFile, 'second-rotating-token-0123456789\n', { mode: 0o600 });
    serve.child.kill('SIGHUP');
    // The stream of the token no longer accepted ends (done), without waiting for its client.
    let done = false;
    while (!done) done = (await revoked.read()).done;
    // One stream ended: the other token's stream is still open.
    expect(await logged(serve, 'API tokens reloaded')).toMatchObject({
      streamsEnded: 1,
      tokens: ['test-viewer', 'test-operator', 'test-admin', 'rotating'],
    });
    expect(await call('first-rotating-token-0123456789')).toBe(401);
    expect(await call('second-rotating-token-0123456789')).toBe(200);
    expect(await call(TOKENS.viewer)).toBe(200);
    expect(serve.stderr()).not.toContain('rotating-token-0123456789');
    await kept.cancel();
  } finally {
    serve.child.kill('SIGTERM');
    await serve.exited;
  }
}, 60_000);
