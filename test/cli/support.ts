/**
 * Runs the CLI in this process, capturing what it prints and its exit code; and a node for it to
 * talk to.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { vi } from 'vitest';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { runCli } from '../../src/cli/main.js';
import { parseConfig } from '../../src/config/config.js';
import type { CommandType } from '../../src/core/command-type.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import type { VerbRegistry } from '../../src/verbs/model.js';
import { tempDir } from '../support/harness.js';

/** A node for the CLI to talk to ({@link startCliNode}). */
export interface CliNode {
  readonly dir: string;
  readonly node: CocoNode;
  /** Its API's address, for `--server`. */
  readonly server: string;
  /** Its own (admin) token, created beside its store. */
  readonly token: string;
  /** Stops it, forgets its token and deletes its folder. */
  close(): Promise<void>;
}

/**
 * Starts a node on a SQLite file in a fresh folder (`prefix`), with in-process agent `a1` and its
 * API on a free port; the CLI run here finds the node's own token through `COCO_TOKEN`.
 */
export async function startCliNode(options: {
  readonly prefix: string;
  readonly commands: readonly CommandType[];
  readonly verbs?: VerbRegistry;
}): Promise<CliNode> {
  const dir = tempDir(options.prefix);
  const config = parseConfig({ store: `sqlite:${join(dir, 'coco.db')}`, api: { port: 0 } }, dir);
  const node = await startNode({
    config,
    commands: options.commands,
    broker: inProcessAgents(['a1'], { verbs: options.verbs ?? {} }),
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  });
  const token = readFileSync(join(dir, 'coco.db.token'), 'utf8').trim();
  process.env.COCO_TOKEN = token;
  return {
    dir,
    node,
    server: node.url!,
    token,
    async close() {
      delete process.env.COCO_TOKEN;
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs `coco <args>` in-process. */
export function coco(...args: string[]): Promise<CliRun> {
  return cocoSeeing(() => undefined, ...args);
}

/** Runs `coco <args>` in-process, showing `onErr` each piece of stderr as it is written. */
export async function cocoSeeing(
  onErr: (text: string) => void,
  ...args: string[]
): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const toErr = (text: string): void => {
    err.push(text);
    onErr(text);
  };
  const log = vi
    .spyOn(console, 'log')
    .mockImplementation((...a: unknown[]) => void out.push(a.map(String).join(' ')));
  const error = vi
    .spyOn(console, 'error')
    .mockImplementation((...a: unknown[]) => void toErr(a.map(String).join(' ')));
  const stdout = vi
    .spyOn(process.stdout, 'write')
    .mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
  const stderr = vi
    .spyOn(process.stderr, 'write')
    .mockImplementation((chunk: string | Uint8Array) => {
      toErr(String(chunk));
      return true;
    });
  try {
    const code = await runCli(args);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
    stdout.mockRestore();
    stderr.mockRestore();
  }
}
