/**
 * Retention on a shared PostgreSQL store, beside what the conformance suite checks on every
 * store: trees a writer or a claim holds are passed over (never half-deleted), pruners running at
 * once split the trees between them, and pruning while nodes write, settle and claim trees
 * deletes exactly the settled trees, whole, without ever failing a node's batch.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import type { CommandRecord } from '../../src/core/records.js';
import type { PruneBatch } from '../../src/store/port.js';
import type { KnownType } from '../../src/store/shared-port.js';
import type { PostgresStore } from '../../src/store/postgres/pg-store.js';
import { PG_URL, describePg } from '../support/pg.js';
import { T0, batch, child, command, commandUpdate, task, taskUpdate } from './fixtures.js';
import { endAdmin, raw, schemaStores } from './pg-harness.js';
import { pruneAll, rowsOf, settledTree, storedRows, writeTrees } from './suite-retention.js';

const KNOWN: KnownType[] = [{ type: 'test.cmd', version: 1 }];
/** Every tree that ended is older than this cutoff. */
const CUTOFF = T0 + 1_000_000;

afterAll(endAdmin);

describePg('postgres retention beside writers, claims and other pruners', () => {
  let env: ReturnType<typeof schemaStores>;
  const clients: pg.Client[] = [];
  beforeEach(() => {
    env = schemaStores('coco_r');
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.end().catch(() => undefined);
    await env.cleanup();
  });

  /** A connection of its own, in a transaction holding `lock` on the test schema. */
  async function holding(lock: string): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: PG_URL });
    clients.push(c);
    await c.connect();
    await c.query(`SET search_path TO "${env.schema}"`);
    await c.query('BEGIN');
    await c.query(lock);
    return c;
  }

  it('a tree one of whose rows a writer or a claim holds is passed over whole, and goes once released', async () => {
    const a = env.make();
    await a.open('a');
    const held = settledTree(1, T0);
    const free = settledTree(10, T0 + 1);
    await writeTrees(a, [held, free]);
    // A writer holding a child's row (a batch in flight): the tree waits, the other goes.
    const writer = await holding('SELECT 1 FROM commands WHERE id = 3 FOR UPDATE');
    expect(await a.prune({ endedBefore: CUTOFF, limit: 10 })).toMatchObject({
      rootIds: [10],
      more: false,
    });
    expect(await storedRows(a, held)).toEqual(rowsOf(held));
    await writer.query('COMMIT');
    // A claim holding the root (claimOrphans locks roots FOR UPDATE SKIP LOCKED).
    const claim = await holding('SELECT 1 FROM commands WHERE id = 1 FOR UPDATE');
    expect(await a.prune({ endedBefore: CUTOFF, limit: 10 })).toMatchObject({ trees: 0 });
    expect(await storedRows(a, held)).toEqual(rowsOf(held));
    await claim.query('COMMIT');
    expect(await a.prune({ endedBefore: CUTOFF, limit: 10 })).toMatchObject({
      rootIds: [1],
      commands: 3,
      tasks: 6,
      undo: 3,
    });
    expect(await storedRows(a, held)).toEqual([0, 0, 0]);
  });

  it('the relayed reports and cancel requests of a pruned tree go with it, stray reports later; those of others stay', async () => {
    const a = env.make();
    await a.open('a');
    await writeTrees(a, [settledTree(1, T0, 1), settledTree(10, CUTOFF)]);
    // A late report for a task of the pruned tree (its poller relays after the settle).
    const report = {
      ordinal: 0,
      status: 'succeeded',
      result: null,
      error: null,
      progress: null,
      at: 5,
    } as const;
    await a.postReports([
      { commandId: 2, ...report },
      { commandId: 11, ...report },
    ]);
    await raw(
      env.schema,
      'INSERT INTO cancel_requests (command_id, requested_at) VALUES (1, 1), (10, 1)',
    );
    expect(await a.prune({ endedBefore: CUTOFF, limit: 10 })).toMatchObject({ rootIds: [1] });
    expect(await raw(env.schema, 'SELECT command_id FROM task_reports ORDER BY 1')).toEqual([
      { command_id: '11' },
    ]);
    // A poller's report posted just after its tree went names no command: the next call drops it.
    await a.postReports([{ commandId: 3, ...report }]);
    expect(await a.prune({ endedBefore: CUTOFF, limit: 10 })).toMatchObject({ trees: 0 });
    expect(await raw(env.schema, 'SELECT command_id FROM task_reports ORDER BY 1')).toEqual([
      { command_id: '11' },
    ]);
    expect(await raw(env.schema, 'SELECT command_id FROM cancel_requests ORDER BY 1')).toEqual([
      { command_id: '10' },
    ]);
  });

  it('pruners running at once split the trees: each is deleted once and counted once', async () => {
    const a = env.make();
    await a.open('a');
    const trees = Array.from({ length: 120 }, (_, i) => settledTree(1 + i * 3, T0 + (i % 7), 2));
    await writeTrees(a, trees);
    const pruners = [a, env.make(), env.make(), env.make()];
    const results = await Promise.all(
      pruners.map((p) => pruneAll(p, { endedBefore: CUTOFF, limit: 7 })),
    );
    // A tree another pruner held is passed over: a last pass takes what all of them skipped.
    const all = [...results.flat(), ...(await pruneAll(a, { endedBefore: CUTOFF, limit: 50 }))];
    const roots = all.flatMap((r) => r.rootIds);
    expect(new Set(roots).size).toBe(roots.length);
    expect(roots.sort((x, y) => x - y)).toEqual(trees.map((t) => t.commands[0]!.id));
    const total = (k: 'trees' | 'commands' | 'tasks' | 'undo'): number =>
      all.reduce((n, r) => n + r[k], 0);
    expect([total('trees'), total('commands'), total('tasks'), total('undo')]).toEqual([
      120, 360, 720, 360,
    ]);
    expect(Number((await raw(env.schema, 'SELECT count(*) AS n FROM commands'))[0]!.n)).toBe(0);
    expect(Number((await raw(env.schema, 'SELECT count(*) AS n FROM tasks'))[0]!.n)).toBe(0);
  });

  it('pruning while nodes write, settle and claim trees deletes exactly the settled trees, whole, and fails no batch', async () => {
    // Long leases for the nodes that stay (nothing renews them here); a short one for c.
    const a = env.make({ leaseMs: 60_000 });
    const b = env.make({ leaseMs: 60_000 });
    const c = env.make({ leaseMs: 300 });
    await Promise.all([a.open('a'), b.open('b'), c.open('c')]);
    // c's trees stay live; c stops renewing its lease, and b claims them meanwhile.
    const orphanRoot = command(100_000, { status: 'waiting' });
    await c.apply(
      batch({
        commandInserts: [orphanRoot, child(100_001, orphanRoot, 0)],
        taskInserts: [task(100_001, 0, { status: 'running' })],
      }),
    );

    const WAVES = 12;
    const PER_WAVE = 15;
    const written: { root: CommandRecord; kid: CommandRecord; settled: boolean }[] = [];
    let writing = true;
    const prunes: PruneBatch[] = [];
    const prune = async (p: PostgresStore): Promise<void> => {
      while (writing) prunes.push(...(await pruneAll(p, { endedBefore: CUTOFF, limit: 5 })));
    };
    const write = async (): Promise<void> => {
      let id = 1;
      for (let wave = 0; wave < WAVES; wave++) {
        // New live trees: a waiting root, a running child with a running task.
        const fresh = Array.from({ length: PER_WAVE }, () => {
          const root = command(id, { status: 'waiting' });
          const kid = child(id + 1, root, 0, { status: 'waiting' });
          id += 2;
          return { root, kid, settled: false };
        });
        await a.apply(
          batch({
            commandInserts: fresh.flatMap((t) => [t.root, t.kid]),
            taskInserts: fresh.map((t) => task(t.kid.id, 0, { status: 'running' })),
          }),
        );
        written.push(...fresh);
        // Half of the previous wave ends: the child (its task ends), then the root, settled.
        const ending = written.filter((t) => !t.settled && t.root.id < fresh[0]!.root.id);
        const now = ending.slice(0, Math.ceil(ending.length / 2));
        if (now.length > 0) {
          const endedAt = T0 + wave;
          await a.apply(
            batch({
              taskUpdates: now.map((t) =>
                taskUpdate(task(t.kid.id, 0, { status: 'succeeded', endedAt })),
              ),
              commandUpdates: now.flatMap((t) => [
                commandUpdate({ ...t.kid, status: 'succeeded', endedAt, tasksCleared: true }),
                commandUpdate({ ...t.root, status: 'succeeded', endedAt, tasksCleared: true }),
              ]),
            }),
          );
          for (const t of now) t.settled = true;
        }
        // Live trees keep being written while pruners run.
        const live = written.filter((t) => !t.settled);
        await a.apply(
          batch({
            commandUpdates: live.map((t) => commandUpdate({ ...t.root, updatedAt: T0 + wave })),
          }),
        );
        if (wave === WAVES / 2) expect(await b.claimOrphans('b', KNOWN, 10)).toEqual([100_000]);
      }
      writing = false;
    };
    await new Promise((r) => setTimeout(r, 350)); // c's lease runs out
    await Promise.all([write(), prune(a), prune(b), prune(env.make())]);

    const pruned = new Set([
      ...prunes.flatMap((p) => p.rootIds),
      ...(await pruneAll(a, { endedBefore: CUTOFF, limit: 50 })).flatMap((p) => p.rootIds),
    ]);
    for (const t of written) {
      const rows = [await a.getCommand(t.root.id), await a.getCommand(t.kid.id)];
      const tasks = await a.getTasks(t.kid.id);
      if (t.settled) {
        expect(pruned.has(t.root.id), `tree ${t.root.id}`).toBe(true);
        expect([...rows, ...tasks], `tree ${t.root.id}`).toEqual([null, null]);
      } else {
        expect(pruned.has(t.root.id), `tree ${t.root.id}`).toBe(false);
        expect(
          rows.map((r) => r?.status),
          `tree ${t.root.id}`,
        ).toEqual(['waiting', 'waiting']);
        expect(tasks).toHaveLength(1);
      }
    }
    expect(written.some((t) => t.settled)).toBe(true);
    expect(written.some((t) => !t.settled)).toBe(true);
    // The claimed tree: live, now b's, whole.
    const claimed = await b.loadRoots([100_000]);
    expect(claimed.commands.map((x) => [x.id, x.owner])).toEqual([
      [100_000, 'b'],
      [100_001, 'b'],
    ]);
    expect(claimed.tasks).toHaveLength(1);
  });
});
