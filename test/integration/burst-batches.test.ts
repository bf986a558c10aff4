/**
 * A burst of batch submissions made in one turn (ten `submitMany` at once, as a client with many
 * commands in flight does): each submission's roots are stepped as it arrives and a full batch
 * goes to the store at once (engine.ts `submitMany`, coordinator.ts `stepReady`), so the store
 * writes the first commands while the later submissions are still being created — not only once
 * every root of the burst exists.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { batchRows, type ChangeBatch } from '../../src/store/port.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const one = defineCommand({
  name: 'burst.one',
  schema: z.object({ i: z.number() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

/** For each batch the store is sent: the commands in memory then, the statuses it inserts, its rows. */
interface Sent {
  live: number;
  inserted: string[];
  rows: number;
}

/** An engine of `one` on a fresh SQLite file, started; `sent` records every batch applied. */
async function burstEngine(
  maxBatchRows?: number,
): Promise<{ engine: Engine; sent: Sent[]; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'coco-burst-'));
  dirs.push(dir);
  const store = sqliteStore({ path: join(dir, 'coco.db') });
  const engine = createEngine({
    store,
    agents: inProcessAgents(['a1'], { history: false }),
    commands: [one],
    ...(maxBatchRows === undefined ? {} : { tuning: { maxBatchRows } }),
  });
  const sent: Sent[] = [];
  const apply = store.apply.bind(store);
  store.apply = (batch: ChangeBatch): Promise<void> => {
    sent.push({
      live: engine.stats().liveCommands,
      inserted: batch.commandInserts.map((c) => c.status),
      rows: batchRows(batch),
    });
    return apply(batch);
  };
  await engine.start();
  return {
    engine,
    sent,
    stop: async () => {
      await engine.stop();
      await store.close();
    },
  };
}

it('ten submitMany in one turn: the first batch is sent before the last submission is created', async () => {
  // A command is 2 rows (itself, its task): a batch holds 250, a submission 100.
  const { engine, sent, stop } = await burstEngine(500);
  try {
    const submissions = Array.from({ length: 10 }, (_, s) =>
      engine.submitMany(
        Array.from({ length: 100 }, (_, i) => ({ type: one, params: { i: s * 100 + i } })),
      ),
    );
    const ids = (await Promise.all(submissions)).flat();
    const ended = await Promise.all(ids.map(({ id }) => engine.waitFor(id)));
    expect(ended.map((c) => c.status)).toEqual(ended.map(() => 'succeeded'));
    // Sent after three submissions (600 rows stepped), before the other seven were created
    // (before, only once all 1,000 roots existed).
    expect(sent[0]!.live).toBeLessThan(1000);
    // No command stored before its handler ran (it would be stored again as waiting).
    expect(sent.flatMap((b) => b.inserted).filter((s) => s === 'pending')).toEqual([]);
    expect(sent.reduce((n, b) => n + b.inserted.length, 0)).toBe(1000);
    expect(sent.filter((b) => b.rows === 0)).toEqual([]);
  } finally {
    await stop();
  }
});

it('a submitMany sent to an idle store at once answers with the batch that holds its roots', async () => {
  const { engine, sent, stop } = await burstEngine();
  try {
    const before = sent.length;
    // 1,200 rows: an idle store gets them at once (twice SPLIT_MIN_ROWS), in the submission.
    const ids = await engine.submitMany(
      Array.from({ length: 600 }, (_, i) => ({ type: one, params: { i } })),
    );
    // Answered when that batch committed: not one batch later, with a batch of its own.
    expect(sent.slice(before).map((b) => b.rows)).toEqual([1200]);
    await Promise.all(ids.map(({ id }) => engine.waitFor(id)));
  } finally {
    await stop();
  }
});

it('a thousand single submits in one turn: the first batch is sent before the last is created', async () => {
  const { engine, sent, stop } = await burstEngine(500);
  try {
    const ids = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => engine.submit(one, { i })),
    );
    const ended = await Promise.all(ids.map(({ id }) => engine.waitFor(id)));
    expect(ended.map((c) => c.status)).toEqual(ended.map(() => 'succeeded'));
    // Sent once 250 were stepped (a full batch), before the other 750 were created.
    expect(sent[0]!.live).toBeLessThan(1000);
    expect(sent.filter((b) => b.rows === 0)).toEqual([]);
  } finally {
    await stop();
  }
});
