/**
 * The coordinator's drain works a tree's new commands depth first and sends a batch as soon as
 * it has made one (coordinator.ts `#drain`, committer.ts `flushNow`): the store writes the first
 * trees of a large submitMany while the engine works out the rest, and a batch holds whole trees
 * only — a new command is never stored `pending` and then again once its handler ran.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { createEngine } from '../../src/engine/engine.js';
import type { ChangeBatch } from '../../src/store/port.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

it('a large submitMany: the first batch is sent before the last tree is worked out, and holds whole trees', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coco-drain-'));
  dirs.push(dir);
  let parentsRun = 0;
  const leaf = defineCommand({
    name: 'drain.leaf',
    schema: z.object({ i: z.number() }),
    execute(ctx) {
      ctx.expect({ tasks: 1 });
      ctx.startTask({ agent: 'a1', verb: 'noop' });
    },
  });
  const parent = defineCommand({
    name: 'drain.parent',
    schema: z.object({}),
    execute(ctx) {
      parentsRun++;
      ctx.expect({ children: 10 });
      for (let i = 0; i < 10; i++) ctx.addChild(leaf, { i });
    },
  });
  const store = sqliteStore({ path: join(dir, 'coco.db') });
  /** For each batch: how many parents had run when it was sent, and the statuses it inserted. */
  const sent: { parentsRun: number; inserted: string[] }[] = [];
  const apply = store.apply.bind(store);
  store.apply = (batch: ChangeBatch): Promise<void> => {
    sent.push({ parentsRun, inserted: batch.commandInserts.map((c) => c.status) });
    return apply(batch);
  };
  const engine = createEngine({
    store,
    agents: inProcessAgents(['a1'], { history: false }),
    commands: [leaf, parent],
    // A tree is 21 rows (parent, 10 children, 10 tasks): a batch holds about 10 of them.
    tuning: { maxBatchRows: 200 },
  });
  await engine.start();
  try {
    const ids = await engine.submitMany(
      Array.from({ length: 60 }, () => ({ type: parent, params: {} })),
    );
    const ended = await Promise.all(ids.map(({ id }) => engine.waitFor(id)));
    expect(ended.map((c) => c.status)).toEqual(ended.map(() => 'succeeded'));
    // Sent while the drain was still working out later trees (before, only after all 60).
    expect(sent[0]!.parentsRun).toBeLessThan(60);
    // No command stored before its handler ran (it would be stored again as waiting).
    expect(sent.flatMap((b) => b.inserted).filter((s) => s === 'pending')).toEqual([]);
    expect(sent.reduce((n, b) => n + b.inserted.length, 0)).toBe(60 * 11);
  } finally {
    await engine.stop();
    await store.close();
  }
});
