/**
 * The PostgreSQL store as a shared store (src/store/port.ts SharedStore): node leases and
 * fencing, claims of orphaned trees (once, by one claimer, only when every command's type and
 * version is known), agent leases, and the relay of task reports with its signals.
 */
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import type { KnownType, StoreSignal, TaskReportRecord } from '../../src/store/shared-port.js';
import type { PostgresStore } from '../../src/store/postgres/pg-store.js';
import { buildSharedSql } from '../../src/store/postgres/shared-sql.js';
import { describePg } from '../support/pg.js';
import { executedPlans, planNodes, settingsAt10M } from './pg-plans.js';
import {
  T0,
  batch,
  child,
  command,
  commandUpdate,
  endedCommand,
  task,
  taskUpdate,
} from './fixtures.js';
import { rejectsWith } from './harness.js';
import { admin, endAdmin, raw, schemaStores } from './pg-harness.js';

const KNOWN: KnownType[] = [{ type: 'test.cmd', version: 1 }];
/** A lease short enough for a test to wait it out. */
const SHORT_LEASE = 300;
const expire = (): Promise<void> => new Promise((r) => setTimeout(r, SHORT_LEASE + 50));

/** Resolves at the first `signal` the store calls back for `nodeId`; records them all. */
async function signals(
  store: PostgresStore,
  nodeId: string,
): Promise<{ seen: StoreSignal[]; next(signal: StoreSignal): Promise<void> }> {
  const seen: StoreSignal[] = [];
  const waiters: { signal: StoreSignal; resolve(): void }[] = [];
  await store.listen(nodeId, (s) => {
    seen.push(s);
    for (const w of waiters.filter((x) => x.signal === s)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  return {
    seen,
    next: (signal) => new Promise((resolve) => waiters.push({ signal, resolve })),
  };
}

afterAll(endAdmin);

describePg('postgres shared store', () => {
  let env: ReturnType<typeof schemaStores>;
  beforeEach(() => {
    env = schemaStores('coco_s');
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it('an expired node is fenced by the first claim: its trees are claimed once, and its writes are refused', async () => {
    const a = env.make({ leaseMs: SHORT_LEASE });
    const b = env.make();
    const c = env.make();
    await Promise.all([a.open('a'), b.open('b'), c.open('c')]);
    const root = command(1, { status: 'waiting' });
    await a.apply(
      batch({
        commandInserts: [root, child(2, root, 0), command(3), endedCommand(4)],
        taskInserts: [task(1, 0, { status: 'running' })],
      }),
    );
    const cSignals = await signals(c, 'c');
    // Renewed here: on a busy machine the steps above can outlast the short lease.
    await a.heartbeat('a');
    expect(await b.claimOrphans('b', KNOWN, 10)).toEqual([]); // a is live
    await expire();
    const orphaned = cSignals.next('orphans');
    expect(await b.claimOrphans('b', KNOWN, 10)).toEqual([1, 3]);
    await orphaned; // b fenced a, and told the others
    expect(await c.claimOrphans('c', KNOWN, 10)).toEqual([]);
    expect(await b.claimOrphans('b', KNOWN, 10)).toEqual([]);

    await rejectsWith(
      a.apply(batch({ commandUpdates: [commandUpdate({ ...root, status: 'succeeded' })] })),
      ErrorCode.LeaseLost,
    );
    await rejectsWith(a.apply(batch({ commandInserts: [command(9)] })), ErrorCode.LeaseLost);
    await rejectsWith(a.heartbeat('a'), ErrorCode.LeaseLost);
    await rejectsWith(a.claimOrphans('a', KNOWN, 10), ErrorCode.LeaseLost);
    await rejectsWith(a.claimAgents('a', ['x']), ErrorCode.LeaseLost);
    expect((await b.getCommand(1))?.status).toBe('waiting');
    expect(await b.getCommand(9)).toBeNull();

    const snap = await b.loadRoots([1, 3]);
    expect(snap.commands.map((x) => [x.id, x.owner])).toEqual([
      [1, 'b'],
      [2, 'b'],
      [3, 'b'],
    ]);
    expect(snap.tasks).toEqual([task(1, 0, { status: 'running' })]);
    expect((await b.loadActive()).commands.map((x) => x.id)).toEqual([1, 2, 3]);
    expect((await c.loadActive()).commands).toEqual([]);
    // The new owner writes the claimed trees.
    await b.apply(batch({ commandUpdates: [commandUpdate({ ...root, status: 'succeeded' })] }));
  });

  it("a claim that takes no tree does not wait for the node's own batch in flight (nor make it wait)", async () => {
    const n = env.make();
    await n.open('n');
    // A batch of n's in flight holds n's row (its last_batch) until its COMMIT: held here.
    const held = await admin().connect();
    try {
      await held.query('BEGIN');
      await held.query(
        `UPDATE "${env.schema}".coco_nodes SET last_batch = last_batch WHERE node_id = 'n'`,
      );
      const timeout = new Promise<string>((r) => setTimeout(() => r('waited'), 1_000));
      expect(await Promise.race([n.claimOrphans('n', KNOWN, 10), timeout])).toEqual([]);
    } finally {
      await held.query('ROLLBACK');
      held.release();
    }
    // A claim that takes trees still writes the ledger (postgres-faults: its lost answer).
    const dead = env.make();
    await dead.open('dead');
    await dead.apply(batch({ commandInserts: [command(1)] }));
    await dead.close('dead');
    expect(await n.claimOrphans('n', KNOWN, 10)).toEqual([1]);
    const [row] = await raw<{ last_claim: string; roots: string[] }>(
      env.schema,
      "SELECT last_claim, last_claim_roots::text[] AS roots FROM coco_nodes WHERE node_id = 'n'",
    );
    expect(row!.roots).toEqual(['1']);
    expect(Number(row!.last_claim)).toBeGreaterThan(0);
  });

  it('rows of nodes fenced long ago that own nothing are purged; their id registers again with a new epoch', async () => {
    const nodeRows = async (): Promise<{ node_id: string; epoch: string }[]> =>
      raw(env.schema, 'SELECT node_id, epoch FROM coco_nodes ORDER BY node_id');
    const x = env.make();
    const z = env.make();
    const y = env.make();
    await Promise.all([x.open('x'), z.open('z'), y.open('y')]);
    await x.apply(batch({ commandInserts: [command(1)] }));
    // z's tree has a type nobody else knows: it is never claimed, so z's row must stay.
    await z.apply(batch({ commandInserts: [command(2, { type: 'test.unknown' })] }));
    await x.claimAgents('x', ['agent-x']);
    const xEpoch = (await nodeRows()).find((r) => r.node_id === 'x')!.epoch;
    await raw(
      env.schema,
      "UPDATE coco_nodes SET fenced = true, heartbeat_at = now() - interval '2 hours' WHERE node_id IN ('x', 'z')",
    );
    // First claim: x still owns its tree while the purge looks, so its row stays.
    expect(await y.claimOrphans('y', KNOWN, 10)).toEqual([1]);
    expect((await nodeRows()).map((r) => r.node_id)).toEqual(['x', 'y', 'z']);
    // Next claim: x owns nothing, its row and its agent lease go; z's stays.
    expect(await y.claimOrphans('y', KNOWN, 10)).toEqual([]);
    expect((await nodeRows()).map((r) => r.node_id)).toEqual(['y', 'z']);
    expect(await raw(env.schema, 'SELECT agent_id FROM agent_leases')).toEqual([]);
    // A node fenced recently is kept, even once it owns nothing.
    await y.close('y');
    const w = env.make();
    await w.open('w');
    expect(await w.claimOrphans('w', KNOWN, 10)).toEqual([1]);
    expect(await w.claimOrphans('w', KNOWN, 10)).toEqual([]);
    expect((await nodeRows()).map((r) => r.node_id)).toEqual(['w', 'y', 'z']);

    // x registers again: a new epoch, above the one its purged row had, and the earlier
    // process (still holding the old epoch) is refused.
    const x2 = env.make();
    await x2.open('x');
    const again = (await nodeRows()).find((r) => r.node_id === 'x')!.epoch;
    expect(BigInt(again)).toBeGreaterThan(BigInt(xEpoch));
    await rejectsWith(x.apply(batch({ commandInserts: [command(5)] })), ErrorCode.LeaseLost);
    await x2.apply(batch({ commandInserts: [command(6)] }));
    // The claimer that knows z's type takes its tree; z owns nothing now.
    expect(await w.claimOrphans('w', [...KNOWN, { type: 'test.unknown', version: 1 }], 10)).toEqual(
      [2],
    );
  });

  it('a claimer whose own lease has expired is refused', async () => {
    const a = env.make({ leaseMs: SHORT_LEASE });
    await a.open('a');
    await expire();
    await rejectsWith(a.claimOrphans('a', KNOWN, 10), ErrorCode.LeaseLost);
    // Not fenced yet (nobody claimed): its heartbeat renews it.
    await a.heartbeat('a');
    expect(await a.claimOrphans('a', KNOWN, 10)).toEqual([]);
  });

  it('insertKeyedRoot: a keyed root stored alone as a batch stores it, unless its key is taken; refused to a fenced node', async () => {
    const a = env.make({ leaseMs: SHORT_LEASE });
    const b = env.make();
    await Promise.all([a.open('a'), b.open('b')]);
    const root = command(1, { idempotencyKey: 'k' });
    expect(await b.insertKeyedRoot('b', root)).toBe(true);
    // As a batch stores a root: owned by the node.
    expect(await b.getCommand(1)).toEqual({ ...root, owner: 'b' });
    expect(await b.getCommandByKey('k')).toEqual({ ...root, owner: 'b' });
    // Its key taken, by another node's root or by this very row (a try whose answer was lost):
    // nothing stored, no error.
    await a.heartbeat('a');
    expect(await a.insertKeyedRoot('a', command(2, { idempotencyKey: 'k' }))).toBe(false);
    expect(await b.insertKeyedRoot('b', root)).toBe(false);
    expect(await b.getCommand(2)).toBeNull();
    // The node's batches take it from there.
    const waiting = command(1, { idempotencyKey: 'k', status: 'waiting' });
    await b.apply(batch({ commandUpdates: [commandUpdate(waiting)] }));
    expect((await b.getCommand(1))?.status).toBe('waiting');
    // Only a root with a key.
    await rejectsWith(b.insertKeyedRoot('b', command(3)), ErrorCode.InvalidOptions);
    await rejectsWith(
      b.insertKeyedRoot('b', child(4, command(1), 0, { idempotencyKey: 'k4' })),
      ErrorCode.InvalidOptions,
    );
    // A fenced node stores nothing.
    await expire();
    expect(await b.claimOrphans('b', KNOWN, 10)).toEqual([]);
    await rejectsWith(
      a.insertKeyedRoot('a', command(5, { idempotencyKey: 'k5' })),
      ErrorCode.LeaseLost,
    );
    expect(await b.getCommandByKey('k5')).toBeNull();
  });

  it('close orphans the node’s trees at once and signals the other nodes', async () => {
    const a = env.make();
    const b = env.make();
    await Promise.all([a.open('a'), b.open('b')]);
    await a.apply(batch({ commandInserts: [command(1)] }));
    const bSignals = await signals(b, 'b');
    const orphaned = bSignals.next('orphans');
    await a.close('a');
    await orphaned;
    expect(await b.claimOrphans('b', KNOWN, 10)).toEqual([1]);
  });

  it('strangerTasks: tasks without a row, and ended tasks of finished commands, in one query', async () => {
    const a = env.make();
    await a.open('a');
    const ended = { status: 'succeeded', endedAt: 2 } as const;
    await a.apply(
      batch({
        commandInserts: [
          command(1, { status: 'waiting' }), // running command
          command(2, { ...ended, tasksCleared: true }), // done with
          command(3, { ...ended, tasksCleared: false }), // clears still to be recorded
          command(4, { ...ended, tasksCleared: true }), // its task still being stopped
        ],
        taskInserts: [
          task(1, 0, { status: 'running' }),
          task(2, 0, { status: 'succeeded', endedAt: 2 }),
          task(3, 0, { status: 'succeeded', endedAt: 2 }),
          task(4, 0, { status: 'running', stopRequested: true }),
        ],
      }),
    );
    const keys = [1, 2, 3, 4, 5].map((commandId) => ({ commandId, ordinal: 0 }));
    expect(await a.strangerTasks(keys)).toEqual([
      { commandId: 2, ordinal: 0 },
      { commandId: 5, ordinal: 0 },
    ]);
    expect(await a.strangerTasks([])).toEqual([]);
  });

  it('concurrent claimers never take the same tree', async () => {
    const dead = env.make();
    await dead.open('dead');
    const roots = Array.from({ length: 40 }, (_, i) => command(2 * i + 1));
    await dead.apply(
      batch({
        commandInserts: roots.flatMap((r) => [r, child(r.id + 1, r, 0)]),
        taskInserts: roots.map((r) => task(r.id, 0)),
      }),
    );
    await dead.close('dead');
    const claimers = ['x', 'y', 'z'].map((id) => ({ id, store: env.make() }));
    await Promise.all(claimers.map((c) => c.store.open(c.id)));
    const got = new Map<string, number[]>(claimers.map((c) => [c.id, []]));
    await Promise.all(
      claimers.map(async (c) => {
        for (;;) {
          const ids = await c.store.claimOrphans(c.id, KNOWN, 3);
          if (ids.length === 0) return;
          got.get(c.id)!.push(...ids);
        }
      }),
    );
    const all = [...got.values()].flat().sort((p, q) => p - q);
    expect(all).toEqual(roots.map((r) => r.id));
    for (const c of claimers) {
      const mine = got.get(c.id)!;
      const snap = await c.store.loadActive();
      expect(snap.commands.filter((x) => x.parentId === null).map((x) => x.id)).toEqual(
        [...mine].sort((p, q) => p - q),
      );
      expect(snap.commands).toHaveLength(mine.length * 2);
    }
  });

  it('the claim and the read of foreign tasks go by their indexes on a store never analyzed, at any size (they run every second on every node)', async () => {
    const a = env.make();
    await a.open('a');
    await a.apply(batch({ commandInserts: [command(1, { status: 'waiting' })] }));
    // 60,000 ended commands, loaded as a bulk load or a restore would be: no statistics (the
    // shared test server runs without autovacuum, as some production servers do).
    await raw(
      env.schema,
      'INSERT INTO commands (id, type, params_version, status, root_id, child_mode, failure_policy, ' +
        'compensation, state, created_at, updated_at, ended_at, tasks_cleared, owner, active) ' +
        "SELECT g, 'test.cmd', 1, 'succeeded', g, 'concurrent', 'wait-all', 'none', '[]', 1, 1, 1, " +
        "true, 'a', false FROM generate_series(10, 60009) g",
    );
    await raw(
      env.schema,
      'INSERT INTO tasks (command_id, ordinal, origin, agent_id, verb, status, stop_requested, ' +
        "created_at, ended_at) SELECT g, 0, 0, 'x', 'v', 'cancelled', true, 1, 1 " +
        'FROM generate_series(10, 60009) g',
    );
    const sql = buildSharedSql(env.schema);
    // The plans PostgreSQL ran (the SQL functions' statements included): every read of commands
    // and tasks by an index, no parallel workers, no JIT, a few pages. Under the planner's
    // defaults, and under the thresholds of a store of 10,000,000 scaled to this one (see
    // settingsAt10M), where the statements planned freely turned into parallel, JIT-compiled
    // bitmap scans (~1 s a read at 10,000,000, stop 24).
    const byIndex = async (text: string, values: unknown[]): Promise<void> => {
      for (const settings of [[], settingsAt10M(60_000)]) {
        const plans = await executedPlans(env.schema, text, values, settings);
        const nodes = plans.flatMap((p) => planNodes(p.Plan));
        const big = nodes.filter(
          (n) =>
            (n['Relation Name'] === 'commands' || n['Relation Name'] === 'tasks') &&
            n['Node Type'] !== 'ModifyTable',
        );
        const what = `${text} with ${settings.join(', ') || 'the defaults'}`;
        expect(big.length, what).toBeGreaterThan(0);
        expect(
          big
            .map((n) => `${n['Node Type']} on ${n['Relation Name']}`)
            .filter((x) => !x.startsWith('Index')),
          what,
        ).toEqual([]);
        expect(nodes.filter((n) => n['Node Type'].startsWith('Gather')).length, what).toBe(0);
        expect(plans.filter((p) => p.JIT !== undefined).length, what).toBe(0);
        const buffers = big.reduce(
          (sum, n) => sum + (n['Shared Hit Blocks'] ?? 0) + (n['Shared Read Blocks'] ?? 0),
          0,
        );
        // A few index pages, not the 60,000 rows (their table is ~1,200 pages).
        expect(buffers, what).toBeLessThan(100);
      }
    };
    // The tasks of agent x: 60,000 ended (a stop was requested of each, their commands cleared).
    await byIndex(sql.foreignTasks, ['b', ['x']]);
    const claim = (): Promise<void> => byIndex(sql.claimTrees, ['b', ['test.cmd'], [1], 100]);
    // Nothing to claim.
    await claim();
    // An orphaned tree (its owner fenced): claimed, still by the indexes.
    await raw(env.schema, 'UPDATE coco_nodes SET fenced = true WHERE node_id = $1', ['a']);
    await claim(); // (rolled back)
    const b = env.make();
    await b.open('b');
    expect(await b.claimOrphans('b', KNOWN, 100)).toEqual([1]);
    const [owner] = await raw<{ owner: string }>(
      env.schema,
      'SELECT owner FROM commands WHERE id = 1',
    );
    expect(owner?.owner).toBe('b');
    await claim();
  });

  it('a tree is claimed only by a node that knows every active command’s type and version', async () => {
    const dead = env.make();
    await dead.open('dead');
    const newer = command(1, { status: 'waiting' });
    const older = command(3, { status: 'waiting' });
    await dead.apply(
      batch({
        commandInserts: [
          newer,
          child(2, newer, 0, { paramsVersion: 2 }),
          older,
          // Ended (inactive) commands of a newer version do not hold a tree back.
          endedCommand(4, { parentId: 3, rootId: 3, seq: 0, paramsVersion: 5 }),
          command(5, { type: 'other' }),
        ],
      }),
    );
    await dead.close('dead');
    const b = env.make();
    await b.open('b');
    expect(await b.claimOrphans('b', KNOWN, 10)).toEqual([3]);
    expect(await b.claimOrphans('b', KNOWN, 10)).toEqual([]);
    expect(await b.claimOrphans('b', [{ type: 'test.cmd', version: 2 }], 10)).toEqual([1]);
    expect(await b.claimOrphans('b', [{ type: 'other', version: 1 }], 10)).toEqual([5]);
  });

  it('agent leases: one holder per agent, renewed by it, taken when released, expired or fenced', async () => {
    const a = env.make({ leaseMs: SHORT_LEASE });
    const b = env.make();
    await Promise.all([a.open('a'), b.open('b')]);
    const ids = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'];
    const [ga, gb] = await Promise.all([a.claimAgents('a', ids), b.claimAgents('b', ids)]);
    expect([...ga, ...gb].sort()).toEqual(ids);
    expect(ga.filter((x) => gb.includes(x))).toEqual([]);
    expect(await a.claimAgents('a', ga)).toEqual(ga); // renewed
    expect(await b.claimAgents('b', ga)).toEqual([]); // a holds them
    expect(await b.claimAgents('b', [...gb, ...ga])).toEqual(gb);
    if (ga.length > 0) {
      await a.releaseAgents('a', [ga[0]!]);
      expect(await b.claimAgents('b', [ga[0]!])).toEqual([ga[0]]);
    }
    await a.heartbeat('a');
    await expire(); // a's agent leases expire (its node lease too, but nobody fenced it)
    expect(await b.claimAgents('b', ids)).toEqual(ids);
    // A holder that was fenced loses its leases at once, expired or not.
    const c = env.make();
    await c.open('c');
    expect(await c.claimAgents('c', ['q'])).toEqual(['q']);
    expect(await b.claimAgents('b', ['q'])).toEqual([]);
    await raw(env.schema, "UPDATE coco_nodes SET fenced = true WHERE node_id = 'c'");
    expect(await b.claimAgents('b', ['q'])).toEqual(['q']);
    await b.releaseAgents('b');
    expect(await raw(env.schema, 'SELECT * FROM agent_leases')).toEqual([]);
  });

  it('reports relay: posted for the owner, signalled to it, read, and deleted when the task ends', async () => {
    const a = env.make();
    const b = env.make();
    await Promise.all([a.open('a'), b.open('b')]);
    const running = { status: 'running' as const, agentId: 'x' };
    await a.apply(
      batch({
        commandInserts: [command(1, { status: 'waiting' }), command(2, { status: 'waiting' })],
        taskInserts: [task(1, 0, running), task(1, 1, running), task(2, 0, running), task(2, 1)],
      }),
    );
    expect(await b.claimAgents('b', ['x'])).toEqual(['x']);
    expect(await b.foreignTasks('b', ['x'])).toEqual([
      { commandId: 1, ordinal: 0, agentId: 'x', owner: 'a' },
      { commandId: 1, ordinal: 1, agentId: 'x', owner: 'a' },
      { commandId: 2, ordinal: 0, agentId: 'x', owner: 'a' },
    ]);
    expect(await a.foreignTasks('a', ['x'])).toEqual([]);
    // A task the engine stopped and ended (deadline) in a command that ended but whose clears
    // wait: its owner needs the agent's word, so it is polled too — until the command settles.
    const stopped = { agentId: 'x', stopRequested: true, endedAt: T0 + 1 };
    await a.apply(
      batch({
        commandInserts: [
          command(3, { status: 'failed', endedAt: T0 + 1 }),
          command(4, { status: 'failed', endedAt: T0 + 1 }),
        ],
        taskInserts: [
          task(3, 0, { ...stopped, status: 'failed' }),
          task(3, 1, { ...stopped, status: 'succeeded' }),
          task(4, 0, { ...stopped, status: 'cancelled' }),
        ],
      }),
    );
    expect((await b.foreignTasks('b', ['x'])).slice(3)).toEqual([
      { commandId: 3, ordinal: 0, agentId: 'x', owner: 'a' },
      { commandId: 4, ordinal: 0, agentId: 'x', owner: 'a' },
    ]);
    await a.apply(batch({ commandsSettled: [4] }));
    expect((await b.foreignTasks('b', ['x'])).slice(3)).toEqual([
      { commandId: 3, ordinal: 0, agentId: 'x', owner: 'a' },
    ]);
    const aSignals = await signals(a, 'a');
    const bSignals = await signals(b, 'b');
    const told = aSignals.next('reports');
    const report = (over: Partial<TaskReportRecord>): TaskReportRecord => ({
      commandId: 1,
      ordinal: 0,
      status: 'running',
      result: null,
      error: null,
      progress: null,
      at: T0,
      ...over,
    });
    const r10 = report({ status: 'succeeded', result: { ok: [1] }, progress: 1, at: T0 + 5 });
    const r11 = report({ ordinal: 1, progress: 0.5, at: T0 + 4 });
    const r20 = report({
      commandId: 2,
      status: 'failed',
      error: { code: 'TASK_FAILED', message: 'no', details: { n: 1 } },
      at: T0 + 6,
    });
    await b.postReports([r10, r11, r20]);
    await told;
    expect(await a.takeReports('a', 10)).toEqual([r11, r10, r20]);
    expect(await a.takeReports('a', 1)).toEqual([r11]);
    expect(await b.takeReports('b', 10)).toEqual([]);
    const r11b = { ...r11, status: 'unknown' as const, at: T0 + 7 };
    await b.postReports([r11b]);
    expect(await a.takeReports('a', 10)).toEqual([r10, r20, r11b]);

    // Dropping a report as it was read keeps a newer one of the same task.
    const r11c = { ...r11, status: 'running' as const, at: T0 + 8 };
    await b.postReports([r11c]);
    await a.dropReports([{ commandId: 1, ordinal: 1, at: r11b.at, status: r11b.status }]);
    expect(await a.takeReports('a', 10)).toEqual([r10, r20, r11c]);
    await a.dropReports([{ commandId: 1, ordinal: 1, at: r11c.at, status: r11c.status }]);
    expect(await a.takeReports('a', 10)).toEqual([r10, r20]);
    await b.postReports([r11b]);

    // Ending a task spends its report; settling a command spends all of its reports.
    await a.apply(
      batch({ taskUpdates: [taskUpdate(task(1, 0, { ...running, status: 'succeeded' }))] }),
    );
    await a.dropReports([{ commandId: 1, ordinal: 1 }]);
    expect(await a.takeReports('a', 10)).toEqual([r20]);
    const ended = command(2, { status: 'failed', endedAt: T0 + 9 });
    await a.apply(batch({ commandUpdates: [commandUpdate(ended)], commandsSettled: [2] }));
    expect(await a.takeReports('a', 10)).toEqual([]);
    expect(bSignals.seen).not.toContain('reports');
  });
});
