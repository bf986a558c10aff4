/**
 * Commands whose type or parameters cannot be loaded are held — left as they are, their tasks
 * running — until a cancel ends them: their tasks stopped and cleared, their undo steps and
 * onFailure run with what stored data allows (none of their code if the type is gone), and they
 * end failed with COMMAND_UNLOADABLE naming why. The ending is an ordinary one: it goes through
 * the batches, survives a restart in the middle, and happens once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand, type CommandType } from '../../src/core/command-type.js';
import { agentTaskId } from '../../src/core/records.js';
import type { EngineEventMap } from '../../src/engine/events.js';
import { Journal } from '../support/commands.js';
import {
  assertNoLeakedEngines,
  holdVerbs,
  settled,
  startEnv,
  whenCommitted,
  type TestEnv,
} from '../support/harness.js';

afterEach(assertNoLeakedEngines);

const v1 = z.object({ disk: z.string() });
/** The same type and version with a stricter schema: rows written under `v1` no longer load. */
const stricter = z.object({ disk: z.string(), pool: z.string() });

/**
 * `disk.lock` version 1: locks a disk (an entity), records an undo step that unlocks it from its
 * own data, and holds a task. `onFailure` notes how it ended; `undoTask` makes the undo step run
 * a task held under that key first.
 */
function lockType(
  journal: Journal,
  schema: z.ZodType<{ disk: string }>,
  undoTask?: string,
): CommandType<{ disk: string }> {
  return defineCommand({
    name: 'disk.lock',
    schema,
    execute(ctx) {
      ctx.entities.put('lock', ctx.params.disk, { by: ctx.command.id });
      ctx.addUndo('unlock', { disk: ctx.params.disk });
      ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.disk } });
    },
    onFailure(ctx) {
      journal.add(`failure:${ctx.command.id}:${ctx.error.code}`);
    },
    undo: {
      async unlock(ctx, data) {
        const disk = (data as { disk: string }).disk;
        if (undoTask) await ctx.runTask({ agent: 'a1', verb: 'hold', args: { key: undoTask } });
        ctx.entities.delete('lock', disk);
        journal.add(`unlock:${disk}`);
      },
    },
  }) as CommandType<{ disk: string }>;
}

type LoadFailed = EngineEventMap['load-failed'];

async function taskRunning(env: TestEnv, id: number): Promise<void> {
  await whenCommitted(
    env.engine,
    async () => (await env.engine.inspect(id))?.tasks[0]?.status === 'running',
  );
}

describe('a command whose parameters can no longer be loaded', () => {
  it('is held, its task left running; a cancel ends it, running its undo from stored data and onFailure', async () => {
    const hold = holdVerbs();
    const journal = new Journal();
    let env = await startEnv({ commands: [lockType(journal, v1)], verbs: hold.verbs });
    try {
      const { id } = await env.engine.submit(lockType(journal, v1), { disk: 'd1' });
      await taskRunning(env, id);
      const taskId = agentTaskId(env.engine.storeId, id, 0);
      const failures: LoadFailed[] = [];
      env = await env.restart({
        commands: [lockType(journal, stricter)],
        beforeStart: (e) => e.on('load-failed', (f) => failures.push(f)),
      });
      expect(failures).toEqual([
        {
          commandId: id,
          error: expect.objectContaining({ code: 'PARAMETERS_INVALID' }) as unknown,
        },
      ]);
      // Held: as it was, its task running, its lock held; inspect says why.
      const other = await env.engine.submit(lockType(journal, stricter as never), {
        disk: 'd2',
        pool: 'p',
      } as never);
      await taskRunning(env, other.id);
      expect(env.agent().counters().stops).toBe(0);
      expect(env.agent().task(taskId)?.state).toBe('running');
      const held = await env.engine.inspect(id);
      expect(held?.command.status).toBe('waiting');
      expect(held?.unloadable).toMatchObject({ code: 'PARAMETERS_INVALID' });
      expect(await env.store.getEntity('lock', 'd1')).not.toBeNull();

      await env.engine.cancel(id);
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('failed');
      expect(ended.error).toMatchObject({
        code: 'COMMAND_UNLOADABLE',
        message: expect.stringMatching(
          new RegExp(
            `command ${id} \\(disk\\.lock\\) was ended by a cancel: it could not be loaded \\(.*pool`,
          ),
        ) as unknown,
        details: { cause: { code: 'PARAMETERS_INVALID' } },
      });
      expect(ended.compensation).toBe('compensated');
      expect(journal.entries).toEqual(['unlock:d1', `failure:${id}:COMMAND_UNLOADABLE`]);
      expect(await env.store.getEntity('lock', 'd1')).toBeNull();
      await settled(env.engine, id);
      expect(env.agent().task(taskId)).toBeUndefined();
      expect(env.agent().taskHistory(taskId)).toMatchObject({ endedState: 'cancelled', clears: 1 });
      // The other command was never touched.
      expect(env.agent().task(agentTaskId(env.engine.storeId, other.id, 0))?.state).toBe('running');
    } finally {
      await env.cleanup();
    }
  });

  it('a restart in the middle of its end neither holds it again nor ends it twice', async () => {
    const hold = holdVerbs();
    const journal = new Journal();
    let env = await startEnv({ commands: [lockType(journal, v1)], verbs: hold.verbs });
    try {
      const { id } = await env.engine.submit(lockType(journal, v1), { disk: 'd3' });
      await taskRunning(env, id);
      env = await env.restart({ commands: [lockType(journal, stricter, 'undo-d3')] });
      await env.engine.cancel(id);
      // The undo step runs its task, held: restart while it runs.
      await whenCommitted(
        env.engine,
        async () => (await env.engine.inspect(id))?.tasks[1]?.status === 'running',
      );
      const failures: LoadFailed[] = [];
      env = await env.restart({
        beforeStart: (e) => e.on('load-failed', (f) => failures.push(f)),
      });
      // Reported (its parameters still cannot be loaded), but not held: it goes on ending.
      expect(failures.map((f) => f.commandId)).toEqual([id]);
      expect((await env.engine.inspect(id))?.unloadable).toBeNull();
      hold.release('undo-d3');
      const ended = await env.engine.waitFor(id);
      expect(ended).toMatchObject({
        status: 'failed',
        compensation: 'compensated',
        error: { code: 'COMMAND_UNLOADABLE' },
      });
      expect(journal.count('unlock:d3')).toBe(1);
      expect(journal.count(`failure:${id}:COMMAND_UNLOADABLE`)).toBe(1);
      const undoTask = agentTaskId(env.engine.storeId, id, 1);
      expect(env.agent().taskHistory(undoTask)?.starts).toBe(1);
    } finally {
      await env.cleanup();
    }
  });
});

describe('a command whose type is gone', () => {
  const gone = (journal: Journal) =>
    defineCommand({
      name: 'gone.type',
      schema: v1,
      execute(ctx) {
        ctx.addUndo('revert', { disk: ctx.params.disk });
        ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.disk } });
      },
      onFailure: () => journal.add('failure'),
      undo: { revert: () => journal.add('revert') },
    });
  const parent = defineCommand({
    name: 'gone.parent',
    schema: z.object({ children: z.array(z.string()) }),
    execute(ctx) {
      for (const disk of ctx.params.children) ctx.addChild(gone(new Journal()), { disk });
    },
  });

  it('is held; a cancel stops and clears its tasks and ends it, running none of its code', async () => {
    const hold = holdVerbs();
    const journal = new Journal();
    let env = await startEnv({ commands: [gone(journal)], verbs: hold.verbs });
    try {
      const { id } = await env.engine.submit(gone(journal), { disk: 'g1' });
      await taskRunning(env, id);
      const taskId = agentTaskId(env.engine.storeId, id, 0);
      const failures: LoadFailed[] = [];
      env = await env.restart({
        commands: [],
        beforeStart: (e) => e.on('load-failed', (f) => failures.push(f)),
      });
      expect(failures).toMatchObject([{ commandId: id, error: { code: 'UNKNOWN_COMMAND_TYPE' } }]);
      expect((await env.engine.inspect(id))?.unloadable).toMatchObject({
        code: 'UNKNOWN_COMMAND_TYPE',
      });
      expect(env.agent().task(taskId)?.state).toBe('running');

      await env.engine.cancel(id);
      const ended = await env.engine.waitFor(id);
      expect(ended).toMatchObject({
        status: 'failed',
        error: {
          code: 'COMMAND_UNLOADABLE',
          message: expect.stringMatching(/"gone\.type".*none of its code runs/) as unknown,
        },
        compensation: 'failed',
        compensationError: {
          message: expect.stringMatching(
            /undo step "revert": not run: no code of command type "gone\.type"/,
          ) as unknown,
        },
      });
      expect(journal.entries).toEqual([]);
      await settled(env.engine, id);
      expect(env.agent().task(taskId)).toBeUndefined();
      expect(env.agent().taskHistory(taskId)).toMatchObject({ endedState: 'cancelled', clears: 1 });
      // Ended once: a second cancel is refused.
      await expect(env.engine.cancel(id)).rejects.toMatchObject({ code: 'COMMAND_STATE' });
    } finally {
      await env.cleanup();
    }
  });

  it('is ended with its parent when the parent is cancelled (its children likewise)', async () => {
    const hold = holdVerbs();
    let env = await startEnv({ commands: [gone(new Journal()), parent], verbs: hold.verbs });
    try {
      const { id } = await env.engine.submit(parent, { children: ['p1', 'p2'] });
      await whenCommitted(env.engine, async () => {
        const kids = (await env.engine.inspect(id))?.children ?? [];
        const tasks = await Promise.all(kids.map((k) => env.engine.inspect(k.id)));
        return tasks.filter((d) => d?.tasks[0]?.status === 'running').length === 2;
      });
      env = await env.restart({ commands: [parent] });
      const kids = (await env.engine.inspect(id))!.children;
      for (const k of kids)
        expect((await env.engine.inspect(k.id))?.unloadable).toMatchObject({
          code: 'UNKNOWN_COMMAND_TYPE',
        });
      await env.engine.cancel(id);
      const ended = await env.engine.waitFor(id);
      expect(ended.status).toBe('cancelled');
      for (const k of kids) {
        const child = await env.engine.waitFor(k.id);
        expect(child).toMatchObject({ status: 'failed', error: { code: 'COMMAND_UNLOADABLE' } });
        await settled(env.engine, k.id);
        expect(env.agent().taskHistory(agentTaskId(env.engine.storeId, k.id, 0))).toMatchObject({
          endedState: 'cancelled',
          clears: 1,
        });
      }
    } finally {
      await env.cleanup();
    }
  });
});
