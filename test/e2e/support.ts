/**
 * Real processes for end-to-end tests: `coco agent` and `coco serve` started with tsx from the
 * sources, free ports, SHA-256 of files, and reading the store of a node that is not running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

const BIN = new URL('../../src/cli/bin.ts', import.meta.url).pathname;

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** A running `coco` process. */
export interface CocoProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
}

/** Starts `coco <args>` (from the sources, with tsx). */
export function spawnCoco(args: readonly string[], env: Record<string, string> = {}): CocoProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], {
    env: { ...process.env, COCO_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => err };
}

/** Starts `coco agent` and resolves once it listens (its first stdout line). */
export async function startAgentProcess(o: {
  id: string;
  port: number;
  dataDir: string;
  storageRoot: string;
  secret: string;
  /** More options of `coco agent`. */
  args?: readonly string[];
}): Promise<CocoProcess & { url: string; bootId: string }> {
  const p = spawnCoco(
    [
      'agent',
      '--id',
      o.id,
      '--port',
      String(o.port),
      '--data-dir',
      o.dataDir,
      '--storage-root',
      o.storageRoot,
      ...(o.args ?? []),
    ],
    { COCO_AGENT_SECRET: o.secret },
  );
  const line = await new Promise<string>((resolve, reject) => {
    p.child.once('exit', (code) => reject(new Error(`agent exited with ${code}: ${p.stderr()}`)));
    createInterface({ input: p.child.stdout! }).once('line', resolve);
  });
  const { url, bootId } = JSON.parse(line) as { url: string; bootId: string };
  return { ...p, url, bootId };
}

/**
 * Starts `coco serve --config <file>` (with `env`) and resolves once its API listens, with the
 * URL it says it listens on — so a configuration may ask for port 0 (any free port), which no
 * other process can take between choosing it and binding it.
 */
export async function startServeProcess(
  config: string,
  env: Record<string, string> = {},
): Promise<CocoProcess & { url: string }> {
  const p = spawnCoco(['serve', '--config', config], env);
  const url = await new Promise<string>((resolve, reject) => {
    p.child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${p.stderr()}`)));
    p.child.stderr!.on('data', () => {
      const m = /listening on (http:\/\/\S+)/.exec(p.stderr());
      if (m) resolve(m[1]!);
    });
  });
  return { ...p, url };
}

/** Kills a process with SIGKILL and waits for it to be gone. */
export async function killHard(p: CocoProcess): Promise<void> {
  p.child.kill('SIGKILL');
  await p.exited;
}

/** SHA-256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
