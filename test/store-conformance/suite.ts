/**
 * The store conformance suite: one set of tests, written only against the store port, that every
 * store (SQLite now, PostgreSQL later) must pass. A store's test file calls
 * {@link describeStoreConformance} with a factory that creates a fresh, empty database.
 *
 * What cannot be done through the port (a second connection, a dead owner, a corrupt row) comes
 * from optional hooks of the {@link StoreHarness}; tests that need a missing hook are skipped with
 * a note naming it.
 *
 * @module
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CocoError, ErrorCode } from '../../src/core/errors.js';
import type { CommandRecord } from '../../src/core/records.js';
import type { Store } from '../../src/store/port.js';
import { isSharedStore } from '../../src/store/shared-port.js';
import { batch, command, endedCommand, task } from './fixtures.js';
import { need, rejectsWith, type StoreHarness, type SuiteEnv } from './harness.js';
import { describeReads } from './suite-reads.js';
import { describeRetention } from './suite-retention.js';
import { describeWrites } from './suite-writes.js';

export type { StoreHarness } from './harness.js';

/**
 * Registers the conformance suite for one store.
 *
 * @param name shown in the test names.
 * @param factory creates a fresh, empty database and its harness; called before every test.
 */
export function describeStoreConformance(name: string, factory: () => Promise<StoreHarness>): void {
  describe(`store conformance: ${name}`, () => {
    let h: StoreHarness;
    let extra: Store[] = [];
    const env: SuiteEnv = {
      get h() {
        return h;
      },
      get store() {
        return h.store;
      },
      async another(ctx) {
        const s = await need(ctx, h.another?.bind(h), 'another')();
        extra.push(s);
        return s;
      },
      stored(record, node = 'node-a') {
        return h.stampsOwner === true ? { ...record, owner: node } : record;
      },
    };

    beforeEach(async () => {
      h = await factory();
      extra = [];
    });
    afterEach(async () => {
      for (const s of extra) await s.close().catch(() => undefined);
      await h.cleanup();
    });

    describe('migrate', () => {
      it('applies every migration once, in order, and is idempotent', async () => {
        const first = await env.store.migrate();
        expect(first.applied.length).toBeGreaterThan(0);
        expect(first.applied).toEqual(first.applied.map((_, i) => i + 1));
        expect(first.current).toBe(first.applied.at(-1));
        const again = await env.store.migrate();
        expect(again).toEqual({ applied: [], current: first.current });
      });

      it('a second store finds the migrations applied', async (ctx) => {
        const first = await env.store.migrate();
        const other = await env.another(ctx);
        expect(await other.migrate()).toEqual({ applied: [], current: first.current });
      });

      it('two stores migrating the same empty database at once both succeed, applying each migration once', async (ctx) => {
        const other = await env.another(ctx);
        const [a, b] = await Promise.all([env.store.migrate(), other.migrate()]);
        expect(a.current).toBe(b.current);
        expect([...a.applied, ...b.applied].sort((x, y) => x - y)).toEqual(
          Array.from({ length: a.current }, (_, i) => i + 1),
        );
        // Both work on the one schema.
        await env.store.apply(batch({ commandInserts: [command(1)] }));
        expect((await other.getCommand(1))?.id).toBe(1);
      });
    });

    describe('open and ownership', () => {
      it('open migrates and returns a stable store id without "-"', async (ctx) => {
        const { storeId } = await env.store.open('node-a');
        expect(storeId).toMatch(/^[A-Za-z0-9_]+$/);
        await env.store.close('node-a');
        const other = await env.another(ctx);
        expect(await other.open('node-a')).toEqual({ storeId });
      });

      it('a second live owner is refused with STORE_IN_USE naming the owner', async (ctx) => {
        ctx.skip(env.h.singleWriter !== true, 'not a single-writer store');
        await env.store.open('node-a');
        const other = await env.another(ctx);
        const error = await rejectsWith(other.open('node-b'), ErrorCode.StoreInUse);
        expect(error.message).toContain('node-a');
        // Still the owner: its heartbeat works.
        await env.store.heartbeat('node-a');
      });

      it('close releases ownership', async (ctx) => {
        await env.store.open('node-a');
        await env.store.close('node-a');
        const other = await env.another(ctx);
        await expect(other.open('node-b')).resolves.toHaveProperty('storeId');
      });

      it('a dead owner is taken over at once', async (ctx) => {
        const simulate = need(ctx, env.h.simulateDeadOwner?.bind(env.h), 'simulateDeadOwner');
        await env.store.migrate();
        await simulate('ghost');
        await expect(env.store.open('node-a')).resolves.toHaveProperty('storeId');
        await env.store.heartbeat('node-a');
      });

      it('an owner that was taken over finds out at its next heartbeat', async (ctx) => {
        const simulate = need(ctx, env.h.simulateDeadOwner?.bind(env.h), 'simulateDeadOwner');
        await env.store.open('node-a');
        await env.store.heartbeat('node-a');
        await simulate('ghost');
        await rejectsWith(
          env.store.heartbeat('node-a'),
          env.h.takenOverCode ?? ErrorCode.StoreInUse,
        );
      });

      it('close is idempotent, and a closed store rejects calls', async () => {
        await env.store.open('node-a');
        await env.store.close('node-a');
        await env.store.close('node-a');
        await expect(env.store.getCommand(1)).rejects.toBeInstanceOf(CocoError);
      });

      it('a close told to stop waiting resolves; a batch in flight lands whole or not at all', async (ctx) => {
        await env.store.open('node-a');
        const kept = command(1, { status: 'waiting' });
        await env.store.apply(batch({ commandInserts: [kept] }));
        // Large enough to be under way when the signal aborts (a SQLite writer thread is then
        // terminated mid-transaction, PostgreSQL connections destroyed mid-batch).
        const late = Array.from({ length: 5_000 }, (_, i) => command(i + 2, { status: 'waiting' }));
        const inFlight = env.store.apply(
          batch({ commandInserts: late, taskInserts: [task(2, 0, { status: 'running' })] }),
        );
        const outcome = inFlight.then(
          () => 'stored',
          (error: unknown) => error,
        );
        await env.store.close('node-a', { signal: AbortSignal.abort() });
        const settled = await outcome;
        if (settled !== 'stored') {
          expect(settled).toBeInstanceOf(CocoError);
          expect((settled as CocoError).code).toBe(ErrorCode.StoreFailed);
        }
        await expect(env.store.getCommand(1)).rejects.toBeInstanceOf(CocoError);

        // Another store opens and writes at once: nothing of the first holds the database.
        const other = await env.another(ctx);
        await other.open('node-b');
        await other.apply(batch({ commandInserts: [command(10_000)] }));
        expect(await other.getCommand(1)).toEqual(env.stored(kept));
        const [first, last] = [await other.getCommand(2), await other.getCommand(5_001)];
        const tasks = await other.getTasks(2);
        if (first === null) expect([last, tasks]).toEqual([null, []]);
        else expect([last?.id, tasks.length]).toEqual([5_001, 1]);
      });
    });

    describe('reserveIds', () => {
      it('hands out consecutive blocks from 1, never twice', async () => {
        await env.store.open('node-a');
        expect(await env.store.reserveIds(1)).toBe(1);
        expect(await env.store.reserveIds(10)).toBe(2);
        expect(await env.store.reserveIds(3)).toBe(12);
      });

      it('blocks are disjoint and increasing (property)', async () => {
        await env.store.open('node-a');
        let next = 1;
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 20 }),
            async (counts) => {
              for (const count of counts) {
                const first = await env.store.reserveIds(count);
                expect(first).toBeGreaterThanOrEqual(next);
                next = first + count;
              }
            },
          ),
          { numRuns: 30 },
        );
      });

      it('refuses a count that is not a positive integer', async () => {
        await env.store.open('node-a');
        for (const count of [0, -1, 1.5])
          await expect(env.store.reserveIds(count)).rejects.toBeInstanceOf(CocoError);
      });

      it('never reuses a committed id after a reopen', async (ctx) => {
        await env.store.open('node-a');
        const first = await env.store.reserveIds(5);
        const ids = [first, first + 4];
        await env.store.apply(batch({ commandInserts: ids.map((id) => endedCommand(id)) }));
        await env.store.close('node-a');
        const other = await env.another(ctx);
        await other.open('node-a');
        expect(await other.reserveIds(1)).toBeGreaterThan(first + 4);
      });
    });

    describeWrites(env);
    describeReads(env);
    describeRetention(env);

    describe('paused types', () => {
      it('a pause is kept until a resume, the first one when paused twice, across a reopen', async (ctx) => {
        const store = env.store;
        await store.open('node-a');
        expect(await store.pausedTypes()).toEqual([]);
        const first = {
          type: 'vm.migrate',
          pausedAt: 1_000,
          by: 'ops',
          reason: 'storage “maint” 🛠',
        };
        expect(await store.pauseType(first)).toEqual(first);
        // Paused again: the first pause stays in force.
        expect(
          await store.pauseType({ ...first, pausedAt: 2_000, by: null, reason: null }),
        ).toEqual(first);
        const bare = { type: 'disk.copy', pausedAt: 3_000, by: null, reason: null };
        expect(await store.pauseType(bare)).toEqual(bare);
        expect(await store.pausedTypes()).toEqual([bare, first]);
        // The pauses outlive the store's close: the next node to open it finds them.
        await store.close('node-a');
        const other = await env.another(ctx);
        await other.open('node-b');
        expect(await other.pausedTypes()).toEqual([bare, first]);
        // A resume ends the pause, once; a type never paused has none to end.
        expect(await other.resumeType('vm.migrate')).toEqual(first);
        expect(await other.resumeType('vm.migrate')).toBeNull();
        expect(await other.resumeType('never.paused')).toBeNull();
        expect(await other.pausedTypes()).toEqual([bare]);
      });
    });

    describe('durability', () => {
      it('after close and reopen everything applied is there', async (ctx) => {
        await env.store.open('node-a');
        const c = command(1, { status: 'waiting', data: { step: 1 } });
        const t = task(1, 0, { status: 'running' });
        await env.store.apply(
          batch({
            commandInserts: [c, endedCommand(2, { idempotencyKey: 'k2' })],
            taskInserts: [t],
            entityWrites: [{ kind: 'vol', id: 'v1', value: { size: 3 }, commandId: 1, at: 5 }],
          }),
        );
        const before = await env.store.loadActive();
        await env.store.close('node-a');
        const other = await env.another(ctx);
        await other.open('node-b');
        // A shared store's node-b resumes node-a's trees once it has claimed them.
        if (isSharedStore(other)) {
          expect(
            await other.claimOrphans('node-b', [{ type: 'test.cmd', version: 1 }], 10),
          ).toEqual([1]);
        }
        const restamp = (r: CommandRecord): CommandRecord => env.stored(r, 'node-b');
        expect(await other.loadActive()).toEqual({
          ...before,
          commands: before.commands.map(restamp),
          endedChildren: before.endedChildren.map(restamp),
        });
        expect(await other.getCommand(1)).toEqual(env.stored(c, 'node-b'));
        expect((await other.getCommandByKey('k2'))?.id).toBe(2);
        expect(await other.getTasks(1)).toEqual([t]);
        expect(await other.getEntity('vol', 'v1')).toEqual({
          kind: 'vol',
          id: 'v1',
          value: { size: 3 },
          commandId: 1,
          updatedAt: 5,
        });
      });
    });
  });
}
