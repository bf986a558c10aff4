/**
 * Conformance tests of `apply`: exact round trips, which fields updates change, atomicity, and
 * the status machines enforced by the store.
 *
 * @module
 */
import { beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ErrorCode } from '../../src/core/errors.js';
import {
  COMMAND_STATUSES,
  COMPENSATION_STATUSES,
  TASK_STATUSES,
  UNDO_STATUSES,
  canTransition,
} from '../../src/core/states.js';
import type { CommandRecord, TaskRecord } from '../../src/core/records.js';
import type { CommandUpdate } from '../../src/store/port.js';
import {
  T0,
  batch,
  child,
  command,
  commandUpdate,
  endedCommand,
  fullCommand,
  task,
  taskUpdate,
  undo,
  undoUpdate,
} from './fixtures.js';
import { rejectsWith, type SuiteEnv } from './harness.js';

/** Registers the write tests. */
export function describeWrites(env: SuiteEnv): void {
  describe('apply', () => {
    beforeEach(async () => {
      await env.store.open('node-a');
    });

    it('round-trips every field of every record type exactly', async () => {
      const root = command(1);
      const full = fullCommand(2, 1, 1);
      const fullTask = task(2, 1, {
        origin: -2,
        args: { list: [1, { x: null }], s: 'ü' },
        status: 'failed',
        result: { partial: [true, false] },
        error: { code: 'TASK_FAILED', message: 'no space', details: { free: 0, path: '/x' } },
        deadlineAt: T0 + 100,
        stopRequested: true,
        endedAt: T0 + 50,
      });
      const bareTask = task(2, 0, { args: null });
      const fullUndo = undo(2, 1, {
        seq: 9,
        stage: 3,
        name: 'detach',
        data: [1, 'a', { b: null }],
        status: 'failed',
        error: { code: 'X', message: 'y', details: [1] },
      });
      const bareUndo = undo(2, 0, { data: null });
      await env.store.apply(
        batch({
          // Inserted out of order: reads return tasks and undo steps by ordinal.
          commandInserts: [full, root],
          taskInserts: [fullTask, bareTask],
          undoInserts: [fullUndo, bareUndo],
        }),
      );
      expect(await env.store.getCommand(1)).toEqual(env.stored(root));
      expect(await env.store.getCommand(2)).toEqual(env.stored(full));
      expect(await env.store.getCommandByKey('key-2')).toEqual(env.stored(full));
      expect(await env.store.getCommand(3)).toBeNull();
      expect(await env.store.getCommandByKey('nope')).toBeNull();
      expect(await env.store.getTasks(2)).toEqual([bareTask, fullTask]);
      expect(await env.store.getUndo(2)).toEqual([bareUndo, fullUndo]);
      expect(await env.store.getTasks(1)).toEqual([]);
      expect(await env.store.getUndo(1)).toEqual([]);
    });

    it('accepts an empty batch', async () => {
      await env.store.apply(batch({}));
      expect((await env.store.listCommands()).commands).toEqual([]);
    });

    it('round-trips JSON edge values', async () => {
      const values: unknown[] = [
        'null',
        '',
        0,
        -0.5,
        false,
        true,
        [],
        {},
        [[[]]],
        { a: { b: { c: ['d'] } } },
        'line\nbreak\u0000nul',
        1e21,
      ];
      await env.store.apply(
        batch({
          commandInserts: values.map((v, i) => command(i + 1, { params: v, result: v, data: v })),
        }),
      );
      for (const [i, v] of values.entries()) {
        const got = await env.store.getCommand(i + 1);
        expect([got?.params, got?.result, got?.data]).toEqual([v, v, v]);
      }
    });

    it('round-trips odd text in plain text columns', async () => {
      const odd = [
        'quote " and \\ backslash',
        '{"json":"text"}',
        '{a,b} "NULL" NULL',
        'comma, brace } bracket ]',
        'emoji \ud83d\ude00 and \u2028 separator',
        'tab\tnew\nline',
        '',
      ];
      await env.store.apply(
        batch({
          commandInserts: odd.map((text, i) => command(i + 1, { idempotencyKey: `key ${text}` })),
          taskInserts: odd.map((text, i) => task(i + 1, 0, { agentId: `a ${text}`, verb: text })),
          undoInserts: odd.map((text, i) => undo(i + 1, 0, { name: text })),
          entityWrites: odd.map((text, i) => ({
            kind: text,
            id: text,
            value: text,
            commandId: i + 1,
            at: 1,
          })),
        }),
      );
      for (const [i, text] of odd.entries()) {
        expect((await env.store.getCommand(i + 1))?.idempotencyKey).toBe(`key ${text}`);
        expect((await env.store.getCommandByKey(`key ${text}`))?.id).toBe(i + 1);
        const [t] = await env.store.getTasks(i + 1);
        expect([t?.agentId, t?.verb]).toEqual([`a ${text}`, text]);
        expect((await env.store.getUndo(i + 1))[0]?.name).toBe(text);
        expect((await env.store.getEntity(text, text))?.value).toBe(text);
      }
    });

    it('accepts a lone surrogate in a text column (kept, or replaced by U+FFFD)', async () => {
      await env.store.apply(batch({ commandInserts: [command(1, { idempotencyKey: 'k\ud800' })] }));
      expect((await env.store.getCommand(1))?.idempotencyKey).toMatch(/^k(\ud800|\ufffd+)$/);
    });

    it('stores undefined JSON values as null', async () => {
      await env.store.apply(
        batch({ commandInserts: [command(1, { params: undefined, result: undefined })] }),
      );
      const got = await env.store.getCommand(1);
      expect([got?.params, got?.result]).toEqual([null, null]);
    });

    it('command updates change only the mutable fields', async () => {
      const original = fullCommand(2, 1, 1);
      await env.store.apply(
        batch({
          commandInserts: [command(1), { ...original, status: 'pending', compensation: 'none' }],
        }),
      );
      const changed: CommandRecord = {
        ...command(2),
        // Immutable fields differ too; the store must ignore them.
        type: 'other',
        params: { other: true },
        idempotencyKey: 'other-key',
        createdAt: 1,
        status: 'waiting',
        taskCount: 9,
        stageDone: false,
        error: { code: 'E', message: 'm', details: { d: [1] } },
        result: { r: 1 },
        data: [1, 2],
        nextAttemptAt: 77,
        updatedAt: T0 + 99,
        owner: 'node-z',
        leaseUntil: 123,
      };
      const update: CommandUpdate = changed;
      await env.store.apply(batch({ commandUpdates: [update] }));
      const got = await env.store.getCommand(2);
      expect(got).toEqual(
        env.stored({
          ...changed,
          type: original.type,
          paramsVersion: original.paramsVersion,
          params: original.params,
          parentId: original.parentId,
          rootId: original.rootId,
          seq: original.seq,
          originStage: original.originStage,
          childMode: original.childMode,
          failurePolicy: original.failurePolicy,
          idempotencyKey: original.idempotencyKey,
          createdAt: original.createdAt,
          // Written once, with the insert: updates never carry it.
          traceContext: original.traceContext,
        }),
      );
      expect(await env.store.getCommandByKey('other-key')).toBeNull();
    });

    it('a state-only command update (CommandUpdate.stateOnly) stores its bookkeeping and time, the rest as it was', async () => {
      const stored = command(1, { status: 'waiting', taskCount: 1 });
      await env.store.apply(batch({ commandInserts: [stored, command(2)] }));
      // As the engine flags it: status, compensation, error, result, end and cleared tasks are
      // the stored ones; a store may write the state alone, or the whole update.
      const next = { ...stored, taskCount: 3, stageDone: true, data: [1], updatedAt: T0 + 5 };
      const flagged: CommandUpdate = { ...commandUpdate(next), stateOnly: true };
      await env.store.apply(batch({ commandUpdates: [flagged, commandUpdate(command(2))] }));
      expect(await env.store.getCommand(1)).toEqual(env.stored(next));
      const history = await env.store.getStatusHistory?.(1);
      if (history) expect(history.map((h) => h.status)).toEqual(['waiting']);
    });

    it('the status history: each stored status with its time, oldest first — a terminal one at the command’s end, not at a later update', async () => {
      const read = env.store.getStatusHistory?.bind(env.store);
      if (read === undefined) return;
      await env.store.apply(
        batch({
          commandInserts: [
            command(1, { status: 'waiting', updatedAt: T0 + 1 }),
            command(2, { updatedAt: T0 + 1 }),
            command(3, { status: 'failed', updatedAt: T0 + 1, endedAt: T0 + 1 }),
            command(4, { updatedAt: T0 + 1 }),
          ],
        }),
      );
      await env.store.apply(
        batch({
          commandUpdates: [
            commandUpdate(command(1, { status: 'succeeded', updatedAt: T0 + 4, endedAt: T0 + 4 })),
            commandUpdate(command(2, { status: 'aborting', updatedAt: T0 + 2 })),
            // Ended without an end time (never by the engine): at its update.
            commandUpdate(command(4, { status: 'cancelled', updatedAt: T0 + 3, endedAt: null })),
          ],
        }),
      );
      // A later update of an ended command (its tasks cleared) moves updated_at, not its end.
      await env.store.apply(
        batch({
          commandUpdates: [
            commandUpdate(
              command(1, {
                status: 'succeeded',
                updatedAt: T0 + 6,
                endedAt: T0 + 4,
                tasksCleared: true,
              }),
            ),
            commandUpdate(command(2, { status: 'cancelled', updatedAt: T0 + 5, endedAt: T0 + 5 })),
          ],
        }),
      );
      expect(await read(1)).toEqual([
        { status: 'waiting', at: T0 + 1 },
        { status: 'succeeded', at: T0 + 4 },
      ]);
      expect(await read(2)).toEqual([
        { status: 'pending', at: T0 + 1 },
        { status: 'aborting', at: T0 + 2 },
        { status: 'cancelled', at: T0 + 5 },
      ]);
      // Inserted ended: its first status is its terminal one, read once.
      expect(await read(3)).toEqual([{ status: 'failed', at: T0 + 1 }]);
      expect(await read(4)).toEqual([
        { status: 'pending', at: T0 + 1 },
        { status: 'cancelled', at: T0 + 3 },
      ]);
      expect(await read(5)).toEqual([]);
    });

    it('task and undo updates change only their mutable fields', async () => {
      const t = task(1, 0, { deadlineAt: 5 });
      const u = undo(1, 0);
      await env.store.apply(
        batch({ commandInserts: [command(1)], taskInserts: [t], undoInserts: [u] }),
      );
      const t2: TaskRecord = {
        ...t,
        status: 'succeeded',
        result: { ok: 1 },
        stopRequested: true,
        endedAt: 9,
        agentId: 'x',
        verb: 'y',
        args: 1,
        deadlineAt: 6,
        createdAt: 7,
        origin: 3,
      };
      const u2 = {
        ...u,
        status: 'failed' as const,
        error: { code: 'C', message: 'm' },
        name: 'zz',
        seq: 99,
        data: 5,
      };
      await env.store.apply(batch({ taskUpdates: [t2], undoUpdates: [u2] }));
      expect(await env.store.getTasks(1)).toEqual([{ ...t, ...taskUpdate(t2) }]);
      expect(await env.store.getUndo(1)).toEqual([{ ...u, ...undoUpdate(u2) }]);
    });

    it('params upgrades rewrite the parameters and their version only', async () => {
      const c = command(1, { params: { old: 1 }, paramsVersion: 1, status: 'waiting' });
      await env.store.apply(batch({ commandInserts: [c] }));
      await env.store.apply(
        batch({ paramsUpgrades: [{ id: 1, paramsVersion: 2, params: { new: [1] } }] }),
      );
      expect(await env.store.getCommand(1)).toEqual(
        env.stored({ ...c, paramsVersion: 2, params: { new: [1] } }),
      );
    });

    it('applies inserts before updates, and entity writes in order', async () => {
      const c = command(1);
      await env.store.apply(
        batch({
          commandUpdates: [commandUpdate({ ...c, status: 'waiting' })],
          commandInserts: [c],
          taskUpdates: [taskUpdate(task(1, 0, { status: 'running' }))],
          taskInserts: [task(1, 0)],
          entityWrites: [
            { kind: 'k', id: 'a', value: 1, commandId: 1, at: 1 },
            { kind: 'k', id: 'a', value: null, commandId: 1, at: 2 },
            { kind: 'k', id: 'b', value: null, commandId: 1, at: 1 },
            { kind: 'k', id: 'b', value: 'b', commandId: 1, at: 2 },
          ],
        }),
      );
      expect((await env.store.getCommand(1))?.status).toBe('waiting');
      expect((await env.store.getTasks(1))[0]?.status).toBe('running');
      expect(await env.store.getEntity('k', 'a')).toBeNull();
      expect((await env.store.getEntity('k', 'b'))?.value).toBe('b');
    });
  });

  describe('atomicity', () => {
    beforeEach(async () => {
      await env.store.open('node-a');
      await env.store.apply(
        batch({
          commandInserts: [command(1, { idempotencyKey: 'k1' })],
          taskInserts: [task(1, 0)],
        }),
      );
    });

    /** A batch touching every table, to which each test adds one bad change. */
    const sideEffects = {
      commandInserts: [command(10), child(11, command(10), 0)],
      taskInserts: [task(10, 0)],
      undoInserts: [undo(10, 0)],
      commandUpdates: [commandUpdate(command(1, { status: 'waiting', taskCount: 5 }))],
      taskUpdates: [taskUpdate(task(1, 0, { status: 'running' }))],
      paramsUpgrades: [{ id: 1, paramsVersion: 2, params: 'new' }],
      entityWrites: [{ kind: 'k', id: 'e', value: { v: 1 }, commandId: 10, at: 1 }],
    };

    async function expectUntouched(): Promise<void> {
      expect(await env.store.getCommand(1)).toEqual(
        env.stored(command(1, { idempotencyKey: 'k1' })),
      );
      expect(await env.store.getTasks(1)).toEqual([task(1, 0)]);
      expect(await env.store.getCommand(10)).toBeNull();
      expect(await env.store.getCommand(11)).toBeNull();
      expect(await env.store.getTasks(10)).toEqual([]);
      expect(await env.store.getUndo(10)).toEqual([]);
      expect(await env.store.getEntity('k', 'e')).toBeNull();
      const snapshot = await env.store.loadActive();
      expect(snapshot.commands.map((c) => c.id)).toEqual([1]);
      // Still usable.
      await env.store.apply(batch({ commandInserts: [command(20)] }));
      expect((await env.store.getCommand(20))?.id).toBe(20);
    }

    it('a duplicate command insert stores nothing of the batch, refused for good (BATCH_REFUSED)', async () => {
      const bad = batch({
        ...sideEffects,
        commandInserts: [...sideEffects.commandInserts, command(1)],
      });
      await rejectsWith(env.store.apply(bad), ErrorCode.BatchRefused);
      await expectUntouched();
    });

    it('overlapping applies: after a failed batch, the ones called before its failure was reported apply nothing', async () => {
      const bad = batch({
        ...sideEffects,
        commandInserts: [...sideEffects.commandInserts, command(1)],
      });
      const later = batch({ commandInserts: [command(30)] });
      const first = env.store.apply(bad);
      const second = env.store.apply(later);
      const outcomes = await Promise.allSettled([first, second]);
      expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
      expect(await env.store.getCommand(30)).toBeNull();
      await expectUntouched();
      // Called after the failure was reported, a batch applies.
      await env.store.apply(later);
      expect((await env.store.getCommand(30))?.id).toBe(30);
    });

    it('a duplicate task insert within the batch stores nothing', async () => {
      const bad = batch({ ...sideEffects, taskInserts: [...sideEffects.taskInserts, task(10, 0)] });
      await rejectsWith(env.store.apply(bad), ErrorCode.BatchRefused);
      await expectUntouched();
    });

    it('a duplicate idempotency key stores nothing, refused for good (IDEMPOTENCY_KEY_TAKEN)', async () => {
      const bad = batch({
        ...sideEffects,
        commandInserts: [...sideEffects.commandInserts, command(12, { idempotencyKey: 'k1' })],
      });
      const error = await rejectsWith(env.store.apply(bad), ErrorCode.IdempotencyKeyTaken);
      expect(error.message).toContain('idempotency key another command holds');
      await expectUntouched();
    });

    it('an update of a row that does not exist stores nothing, refused for good (BATCH_REFUSED)', async () => {
      for (const [extra, named] of [
        [{ commandUpdates: [...sideEffects.commandUpdates, commandUpdate(command(99))] }, /99/],
        [{ taskUpdates: [taskUpdate(task(1, 7))] }, /7/],
        [{ undoUpdates: [undoUpdate(undo(1, 0))] }, /0/],
      ] as const) {
        const error = await rejectsWith(
          env.store.apply(batch({ ...sideEffects, ...extra })),
          ErrorCode.BatchRefused,
        );
        // The error names the statement and the row that was not there.
        expect(error.message).toMatch(/no such row/);
        expect(error.message.slice(error.message.indexOf('no such row'))).toMatch(named);
      }
      await expectUntouched();
    });

    it('an illegal transition at the end of a batch stores nothing', async () => {
      const bad = batch({
        ...sideEffects,
        taskUpdates: [
          taskUpdate(task(1, 0, { status: 'succeeded' })),
          taskUpdate(task(1, 0, { status: 'running' })),
        ],
      });
      await rejectsWith(env.store.apply(bad), ErrorCode.IllegalTransition);
      await expectUntouched();
    });
  });

  describe('status machines', () => {
    beforeEach(async () => {
      await env.store.open('node-a');
    });

    it('command status: every pair is accepted exactly when the table allows it', async () => {
      let id = 0;
      for (const from of COMMAND_STATUSES) {
        for (const to of COMMAND_STATUSES) {
          const c = command(++id, { status: from });
          await env.store.apply(batch({ commandInserts: [c] }));
          const applied = env.store.apply(
            batch({ commandUpdates: [commandUpdate({ ...c, status: to })] }),
          );
          if (canTransition('command', from, to)) await applied;
          else await rejectsWith(applied, ErrorCode.IllegalTransition);
          expect((await env.store.getCommand(id))?.status).toBe(
            canTransition('command', from, to) ? to : from,
          );
        }
      }
    });

    it('compensation: every pair is accepted exactly when the table allows it', async () => {
      let id = 0;
      for (const from of COMPENSATION_STATUSES) {
        for (const to of COMPENSATION_STATUSES) {
          const c = endedCommand(++id, { compensation: from });
          await env.store.apply(batch({ commandInserts: [c] }));
          const applied = env.store.apply(
            batch({ commandUpdates: [commandUpdate({ ...c, compensation: to })] }),
          );
          if (canTransition('compensation', from, to)) await applied;
          else await rejectsWith(applied, ErrorCode.IllegalTransition);
          expect((await env.store.getCommand(id))?.compensation).toBe(
            canTransition('compensation', from, to) ? to : from,
          );
        }
      }
    });

    it('task and undo status: every pair is accepted exactly when the table allows it', async () => {
      await env.store.apply(batch({ commandInserts: [command(1)] }));
      let ordinal = 0;
      for (const from of TASK_STATUSES) {
        for (const to of TASK_STATUSES) {
          const t = task(1, ++ordinal, { status: from });
          await env.store.apply(batch({ taskInserts: [t] }));
          const applied = env.store.apply(
            batch({ taskUpdates: [taskUpdate({ ...t, status: to })] }),
          );
          const legal = canTransition('task', from, to);
          if (legal) await applied;
          else await rejectsWith(applied, ErrorCode.IllegalTransition);
          expect((await env.store.getTasks(1)).find((x) => x.ordinal === ordinal)?.status).toBe(
            legal ? to : from,
          );
        }
      }
      for (const from of UNDO_STATUSES) {
        for (const to of UNDO_STATUSES) {
          const u = undo(1, ++ordinal, { status: from });
          await env.store.apply(batch({ undoInserts: [u] }));
          const applied = env.store.apply(
            batch({ undoUpdates: [undoUpdate({ ...u, status: to })] }),
          );
          const legal = canTransition('undo', from, to);
          if (legal) await applied;
          else await rejectsWith(applied, ErrorCode.IllegalTransition);
          expect((await env.store.getUndo(1)).find((x) => x.ordinal === ordinal)?.status).toBe(
            legal ? to : from,
          );
        }
      }
    });

    it('the illegal-transition error names the machine, the row and both statuses', async () => {
      await env.store.apply(batch({ commandInserts: [endedCommand(7)] }));
      const error = await rejectsWith(
        env.store.apply(
          batch({
            commandUpdates: [commandUpdate(command(7, { status: 'waiting', tasksCleared: true }))],
          }),
        ),
        ErrorCode.IllegalTransition,
      );
      expect(error.details).toMatchObject({ machine: 'command', from: 'succeeded', to: 'waiting' });
      expect(error.message).toContain('7');
    });

    it('stored statuses only ever move along the tables (property)', async () => {
      let id = 100;
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.tuple(fc.constantFrom(...COMMAND_STATUSES), fc.constantFrom(...TASK_STATUSES)),
            { minLength: 1, maxLength: 12 },
          ),
          async (steps) => {
            const c = command(++id);
            const t = task(id, 0);
            await env.store.apply(batch({ commandInserts: [c], taskInserts: [t] }));
            let cs: string = c.status;
            let ts: string = t.status;
            for (const [nextCommand, nextTask] of steps) {
              // Both in one batch: legal only if both moves are.
              const legal =
                canTransition('command', cs, nextCommand) && canTransition('task', ts, nextTask);
              const applied = env.store.apply(
                batch({
                  commandUpdates: [commandUpdate({ ...c, status: nextCommand })],
                  taskUpdates: [taskUpdate({ ...t, status: nextTask })],
                }),
              );
              if (legal) {
                await applied;
                cs = nextCommand;
                ts = nextTask;
              } else {
                await rejectsWith(applied, ErrorCode.IllegalTransition);
              }
              expect((await env.store.getCommand(id))?.status).toBe(cs);
              expect((await env.store.getTasks(id))[0]?.status).toBe(ts);
            }
          },
        ),
        { numRuns: 60 },
      );
    });
  });
}
