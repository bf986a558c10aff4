/**
 * Conformance tests of retention (`Store.prune`): whole ended trees older than the cutoff go
 * with their tasks and undo steps, oldest first, in bounded calls; every row of a tree with an
 * active command stays, and so does everything that is not a tree's (entities, agents).
 *
 * @module
 */
import { beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ErrorCode } from '../../src/core/errors.js';
import type { CommandRecord, TaskRecord, UndoRecord } from '../../src/core/records.js';
import { COMMAND_STATUSES, COMPENSATION_STATUSES, isTerminal } from '../../src/core/states.js';
import type { PruneBatch, PruneOptions, Store } from '../../src/store/port.js';
import { T0, batch, child, command, endedCommand, task, undo } from './fixtures.js';
import { rejectsWith, type SuiteEnv } from './harness.js';

/** A tree as written: its commands (root first), tasks and undo steps. */
export interface Tree {
  readonly commands: readonly CommandRecord[];
  readonly tasks: readonly TaskRecord[];
  readonly undo: readonly UndoRecord[];
}

/**
 * A settled tree (every command ended, tasks cleared): root `id` ended at `endedAt`, with
 * `children` children, two tasks and an undo step per command.
 */
export function settledTree(id: number, endedAt: number, children = 2): Tree {
  const root = endedCommand(id, { endedAt });
  const kids = Array.from({ length: children }, (_, i) =>
    endedCommand(id + 1 + i, { parentId: id, rootId: id, seq: i, endedAt }),
  );
  const commands = [root, ...kids];
  return {
    commands,
    tasks: commands.flatMap((c) => [
      task(c.id, 0, { status: 'succeeded', endedAt }),
      task(c.id, 1, { status: 'succeeded', endedAt }),
    ]),
    undo: commands.map((c) => undo(c.id, 0, { status: 'done' })),
  };
}

/** Writes trees in one batch. */
export async function writeTrees(store: Store, trees: readonly Tree[]): Promise<void> {
  await store.apply(
    batch({
      commandInserts: trees.flatMap((t) => t.commands),
      taskInserts: trees.flatMap((t) => t.tasks),
      undoInserts: trees.flatMap((t) => t.undo),
    }),
  );
}

/** How many of a tree's rows are stored: commands, tasks, undo steps. */
export async function storedRows(store: Store, tree: Tree): Promise<[number, number, number]> {
  let commands = 0;
  let tasks = 0;
  let undo = 0;
  for (const c of tree.commands) {
    if (await store.getCommand(c.id)) commands++;
    tasks += (await store.getTasks(c.id)).length;
    undo += (await store.getUndo(c.id)).length;
  }
  return [commands, tasks, undo];
}

/** A tree's row counts as written. */
export function rowsOf(tree: Tree): [number, number, number] {
  return [tree.commands.length, tree.tasks.length, tree.undo.length];
}

/** Prunes from the oldest tree until none remain; returns every call's result. */
export async function pruneAll(
  store: Store,
  o: Omit<PruneOptions, 'after'>,
): Promise<PruneBatch[]> {
  const calls: PruneBatch[] = [];
  let after: PruneOptions['after'] = null;
  for (;;) {
    const r = await store.prune({ ...o, after });
    calls.push(r);
    if (!r.more) return calls;
    after = r.next;
  }
}

const NOW = T0 + 1_000_000;
const OLD = NOW - 100_000;

/** Registers the retention tests. */
export function describeRetention(env: SuiteEnv): void {
  describe('prune (retention)', () => {
    beforeEach(async () => {
      await env.store.open('node-a');
    });

    it('deletes whole ended trees older than the cutoff, and nothing of live, young or other rows', async () => {
      const store = env.store;
      const old = settledTree(1, OLD);
      const young = settledTree(10, NOW + 1);
      const atCutoff = settledTree(20, NOW); // strictly before the cutoff only
      // Live trees, each old: a running root; a root that ended while a child's tasks are
      // still being cleared; a root whose child is being compensated; a compensating root; a
      // root ended whose own tasks are not cleared; a grandchild still running.
      const running: Tree = {
        commands: [
          command(30, { status: 'waiting' }),
          endedCommand(31, { parentId: 30, rootId: 30, seq: 0, endedAt: OLD }),
        ],
        tasks: [task(31, 0, { status: 'succeeded' })],
        undo: [undo(30, 0)],
      };
      const clearing: Tree = {
        commands: [
          endedCommand(40, { endedAt: OLD }),
          endedCommand(41, {
            parentId: 40,
            rootId: 40,
            seq: 0,
            status: 'failed',
            tasksCleared: false,
            endedAt: OLD,
          }),
        ],
        tasks: [task(41, 0, { status: 'failed', stopRequested: true })],
        undo: [],
      };
      const childCompensating: Tree = {
        commands: [
          endedCommand(50, { endedAt: OLD, status: 'failed' }),
          endedCommand(51, {
            parentId: 50,
            rootId: 50,
            seq: 0,
            compensation: 'compensating',
            endedAt: OLD,
          }),
        ],
        tasks: [],
        undo: [undo(51, 0)],
      };
      const rootCompensating: Tree = {
        commands: [endedCommand(60, { endedAt: OLD, compensation: 'compensating' })],
        tasks: [],
        undo: [undo(60, 0)],
      };
      const rootUncleared: Tree = {
        commands: [endedCommand(70, { endedAt: OLD, tasksCleared: false })],
        tasks: [task(70, 0, { status: 'succeeded' })],
        undo: [],
      };
      const grandchild: Tree = {
        commands: [
          endedCommand(80, { endedAt: OLD }),
          endedCommand(81, { parentId: 80, rootId: 80, seq: 0, endedAt: OLD }),
          command(82, { parentId: 81, rootId: 80, seq: 0, status: 'pending' }),
        ],
        tasks: [task(82, 0, { status: 'running' })],
        undo: [],
      };
      const kept = [young, atCutoff, running, clearing, childCompensating, rootCompensating];
      kept.push(rootUncleared, grandchild);
      await writeTrees(store, [old, ...kept]);
      await store.apply(
        batch({ entityWrites: [{ kind: 'vol', id: 'v1', value: { n: 1 }, commandId: 1, at: 5 }] }),
      );
      await store.saveAgent({
        id: 'agent-1',
        address: null,
        state: 'up',
        bootId: null,
        lastSeenAt: null,
        lastError: null,
        updatedAt: T0,
      });

      const r = await store.prune({ endedBefore: NOW, limit: 100 });
      expect(r).toEqual({
        rootIds: [1],
        trees: 1,
        commands: 3,
        tasks: 6,
        undo: 3,
        more: false,
        next: { endedAt: OLD, rootId: 1 },
      });
      expect(await storedRows(store, old)).toEqual([0, 0, 0]);
      for (const t of kept)
        expect(await storedRows(store, t), `tree ${t.commands[0]!.id}`).toEqual(rowsOf(t));
      // Not a tree's rows: kept, even the entity the pruned tree's root wrote.
      expect(await store.getEntity('vol', 'v1')).toMatchObject({ commandId: 1 });
      expect((await store.listAgents()).map((a) => a.id)).toEqual(['agent-1']);
      // The live trees are still what the engine resumes.
      const active = (await store.loadActive()).commands.map((c) => c.id).sort((a, b) => a - b);
      expect(active).toEqual([30, 41, 51, 60, 70, 82]);
      // Nothing left to prune at this cutoff.
      expect(await store.prune({ endedBefore: NOW, limit: 100 })).toMatchObject({
        trees: 0,
        more: false,
      });
    });

    it('held marks: counted per tree, only for a stored root, deleted with their tree', async () => {
      const store = env.store;
      const old = settledTree(1, OLD);
      const young = settledTree(10, NOW);
      await writeTrees(store, [old, young]);
      const refusal = { code: ErrorCode.BatchRefused, message: 'refused: x' };
      // A child is not a root, and 99 is not stored: neither is marked.
      await store.holdTrees(
        'node-a',
        [
          { rootId: 1, error: refusal },
          { rootId: 2, error: refusal },
          { rootId: 99, error: refusal },
        ],
        OLD,
      );
      await store.holdTrees('node-a', [{ rootId: 10, error: refusal }], OLD);
      const again = { code: ErrorCode.IllegalTransition, message: 'again', details: { n: 1 } };
      await store.holdTrees('node-a', [{ rootId: 10, error: again }], OLD + 5);
      expect(await store.heldTrees()).toEqual([
        { rootId: 1, error: refusal, refusals: 1, heldAt: OLD },
        { rootId: 10, error: again, refusals: 2, heldAt: OLD + 5 },
      ]);
      await store.holdTrees('node-a', [], OLD);
      // A release deletes a mark; a second finds none.
      await store.holdTrees('node-a', [{ rootId: 1, error: refusal }], OLD);
      expect(await store.releaseTree(1)).toBe(true);
      expect(await store.releaseTree(1)).toBe(false);
      expect((await store.heldTrees()).map((h) => h.rootId)).toEqual([10]);
      await store.holdTrees('node-a', [{ rootId: 1, error: refusal }], OLD);
      // Retention deletes a mark with its tree, and only then.
      await pruneAll(store, { endedBefore: OLD + 1, limit: 10 });
      expect((await store.heldTrees()).map((h) => h.rootId)).toEqual([10]);
    });

    it('rerun links: read both ways, only for a stored root, the first kept, deleted with the rerun’s tree', async () => {
      const store = env.store;
      // 1 ran again as 10 and 20 (old trees), 20 again as 30 (young).
      await writeTrees(store, [settledTree(1, OLD), settledTree(10, OLD), settledTree(20, OLD)]);
      await writeTrees(store, [settledTree(30, NOW)]);
      await store.linkRerun(10, 1, OLD);
      await store.linkRerun(20, 1, OLD);
      await store.linkRerun(30, 20, NOW);
      // Linked again, a rerun keeps its first link; a child or a root not stored is not linked.
      await store.linkRerun(10, 20, OLD);
      await store.linkRerun(11, 1, OLD);
      await store.linkRerun(99, 1, OLD);
      expect(await store.rerunLinks(1)).toEqual({ rerunOf: null, reruns: [10, 20] });
      expect(await store.rerunLinks(20)).toEqual({ rerunOf: 1, reruns: [30] });
      expect(await store.rerunLinks(10)).toEqual({ rerunOf: 1, reruns: [] });
      expect(await store.rerunLinks(99)).toEqual({ rerunOf: null, reruns: [] });
      // Retention deletes a rerun's link with its tree; a rerun kept still names what it reran.
      await pruneAll(store, { endedBefore: OLD + 1, limit: 10 });
      expect(await store.rerunLinks(1)).toEqual({ rerunOf: null, reruns: [] });
      expect(await store.rerunLinks(30)).toEqual({ rerunOf: 20, reruns: [] });
    });

    it('goes oldest first in bounded calls, each resuming after the last tree seen', async () => {
      const store = env.store;
      // Ended at decreasing times as ids grow: oldest first is not id order.
      const trees = [1, 10, 20, 30, 40].map((id, i) => settledTree(id, OLD - i * 10, 1));
      await writeTrees(store, trees);
      const first = await store.prune({ endedBefore: NOW, limit: 2 });
      expect(first).toMatchObject({ rootIds: [30, 40], trees: 2, commands: 4, more: true });
      expect(first.next).toEqual({ endedAt: OLD - 30, rootId: 30 });
      const second = await store.prune({ endedBefore: NOW, limit: 2, after: first.next });
      expect(second).toMatchObject({ rootIds: [10, 20], more: true });
      const third = await store.prune({ endedBefore: NOW, limit: 2, after: second.next });
      expect(third).toMatchObject({ rootIds: [1], more: false, next: { rootId: 1 } });
      for (const t of trees) expect(await storedRows(store, t)).toEqual([0, 0, 0]);
      expect(await store.prune({ endedBefore: NOW, limit: 2 })).toEqual({
        rootIds: [],
        trees: 0,
        commands: 0,
        tasks: 0,
        undo: 0,
        more: false,
        next: null,
      });
    });

    it('a tree with an active command does not count toward the limit', async () => {
      const store = env.store;
      const clearing: Tree = {
        commands: [
          endedCommand(1, { endedAt: OLD - 10 }),
          endedCommand(2, { parentId: 1, rootId: 1, seq: 0, tasksCleared: false, endedAt: OLD }),
        ],
        tasks: [],
        undo: [],
      };
      await writeTrees(store, [clearing, settledTree(10, OLD, 1)]);
      expect(await store.prune({ endedBefore: NOW, limit: 1 })).toMatchObject({
        rootIds: [10],
        more: false,
      });
      expect(await storedRows(store, clearing)).toEqual(rowsOf(clearing));
    });

    it('a dry run counts what a real run then deletes, and deletes nothing', async () => {
      const store = env.store;
      const trees = [settledTree(1, OLD, 3), settledTree(10, OLD + 1, 0), settledTree(20, NOW)];
      await writeTrees(store, trees);
      const dry = await store.prune({ endedBefore: NOW, limit: 10, dryRun: true });
      expect(dry).toEqual({
        rootIds: [1, 10],
        trees: 2,
        commands: 5,
        tasks: 10,
        undo: 5,
        more: false,
        next: { endedAt: OLD + 1, rootId: 10 },
      });
      for (const t of trees) expect(await storedRows(store, t)).toEqual(rowsOf(t));
      // Paged like a real run.
      const page = await store.prune({ endedBefore: NOW, limit: 1, dryRun: true });
      expect(page).toMatchObject({ rootIds: [1], more: true });
      expect(
        await store.prune({ endedBefore: NOW, limit: 1, dryRun: true, after: page.next }),
      ).toMatchObject({ rootIds: [10], more: false });
      const real = await store.prune({ endedBefore: NOW, limit: 10 });
      expect(real).toEqual(dry);
    });

    it('refuses bad options with INVALID_OPTIONS, deleting nothing', async () => {
      const store = env.store;
      const tree = settledTree(1, OLD);
      await writeTrees(store, [tree]);
      const bad: unknown[] = [
        { endedBefore: NOW, limit: 0 },
        { endedBefore: NOW, limit: 1.5 },
        { endedBefore: NOW, limit: 10_001 },
        { endedBefore: Number.NaN, limit: 1 },
        { endedBefore: NOW, limit: 1, dryRun: 'yes' },
        { endedBefore: NOW, limit: 1, after: { endedAt: 1 } },
      ];
      for (const options of bad) {
        const error = await rejectsWith(
          store.prune(options as PruneOptions),
          ErrorCode.InvalidOptions,
        );
        expect(error.message).toMatch(/prune: (limit|endedBefore|dryRun|after)/);
      }
      expect(await storedRows(store, tree)).toEqual(rowsOf(tree));
    });

    it('never deletes a row of a live or young tree, and deletes every prunable tree whole (property)', async () => {
      const store = env.store;
      const statuses = COMMAND_STATUSES;
      const commandArb = fc.record({
        status: fc.constantFrom(...statuses),
        tasksCleared: fc.boolean(),
        compensation: fc.constantFrom(...COMPENSATION_STATUSES),
        endedAt: fc.integer({ min: OLD - 50, max: OLD + 50 }),
        tasks: fc.integer({ min: 0, max: 2 }),
        // Index of its parent among the commands before it (the root has none).
        parent: fc.nat(),
      });
      const treeArb = fc.array(commandArb, { minLength: 1, maxLength: 5 });
      let nextId = 1;
      await fc.assert(
        fc.asyncProperty(
          fc.array(treeArb, { minLength: 1, maxLength: 6 }),
          fc.integer({ min: OLD - 60, max: OLD + 60 }),
          fc.integer({ min: 1, max: 4 }),
          async (specs, cutoff, limit) => {
            const trees: Tree[] = specs.map((spec) => {
              const rootId = nextId;
              nextId += spec.length;
              const commands = spec.map((s, i): CommandRecord => {
                const ended = isTerminal(s.status);
                const over: Partial<CommandRecord> = {
                  status: s.status,
                  tasksCleared: ended && s.tasksCleared,
                  compensation: s.compensation,
                  endedAt: ended ? s.endedAt : null,
                };
                if (i === 0) return command(rootId, over);
                return child(rootId + i, command(rootId + (s.parent % i)), i, {
                  ...over,
                  rootId,
                });
              });
              return {
                commands,
                tasks: commands.flatMap((c, i) =>
                  Array.from({ length: spec[i]!.tasks }, (_, k) => task(c.id, k)),
                ),
                undo: commands.map((c) => undo(c.id, 0)),
              };
            });
            await writeTrees(store, trees);
            const calls = await pruneAll(store, { endedBefore: cutoff, limit });
            const pruned = new Set(calls.flatMap((c) => c.rootIds));
            for (const t of trees) {
              const root = t.commands[0]!;
              const live = t.commands.some(
                (c) =>
                  !isTerminal(c.status) || !c.tasksCleared || c.compensation === 'compensating',
              );
              const prunable = !live && root.endedAt !== null && root.endedAt < cutoff;
              expect(await storedRows(store, t), `tree ${root.id}`).toEqual(
                prunable ? [0, 0, 0] : rowsOf(t),
              );
              expect(pruned.has(root.id)).toBe(prunable);
            }
            for (const c of calls) expect(c.trees).toBeLessThanOrEqual(limit);
          },
        ),
        { numRuns: 25 },
      );
    });
  });
}
