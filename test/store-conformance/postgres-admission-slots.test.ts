/**
 * Admission across nodes in the PostgreSQL store (admission-slots.ts, migration 0011): only the
 * agent's lease holder grants; grants follow the order (priority with ageing, then creation)
 * across every node's queued tasks, within the agent and per-verb limits counted from the slot
 * rows; owners are signalled and take their grants; released slots signal the holder; slots of
 * commands gone or inactive are dropped; orphans' tasks wait for their tree's next owner.
 */
import { afterAll, afterEach, beforeEach, expect, it } from 'vitest';
import type { StoreSignal } from '../../src/store/shared-port.js';
import type { PostgresStore } from '../../src/store/postgres/pg-store.js';
import { describePg } from '../support/pg.js';
import { T0, batch, command, commandUpdate, endedCommand, task, taskUpdate } from './fixtures.js';
import { endAdmin, raw, schemaStores } from './pg-harness.js';

/** Records the signals of a node; `next` resolves at the next one of a kind. */
async function signals(
  store: PostgresStore,
  nodeId: string,
): Promise<{ next(signal: StoreSignal): Promise<void> }> {
  const waiters: { signal: StoreSignal; resolve(): void }[] = [];
  await store.listen(nodeId, (s) => {
    for (const w of waiters.filter((x) => x.signal === s)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  return { next: (signal) => new Promise((resolve) => waiters.push({ signal, resolve })) };
}

const LIMITS = { maxRunning: 2, byVerb: { copy: 1 }, ageStepMs: 60_000 };
const key = (commandId: number, ordinal = 0) => ({ commandId, ordinal });

afterAll(endAdmin);

describePg('postgres admission slots', () => {
  let env: ReturnType<typeof schemaStores>;
  beforeEach(() => {
    env = schemaStores('coco_slots');
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it('the holder grants by order within the limits, owners take grants, releases free slots', async () => {
    const a = env.make();
    const b = env.make();
    await Promise.all([a.open('a'), b.open('b')]);
    const queued = (createdAt: number, verb = 'copy') =>
      ({ status: 'queued', agentId: 'x', verb, createdAt }) as const;
    await a.apply(
      batch({
        commandInserts: [
          command(1, { status: 'waiting' }),
          command(2, { status: 'waiting', priority: 1 }),
          command(3, { status: 'waiting' }),
          command(4, { status: 'waiting' }),
          command(5, { status: 'waiting' }),
        ],
        taskInserts: [
          task(1, 0, queued(T0 + 10)),
          task(2, 0, queued(T0 + 20)), // priority 1: ranks a minute earlier
          task(3, 0, queued(T0 + 5, 'snap')),
          task(4, 0, queued(T0 + 30)),
          task(5, 0, { status: 'running', agentId: 'x', verb: 'copy' }),
        ],
      }),
    );
    await b.apply(
      batch({
        commandInserts: [command(10, { status: 'waiting' })],
        taskInserts: [task(10, 0, queued(T0 + 1))],
      }),
    );
    const aSignals = await signals(a, 'a');
    const bSignals = await signals(b, 'b');

    // Positions, cluster-wide, in the order of the grants: 2, 10, 3, 1, 4.
    expect(await b.queueAhead([key(1), key(10), key(5)], LIMITS.ageStepMs)).toEqual([
      { ...key(1), agentId: 'x', verb: 'copy', ahead: 3, held: 0, verbHeld: 0 },
      { ...key(10), agentId: 'x', verb: 'copy', ahead: 1, held: 0, verbHeld: 0 },
    ]);

    // Nobody holds x's lease: nobody admits.
    expect(await a.admitQueued('a', 'x', LIMITS)).toBeNull();
    expect(await b.claimAgents('b', ['x'])).toEqual(['x']);
    expect(await a.admitQueued('a', 'x', LIMITS)).toBeNull();

    // Order: 2 (priority), 10 (b's, oldest), 3, 1, 4 — copy at most 1, x at most 2.
    const signalled = aSignals.next('admissions');
    expect(await b.admitQueued('b', 'x', LIMITS)).toEqual([
      { ...key(2), owner: 'a' },
      { ...key(3), owner: 'a' },
    ]);
    await signalled;
    expect(await b.admitQueued('b', 'x', LIMITS)).toEqual([]); // full
    expect(await a.takeGrants('a', 10)).toEqual([key(2), key(3)]);
    expect(await b.takeGrants('b', 10)).toEqual([]);
    // Granted tasks are no longer queued ahead, and hold their slots.
    expect(await a.queueAhead([key(1), key(2)], LIMITS.ageStepMs)).toEqual([
      { ...key(1), agentId: 'x', verb: 'copy', ahead: 1, held: 2, verbHeld: 1 },
    ]);
    // Once a grant is taken (the task is created), it is no longer handed out.
    await a.apply(
      batch({ taskUpdates: [taskUpdate(task(2, 0, { ...queued(T0 + 20), status: 'created' }))] }),
    );
    expect(await a.takeGrants('a', 10)).toEqual([key(3)]);

    // A release frees a slot and signals the holder; b's own task comes next.
    const released = bSignals.next('admissions');
    await a.releaseSlots([key(2)]);
    await released;
    expect(await b.admitQueued('b', 'x', LIMITS)).toEqual([{ ...key(10), owner: 'b' }]);

    // A task holding a slot without a grant (loaded after a restart) counts once recorded.
    // 3 is cancelled while granted: its owner gives the slot back once that is stored.
    await a.apply(
      batch({
        taskUpdates: [
          taskUpdate(task(3, 0, { ...queued(T0 + 5), status: 'cancelled', endedAt: T0 + 6 })),
        ],
      }),
    );
    await a.releaseSlots([key(3)]);
    await a.holdSlots([{ ...key(5), agentId: 'x', verb: 'copy' }]);
    await a.holdSlots([{ ...key(5), agentId: 'x', verb: 'copy' }]); // idempotent
    // 10 and 5 hold x's two slots.
    expect(await b.admitQueued('b', 'x', { ...LIMITS, byVerb: {} })).toEqual([]);
    // A slot of an inactive command (ended, tasks cleared) holds nothing.
    await b.apply(
      batch({
        commandUpdates: [commandUpdate(endedCommand(10))],
        taskUpdates: [
          taskUpdate(task(10, 0, { ...queued(T0 + 1), status: 'succeeded', endedAt: T0 + 2 })),
        ],
      }),
    );
    expect(await b.admitQueued('b', 'x', { ...LIMITS, byVerb: {} })).toEqual([
      { ...key(1), owner: 'a' },
    ]);
    expect(
      (await raw(env.schema, 'SELECT command_id FROM admission_slots ORDER BY command_id')).map(
        (r) => Number(r.command_id),
      ),
    ).toEqual([1, 5]);

    // A verb at its limit holds nobody back: with copy full, a snapshot queued behind many
    // copies is read and granted.
    await a.apply(
      batch({
        commandInserts: Array.from({ length: 211 }, (_, i) =>
          command(100 + i, { status: 'waiting' }),
        ),
        taskInserts: [
          ...Array.from({ length: 210 }, (_, i) => task(100 + i, 0, queued(T0 + 100 + i))),
          task(310, 0, queued(T0 + 400, 'snap')),
        ],
      }),
    );
    await a.releaseSlots([key(5)]);
    expect(
      await b.admitQueued('b', 'x', { maxRunning: 5, byVerb: { copy: 1 }, ageStepMs: 1 }),
    ).toEqual([{ ...key(310), owner: 'a' }]);

    // queueChanged signals the holder.
    const told = bSignals.next('admissions');
    await a.queueChanged(['x']);
    await told;
  });

  it('an orphan’s queued task waits for its next owner', async () => {
    const a = env.make();
    const b = env.make();
    await Promise.all([a.open('a'), b.open('b')]);
    await a.apply(
      batch({
        commandInserts: [command(1, { status: 'waiting' })],
        taskInserts: [task(1, 0, { status: 'queued', agentId: 'x', verb: 'copy' })],
      }),
    );
    expect(await b.claimAgents('b', ['x'])).toEqual(['x']);
    await raw(env.schema, "UPDATE coco_nodes SET fenced = true WHERE node_id = 'a'");
    expect(await b.admitQueued('b', 'x', LIMITS)).toEqual([]);
    expect(await b.claimOrphans('b', [{ type: 'test.cmd', version: 1 }], 10)).toEqual([1]);
    expect(await b.admitQueued('b', 'x', LIMITS)).toEqual([{ ...key(1), owner: 'b' }]);
  });
});
