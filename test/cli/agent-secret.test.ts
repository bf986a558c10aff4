/**
 * Where `coco agent` takes its shared secret from: never the process arguments (`--secret` is
 * refused), but `--secret-file <path>` or `COCO_AGENT_SECRET` — with real `coco agent` processes.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnCoco, type CocoProcess } from '../e2e/support.js';
import { Client } from '../reference-agent/support.js';
import { until } from '../store-conformance/pg-harness.js';

const SECRET = 'file-secret-0123456789abcdef';
const running: CocoProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const p of running.splice(0)) {
    p.child.kill('SIGTERM');
    await p.exited;
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'coco-secret-'));
  dirs.push(dir);
  return dir;
}

/** `coco agent --id a1 --port 0 ... <args>`, with `env`. */
function agentProcess(dir: string, args: readonly string[], env: Record<string, string> = {}) {
  const p = spawnCoco(
    [
      'agent',
      '--id',
      'agent-1',
      '--port',
      '0',
      '--data-dir',
      join(dir, 'data'),
      '--storage-root',
      join(dir, 'storage'),
      ...args,
    ],
    { COCO_AGENT_SECRET: '', ...env },
  );
  running.push(p);
  return p;
}

/** How the process ended up: listening (its first stdout line) or exited (with its code). */
async function outcome(
  p: CocoProcess,
): Promise<{ listening: string } | { exited: number | null; stderr: string }> {
  const line = new Promise<string>((resolve) =>
    createInterface({ input: p.child.stdout! }).once('line', resolve),
  );
  return Promise.race([
    line.then((l) => ({ listening: l })),
    p.exited.then((code) => ({ exited: code, stderr: p.stderr() })),
  ]);
}

function secretFile(dir: string, content: string, mode: number): string {
  const path = join(dir, 'agent.secret');
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

describe('coco agent: the secret', () => {
  it('refuses --secret with a usage error (exit 2) saying what to use, without echoing the secret', async () => {
    const dir = tempDir();
    const ended = await outcome(agentProcess(dir, ['--secret', SECRET]));
    expect(ended).toMatchObject({ exited: 2 });
    const { stderr } = ended as { stderr: string };
    expect(stderr).toMatch(/--secret-file/);
    expect(stderr).toMatch(/COCO_AGENT_SECRET/);
    expect(stderr).not.toContain(SECRET);
  });

  it('reads --secret-file (trimmed): requests signed with that secret are served', async () => {
    const dir = tempDir();
    const p = agentProcess(dir, ['--secret-file', secretFile(dir, `${SECRET}\n`, 0o600)], {
      COCO_LOG_LEVEL: 'info',
    });
    const ended = await outcome(p);
    expect(ended, JSON.stringify(ended)).toHaveProperty('listening');
    const { url } = JSON.parse((ended as { listening: string }).listening) as { url: string };
    const health = await new Client(url, { secret: SECRET }).health();
    expect(health.agentId).toBe('agent-1');
    expect(p.stderr()).not.toMatch(/readable by/);
    expect(p.stderr()).not.toContain(SECRET);
  });

  it('warns when the secret file is readable by group or others', async () => {
    const dir = tempDir();
    const p = agentProcess(dir, ['--secret-file', secretFile(dir, SECRET, 0o644)]);
    const ended = await outcome(p);
    expect(ended, JSON.stringify(ended)).toHaveProperty('listening');
    expect(p.stderr()).toMatch(/readable by group or others.*chmod 600/);
    expect(p.stderr()).not.toContain(SECRET);
  });

  it('refuses a secret file holding fewer than 16 characters, and a missing one, naming the file', async () => {
    const dir = tempDir();
    const short = secretFile(dir, ' too-short \n', 0o600);
    const ended = await outcome(agentProcess(dir, ['--secret-file', short]));
    expect(ended).toMatchObject({ exited: 2 });
    expect((ended as { stderr: string }).stderr).toMatch(/at least 16 characters/);
    expect((ended as { stderr: string }).stderr).toContain(short);

    const missing = join(dir, 'nowhere.secret');
    const gone = await outcome(agentProcess(dir, ['--secret-file', missing]));
    expect(gone).toMatchObject({ exited: 2 });
    expect((gone as { stderr: string }).stderr).toContain(missing);
  });

  it('takes COCO_AGENT_SECRET, and refuses a secret given twice (file and environment)', async () => {
    const dir = tempDir();
    const env = await outcome(agentProcess(dir, [], { COCO_AGENT_SECRET: SECRET }));
    expect(env, JSON.stringify(env)).toHaveProperty('listening');

    const other = tempDir();
    const twice = await outcome(
      agentProcess(other, ['--secret-file', secretFile(other, SECRET, 0o600)], {
        COCO_AGENT_SECRET: SECRET,
      }),
    );
    expect(twice).toMatchObject({ exited: 2 });
    expect((twice as { stderr: string }).stderr).toMatch(
      /either --secret-file or COCO_AGENT_SECRET/,
    );
  });

  it('a rotation: the file’s lines are all accepted, and SIGHUP reads it again, with no restart', async () => {
    const dir = tempDir();
    const OLD = SECRET;
    const NEW = 'rotated-secret-0123456789abcdef';
    const path = secretFile(dir, `${OLD}\n`, 0o600);
    const p = agentProcess(dir, ['--secret-file', path], { COCO_LOG_LEVEL: 'info' });
    const ended = await outcome(p);
    expect(ended, JSON.stringify(ended)).toHaveProperty('listening');
    const { url, bootId } = JSON.parse((ended as { listening: string }).listening) as {
      url: string;
      bootId: string;
    };
    const served = async (secret: string): Promise<boolean> =>
      new Client(url, { secret }).health().then(
        () => true,
        (error: unknown) => {
          if (String(error).includes('HTTP 401')) return false;
          throw error;
        },
      );
    const reloaded = async (n: number): Promise<void> => {
      p.child.kill('SIGHUP');
      await until('the reload to be logged', () =>
        Promise.resolve(p.stderr().split('agent secrets reloaded').length - 1 >= n),
      );
    };
    expect([await served(OLD), await served(NEW)]).toEqual([true, false]);
    // 1. The new secret beside the old: both accepted (the engines still sign with the old).
    writeFileSync(path, `${NEW}\n${OLD}\n`);
    await reloaded(1);
    expect([await served(OLD), await served(NEW)]).toEqual([true, true]);
    // 3. Once every engine signs with the new one, the old goes.
    writeFileSync(path, `${NEW}\n`);
    await reloaded(2);
    expect([await served(OLD), await served(NEW)]).toEqual([false, true]);
    // A file that no longer holds a good secret leaves those in force.
    writeFileSync(path, 'short\n');
    p.child.kill('SIGHUP');
    await until('the refused reload to be logged', () =>
      Promise.resolve(p.stderr().includes('agent secrets not reloaded; those in force kept')),
    );
    expect(await served(NEW)).toBe(true);
    // The same process throughout, and no secret in its log.
    expect((await new Client(url, { secret: NEW }).health()).bootId).toBe(bootId);
    expect(p.stderr()).not.toContain(OLD);
    expect(p.stderr()).not.toContain(NEW);
  });
});
