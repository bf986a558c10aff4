/**
 * A running task's progress, from a real reference agent over HTTP to the job tree: the agent's
 * storage verbs (the rate-limited `volume.copy` of a disk migration), the HTTP broker with its
 * long-poll, the engine, and the job monitor on the same SQLite file — what the job tree
 * (`GET /v1/jobs/:id`, the dashboard's job view) shows while the copy runs, below the browser.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { diskCommands, diskCreate, diskMigrate } from '../../examples/disk/index.js';
import { HttpBroker } from '../../src/brokers/http/broker.js';
import { createEngine } from '../../src/engine/engine.js';
import { createJobMonitor } from '../../src/jobs/monitor.js';
import type { Step } from '../../src/jobs/port.js';
import { sqliteJobStore } from '../../src/jobs/sqlite/job-store.js';
import { startAgent } from '../../src/reference-agent/index.js';
import { storageVerbs } from '../../src/reference-agent/storage/verbs.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../support/harness.js';

const SECRET = 'a-secret-of-the-progress-test';
const MiB = 1024 * 1024;

it("a migration's copy shows its agent's progress in the job tree while it runs, value after value", async () => {
  const dir = tempDir('coco-agent-progress-');
  const agent = await startAgent({
    id: 'host-1',
    secret: SECRET,
    dataDir: join(dir, 'agent'),
    verbs: storageVerbs(join(dir, 'storage')),
    logger: pino({ level: 'silent' }),
  });
  const broker = new HttpBroker({
    caller: 'node-1',
    agents: [{ id: 'host-1', url: agent.url, secret: SECRET }],
  });
  const db = join(dir, 'coco.db');
  // The node's settings (`coco serve`), with the dashboard test's poll interval.
  const engine = createEngine({
    store: sqliteStore({ path: db }),
    agents: broker,
    commands: diskCommands,
    tuning: { pollIntervalMs: 100 },
  });
  const monitor = createJobMonitor({ engine, store: sqliteJobStore({ path: db }) });
  try {
    await engine.start();
    await monitor.start();
    const create = await engine.submit(diskCreate, {
      disk: 'd1',
      domain: 'sd-a',
      sizeBytes: 8 * MiB,
      agent: 'host-1',
      seed: 1,
    });
    expect((await engine.waitFor(create.id)).status).toBe('succeeded');

    // The copy's task step, each time the monitor writes it.
    const copySteps: Step[] = [];
    let copyCommand = -1;
    monitor.on('step', (s) => {
      if (s.kind === 'command' && s.name === 'disk.migrate.copy') copyCommand = s.commandId;
      else if (s.kind === 'task' && s.commandId === copyCommand && !s.undo) copySteps.push(s);
    });
    // 8 MiB at 2 MiB/s: a copy of 4 s at least, in 64 KiB chunks (the agent reports each whole
    // percent; the monitor writes progress every 250 ms).
    const { id } = await engine.submit(diskMigrate, {
      disk: 'd1',
      toDomain: 'sd-b',
      agent: 'host-1',
      chunkBytes: 64 * 1024,
      bytesPerSecond: 2 * MiB,
    });
    expect((await engine.waitFor(id)).status).toBe('succeeded');
    await monitor.flush();

    const whileRunning = copySteps
      .filter((s) => s.status === 'running' && s.progress > 0 && s.progress < 100)
      .map((s) => s.progress);
    // Not one report and then nothing until the end: the tree followed the copy.
    expect(new Set(whileRunning).size).toBeGreaterThanOrEqual(5);
    expect(whileRunning.some((p) => p >= 50)).toBe(true);
    expect(whileRunning).toEqual([...whileRunning].sort((a, b) => a - b));
    expect(copySteps.at(-1)).toMatchObject({ status: 'succeeded', progress: 100 });
    const tree = await monitor.getTree(id);
    expect(tree?.job).toMatchObject({ status: 'succeeded', progress: 100 });
  } finally {
    await engine.stop();
    await monitor.stop();
    await broker.close();
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
