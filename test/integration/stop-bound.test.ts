/**
 * How long a node may take to stop (`CocoNode.stopBoundMs`, which `coco serve` adds its margin to
 * before it exits anyway): the job monitor's bound and the engine's grace and store bound, from
 * the configuration — so that raising `stopTimeoutMs` is not cut short by a fixed bound — and the
 * configuration's `jobs` in its three forms.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { SHUTDOWN_MARGIN_MS } from '../../src/cli/commands/node-commands.js';
import { parseConfig } from '../../src/config/config.js';
import { CocoError } from '../../src/core/errors.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import { Journal, testCommands } from '../support/commands.js';
import { tempDir } from '../support/harness.js';

const t = testCommands(new Journal());
const dir = tempDir('coco-stop-bound-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function nodeWith(name: string, extra: Record<string, unknown>): Promise<CocoNode> {
  return startNode({
    config: parseConfig({ store: `sqlite:${join(dir, `${name}.db`)}`, ...extra }, dir),
    commands: t.all,
    broker: inProcessAgents(['a1']),
    logger: { debug() {}, info() {}, warn() {}, error() {} },
    listen: false,
  });
}

it('jobs is true, false or { stopTimeout }, a positive duration', () => {
  expect(parseConfig({}, dir).jobs).toBe(true);
  expect(parseConfig({ jobs: false }, dir).jobs).toBe(false);
  expect(parseConfig({ jobs: { stopTimeout: '8s' } }, dir).jobs).toEqual({ stopTimeout: 8_000 });
  expect(parseConfig({ jobs: {} }, dir).jobs).toEqual({});
  for (const jobs of [{ stopTimeout: 0 }, { stopTimeout: '8 s' }, { stoptimeout: '8s' }, 'yes']) {
    let error: unknown;
    try {
      parseConfig({ jobs }, dir);
    } catch (e) {
      error = e;
    }
    expect(error, JSON.stringify(jobs)).toBeInstanceOf(CocoError);
    expect(JSON.stringify((error as CocoError).details), JSON.stringify(jobs)).toContain('jobs');
  }
});

it('on the defaults a node stops within 20 s of bounds, and coco serve exits after 25 s at most', async () => {
  const node = await nodeWith('defaults', {});
  try {
    // The monitor's 5 s, the handlers' 5 s grace, the store's 10 s.
    expect(node.stopBoundMs).toBe(20_000);
    expect(node.stopBoundMs + SHUTDOWN_MARGIN_MS).toBe(25_000);
  } finally {
    await node.close();
  }
});

it('a configuration that raises the parts’ bounds raises the node’s with them', async () => {
  const node = await nodeWith('raised', {
    jobs: { stopTimeout: '8s' },
    tuning: { stopGraceMs: 30_000, stopTimeoutMs: 45_000 },
  });
  try {
    expect(node.monitor?.stopBoundMs).toBe(8_000);
    expect(node.engine.stopBoundMs).toBe(75_000);
    expect(node.stopBoundMs).toBe(83_000);
  } finally {
    await node.close();
  }
  // No job view: nothing of the monitor's to wait for.
  const bare = await nodeWith('bare', { jobs: false });
  try {
    expect(bare.monitor).toBeNull();
    expect(bare.stopBoundMs).toBe(15_000);
  } finally {
    await bare.close();
  }
});
