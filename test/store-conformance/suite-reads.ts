/**
 * Conformance tests of the reads: `loadActive` (the active set, corrupt rows), `listCommands`
 * and entities.
 *
 * @module
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/core/errors.js';
import type { CommandPage } from '../../src/store/port.js';
import { T0, batch, child, command, commandUpdate, endedCommand, task, undo } from './fixtures.js';
import { need, rejectsWith, type SuiteEnv } from './harness.js';

const byId = (a: { id: number }, b: { id: number }): number => a.id - b.id;
const byTask = (
  a: { commandId: number; ordinal: number },
  b: { commandId: number; ordinal: number },
): number => a.commandId - b.commandId || a.ordinal - b.ordinal;

/** Registers the read tests. */
export function describeReads(env: SuiteEnv): void {
  describe('loadActive', () => {
    beforeEach(async () => {
      await env.store.open('node-a');
    });

    it('is empty on an empty store', async () => {
      expect(await env.store.loadActive()).toEqual({
        commands: [],
        tasks: [],
        undo: [],
        endedChildren: [],
        corrupt: [],
      });
    });

    it('returns exactly the active commands, their tasks and undo steps, and their ended children', async () => {
      const pending = command(1);
      const done = endedCommand(2);
      const failedUncleared = endedCommand(3, { status: 'failed', tasksCleared: false });
      const compensating = endedCommand(4, { compensation: 'compensating' });
      const compensated = endedCommand(5, { status: 'cancelled', compensation: 'compensated' });
      const parent = command(6, { status: 'waiting' });
      const endedKid = endedCommand(7, { parentId: 6, rootId: 6, seq: 0 });
      const liveKid = child(8, parent, 1);
      const unclearedKid = endedCommand(9, {
        parentId: 6,
        rootId: 6,
        seq: 2,
        status: 'failed',
        tasksCleared: false,
      });
      const kidOfEnded = endedCommand(10, { parentId: 2, rootId: 2, seq: 0 });
      const grandKid = endedCommand(11, { parentId: 8, rootId: 6, seq: 0 });
      const tasks = [
        task(1, 0),
        task(1, 1),
        task(2, 0, { status: 'succeeded' }),
        task(3, 0, { status: 'failed' }),
        task(6, 0),
        task(7, 0),
      ];
      const undos = [undo(4, 0), undo(4, 1), undo(2, 0), undo(8, 0)];
      await env.store.apply(
        batch({
          commandInserts: [
            pending,
            done,
            failedUncleared,
            compensating,
            compensated,
            parent,
            endedKid,
            liveKid,
            unclearedKid,
            kidOfEnded,
            grandKid,
          ],
          taskInserts: tasks,
          undoInserts: undos,
        }),
      );
      const snap = await env.store.loadActive();
      const active = [pending, failedUncleared, compensating, parent, liveKid, unclearedKid];
      const activeIds = new Set(active.map((c) => c.id));
      expect([...snap.commands].sort(byId)).toEqual(active.map((c) => env.stored(c)));
      expect([...snap.tasks].sort(byTask)).toEqual(tasks.filter((t) => activeIds.has(t.commandId)));
      expect([...snap.undo].sort(byTask)).toEqual(undos.filter((u) => activeIds.has(u.commandId)));
      expect([...snap.endedChildren].sort(byId)).toEqual(
        [endedKid, grandKid].map((c) => env.stored(c)),
      );
      expect(snap.corrupt).toEqual([]);
    });

    it('follows updates into and out of the active set', async () => {
      const c = command(1);
      await env.store.apply(batch({ commandInserts: [c] }));
      const ids = async (): Promise<number[]> =>
        (await env.store.loadActive()).commands.map((x) => x.id);
      expect(await ids()).toEqual([1]);
      const ended = { ...c, status: 'succeeded' as const, endedAt: T0 + 1 };
      await env.store.apply(batch({ commandUpdates: [commandUpdate(ended)] }));
      expect(await ids()).toEqual([1]); // tasks not cleared yet
      const cleared = { ...ended, tasksCleared: true };
      await env.store.apply(batch({ commandUpdates: [commandUpdate(cleared)] }));
      expect(await ids()).toEqual([]);
      const compensating = { ...cleared, compensation: 'compensating' as const };
      await env.store.apply(batch({ commandUpdates: [commandUpdate(compensating)] }));
      expect((await env.store.loadActive()).commands).toEqual([env.stored(compensating)]);
      await env.store.apply(
        batch({
          commandUpdates: [commandUpdate({ ...compensating, compensation: 'compensated' })],
        }),
      );
      expect(await ids()).toEqual([]);
    });

    it('a settled command (narrow write) leaves the active set with only tasksCleared changed', async () => {
      const c = command(1);
      await env.store.apply(batch({ commandInserts: [c] }));
      const ended = { ...c, status: 'failed' as const, endedAt: T0 + 1, result: { r: 1 } };
      await env.store.apply(batch({ commandUpdates: [commandUpdate(ended)] }));
      await env.store.apply(batch({ commandsSettled: [1] }));
      expect((await env.store.loadActive()).commands).toEqual([]);
      expect(await env.store.getCommand(1)).toEqual(env.stored({ ...ended, tasksCleared: true }));
      await expect(env.store.apply(batch({ commandsSettled: [99] }))).rejects.toMatchObject({
        code: 'BATCH_REFUSED',
      });
    });

    it('reports corrupt command rows without hiding the others', async (ctx) => {
      const corrupt = need(ctx, env.h.corruptCommandRow?.bind(env.h), 'corruptCommandRow');
      const parent = command(1, { status: 'waiting' });
      await env.store.apply(
        batch({
          commandInserts: [
            parent,
            command(2),
            command(3),
            endedCommand(4, { parentId: 1, rootId: 1, seq: 0 }),
            endedCommand(5, { parentId: 1, rootId: 1, seq: 1 }),
          ],
          taskInserts: [task(2, 0), task(3, 0)],
        }),
      );
      await corrupt(2, 'json');
      await corrupt(3, 'status');
      await corrupt(5, 'json');
      const snap = await env.store.loadActive();
      expect(snap.commands.map((c) => c.id).sort()).toEqual([1]);
      expect(snap.endedChildren.map((c) => c.id)).toEqual([4]);
      // Tasks of unreadable commands are left out; the command is reported.
      expect(snap.tasks).toEqual([]);
      // Each names its row, and a command row its parent (a command missing a child is not whole).
      expect([...snap.corrupt].sort((a, b) => (a.commandId ?? 0) - (b.commandId ?? 0))).toEqual(
        [2, 3, 5].map((id) => ({
          table: 'commands',
          commandId: id,
          parentId: id === 5 ? 1 : null,
          error: expect.objectContaining({ code: ErrorCode.CorruptRow }) as unknown,
        })),
      );
      const error = await rejectsWith(env.store.getCommand(2), ErrorCode.CorruptRow);
      expect(error.message).toMatch(/commands/);
      expect(error.message).toMatch(/\b2\b/);
      expect((await env.store.getCommand(1))?.id).toBe(1);
    });

    it('reports corrupt task rows without hiding the others', async (ctx) => {
      const corrupt = need(ctx, env.h.corruptTaskRow?.bind(env.h), 'corruptTaskRow');
      await env.store.apply(
        batch({ commandInserts: [command(1)], taskInserts: [task(1, 0), task(1, 1), task(1, 2)] }),
      );
      await corrupt(1, 1, 'json');
      await corrupt(1, 2, 'status');
      const snap = await env.store.loadActive();
      expect(snap.commands.map((c) => c.id)).toEqual([1]);
      expect(snap.tasks).toEqual([task(1, 0)]);
      expect(snap.corrupt).toHaveLength(2);
      for (const row of snap.corrupt) {
        expect(row).toMatchObject({
          table: 'tasks',
          commandId: 1,
          parentId: null,
          error: { code: ErrorCode.CorruptRow },
        });
      }
      const error = await rejectsWith(env.store.getTasks(1), ErrorCode.CorruptRow);
      expect(error.message).toMatch(/tasks/);
    });
  });

  describe('listCommands', () => {
    // Roots 1..4; 5, 6 children of 1; 7 grandchild (child of 5); 8 child of 2.
    const roots = [
      command(1, { type: 'a', status: 'waiting' }),
      endedCommand(2, { type: 'b' }),
      command(3, { type: 'a', status: 'failed', endedAt: T0, tasksCleared: true }),
      command(4, { type: 'b' }),
    ];
    const kids = [
      child(5, roots[0]!, 0, { type: 'a' }),
      child(6, roots[0]!, 1, { type: 'b', status: 'succeeded', endedAt: T0 }),
      command(7, { parentId: 5, rootId: 1, seq: 0, type: 'a' }),
      child(8, roots[1]!, 0, { type: 'a', status: 'succeeded', endedAt: T0, tasksCleared: true }),
    ];
    const ids = (page: CommandPage): number[] => page.commands.map((c) => c.id);

    beforeEach(async () => {
      await env.store.open('node-a');
      await env.store.apply(batch({ commandInserts: [...roots, ...kids] }));
    });

    it('lists newest first, whole records', async () => {
      const all = await env.store.listCommands();
      expect(ids(all)).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
      expect(all.commands.at(-1)).toEqual(env.stored(roots[0]!));
      expect(all.unreadable).toEqual([]);
      expect(all.nextBeforeId).toBeNull();
    });

    it('filters by status, type, parent, root and roots only, combined with AND', async () => {
      expect(ids(await env.store.listCommands({ status: ['succeeded'] }))).toEqual([8, 6, 2]);
      expect(ids(await env.store.listCommands({ status: ['failed', 'waiting'] }))).toEqual([3, 1]);
      expect(ids(await env.store.listCommands({ status: [] }))).toEqual([]);
      expect(ids(await env.store.listCommands({ type: 'a' }))).toEqual([8, 7, 5, 3, 1]);
      expect(ids(await env.store.listCommands({ parentId: 1 }))).toEqual([6, 5]);
      expect(ids(await env.store.listCommands({ parentId: 4 }))).toEqual([]);
      expect(ids(await env.store.listCommands({ rootId: 1 }))).toEqual([7, 6, 5, 1]);
      expect(ids(await env.store.listCommands({ rootId: 2 }))).toEqual([8, 2]);
      expect(ids(await env.store.listCommands({ rootId: 5 }))).toEqual([]);
      expect(ids(await env.store.listCommands({ rootsOnly: true }))).toEqual([4, 3, 2, 1]);
      expect(ids(await env.store.listCommands({ rootsOnly: true, type: 'b' }))).toEqual([4, 2]);
      expect(
        ids(await env.store.listCommands({ rootId: 1, type: 'a', status: ['pending'] })),
      ).toEqual([7, 5]);
      expect(ids(await env.store.listCommands({ type: 'zzz' }))).toEqual([]);
    });

    it('pages by beforeId and limit', async () => {
      expect(ids(await env.store.listCommands({ limit: 3 }))).toEqual([8, 7, 6]);
      expect(ids(await env.store.listCommands({ limit: 3, beforeId: 6 }))).toEqual([5, 4, 3]);
      expect(ids(await env.store.listCommands({ beforeId: 1 }))).toEqual([]);
      expect(ids(await env.store.listCommands({ type: 'a', beforeId: 7, limit: 2 }))).toEqual([
        5, 3,
      ]);
      const seen: number[] = [];
      let beforeId: number | undefined;
      for (;;) {
        const page = await env.store.listCommands({
          limit: 3,
          ...(beforeId === undefined ? {} : { beforeId }),
        });
        seen.push(...ids(page));
        if (page.nextBeforeId === null) break;
        expect(page.nextBeforeId).toBe(page.commands.at(-1)!.id);
        beforeId = page.nextBeforeId;
      }
      expect(seen).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    });

    it('returns 100 by default and at most 1000', async () => {
      const many = Array.from({ length: 1_100 }, (_, i) => endedCommand(100 + i));
      await env.store.apply(batch({ commandInserts: many }));
      expect((await env.store.listCommands()).commands).toHaveLength(100);
      const capped = await env.store.listCommands({ limit: 5_000 });
      expect(capped.commands).toHaveLength(1_000);
      expect(capped.nextBeforeId).toBe(capped.commands.at(-1)!.id);
      await expect(env.store.listCommands({ limit: 0 })).rejects.toThrow();
    });

    it('reports rows it cannot read beside the others, and pages past them', async (ctx) => {
      const corrupt = need(ctx, env.h.corruptCommandRow?.bind(env.h), 'corruptCommandRow');
      await corrupt(6, 'json');
      await corrupt(3, 'status');
      const all = await env.store.listCommands();
      expect(ids(all)).toEqual([8, 7, 5, 4, 2, 1]);
      expect(all.unreadable).toEqual([
        {
          table: 'commands',
          commandId: 6,
          parentId: 1,
          error: expect.objectContaining({
            code: ErrorCode.CorruptRow,
            message: expect.stringMatching(/commands row 6 .*params/) as unknown,
          }) as unknown,
        },
        {
          table: 'commands',
          commandId: 3,
          parentId: null,
          error: expect.objectContaining({
            code: ErrorCode.CorruptRow,
            message: expect.stringMatching(/commands row 3 .*status/) as unknown,
          }) as unknown,
        },
      ]);
      // A page of three rows holding an unreadable one still leads to the next page.
      const first = await env.store.listCommands({ limit: 3 });
      expect(ids(first)).toEqual([8, 7]);
      expect(first.unreadable.map((r) => r.commandId)).toEqual([6]);
      expect(first.nextBeforeId).toBe(6);
      const second = await env.store.listCommands({ limit: 3, beforeId: 6 });
      expect(ids(second)).toEqual([5, 4]);
      expect(second.nextBeforeId).toBe(3);
      const last = await env.store.listCommands({ limit: 3, beforeId: 3 });
      expect(ids(last)).toEqual([2, 1]);
      expect(last.nextBeforeId).toBeNull();
      // The filters still apply; a row read alone still throws, naming itself.
      expect(ids(await env.store.listCommands({ parentId: 1 }))).toEqual([5]);
      expect((await env.store.listCommands({ parentId: 1 })).unreadable).toHaveLength(1);
      await rejectsWith(env.store.getCommand(6), ErrorCode.CorruptRow);
    });
  });

  describe('agents', () => {
    beforeEach(async () => {
      await env.store.open('node-a');
    });

    it('saves, replaces and lists agents by id', async () => {
      expect(await env.store.listAgents()).toEqual([]);
      const b = {
        id: 'b',
        address: 'http://10.0.0.2:7391',
        state: 'up' as const,
        bootId: 'boot-1',
        lastSeenAt: 5,
        lastError: null,
        updatedAt: 5,
      };
      const a = {
        id: 'a',
        address: null,
        state: 'down' as const,
        bootId: null,
        lastSeenAt: null,
        lastError: { code: 'AGENT_UNAVAILABLE', message: 'refused', details: { n: 1 } },
        updatedAt: 6,
      };
      await env.store.saveAgent(b);
      await env.store.saveAgent(a);
      expect(await env.store.listAgents()).toEqual([a, b]);
      const restarted = { ...b, bootId: 'boot-2', lastSeenAt: 9, updatedAt: 9 };
      await env.store.saveAgent(restarted);
      expect(await env.store.listAgents()).toEqual([a, restarted]);
      // Deleted (an agent taken out of service): gone from the list; whether there was one.
      expect(await env.store.deleteAgent('a')).toBe(true);
      expect(await env.store.deleteAgent('a')).toBe(false);
      expect(await env.store.deleteAgent('never')).toBe(false);
      expect(await env.store.listAgents()).toEqual([restarted]);
      // Saved again, it is back.
      await env.store.saveAgent(a);
      expect(await env.store.listAgents()).toEqual([a, restarted]);
    });

    it('saves many agents in one call, the last record of an id winning, all or none', async () => {
      const agent = (i: number, state: 'up' | 'down', at: number) => ({
        id: `agent-${String(i).padStart(4, '0')}`,
        address: `http://10.0.0.${i % 250}:7391`,
        state,
        bootId: state === 'up' ? `boot-${i}` : null,
        lastSeenAt: state === 'up' ? at : null,
        lastError:
          state === 'down'
            ? { code: 'AGENT_UNAVAILABLE', message: 'refused', details: { i } }
            : null,
        updatedAt: at,
      });
      await env.store.saveAgents([]);
      expect(await env.store.listAgents()).toEqual([]);
      const up = Array.from({ length: 1_000 }, (_, i) => agent(i, 'up', 10));
      // Agent 5 goes down later in the same call: its last record wins.
      await env.store.saveAgents([...up, agent(5, 'down', 11)]);
      let rows = await env.store.listAgents();
      expect(rows).toHaveLength(1_000);
      expect(rows[5]).toEqual(agent(5, 'down', 11));
      expect(rows[6]).toEqual(agent(6, 'up', 10));

      // Replaces existing rows and adds new ones.
      await env.store.saveAgents([agent(6, 'down', 12), agent(1_000, 'up', 12)]);
      rows = await env.store.listAgents();
      expect(rows).toHaveLength(1_001);
      expect(rows[6]).toEqual(agent(6, 'down', 12));
      expect(rows[1_000]).toEqual(agent(1_000, 'up', 12));

      // A row the store refuses (a state outside up/down) fails the whole call: none is saved.
      const bad = { ...agent(1_001, 'up', 13), state: 'sideways' as 'up' };
      await rejectsWith(env.store.saveAgents([agent(7, 'down', 13), bad]), ErrorCode.StoreFailed);
      rows = await env.store.listAgents();
      expect(rows).toHaveLength(1_001);
      expect(rows[7]).toEqual(agent(7, 'up', 10));
    });
  });

  describe('entities', () => {
    beforeEach(async () => {
      await env.store.open('node-a');
    });

    it('puts, overwrites and deletes', async () => {
      expect(await env.store.getEntity('vol', 'v1')).toBeNull();
      const value = { size: 10, tags: ['a', 'b'], meta: { ok: true, none: null } };
      await env.store.apply(
        batch({ entityWrites: [{ kind: 'vol', id: 'v1', value, commandId: 3, at: 100 }] }),
      );
      expect(await env.store.getEntity('vol', 'v1')).toEqual({
        kind: 'vol',
        id: 'v1',
        value,
        commandId: 3,
        updatedAt: 100,
      });
      await env.store.apply(
        batch({
          entityWrites: [{ kind: 'vol', id: 'v1', value: [1, 'x'], commandId: 4, at: 200 }],
        }),
      );
      expect(await env.store.getEntity('vol', 'v1')).toEqual({
        kind: 'vol',
        id: 'v1',
        value: [1, 'x'],
        commandId: 4,
        updatedAt: 200,
      });
      await env.store.apply(
        batch({ entityWrites: [{ kind: 'vol', id: 'v1', value: null, commandId: 5, at: 300 }] }),
      );
      expect(await env.store.getEntity('vol', 'v1')).toBeNull();
      // Deleting what does not exist is not an error.
      await env.store.apply(
        batch({ entityWrites: [{ kind: 'vol', id: 'v1', value: null, commandId: 5, at: 300 }] }),
      );
    });

    it('keys by kind and id, and keeps scalar values', async () => {
      const writes = [
        { kind: 'a', id: 'x', value: 'text', commandId: 1, at: 1 },
        { kind: 'b', id: 'x', value: 0, commandId: 1, at: 1 },
        { kind: 'a', id: 'y', value: false, commandId: 1, at: 1 },
      ];
      await env.store.apply(batch({ entityWrites: writes }));
      for (const w of writes)
        expect((await env.store.getEntity(w.kind, w.id))?.value).toBe(w.value);
    });
  });
}
