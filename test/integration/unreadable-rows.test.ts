/**
 * Commands whose rows cannot all be read (bad JSON or an unknown status written into the file):
 * the engine starts, reports each, and leaves them as they are — their tasks keep running on
 * their agents (reconciliation must not take them for strangers), and a command is never run
 * from a partial picture of its rows (a task or a child missing).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { agentTaskId } from '../../src/core/records.js';
import type { EngineEventMap } from '../../src/engine/events.js';
import {
  assertNoLeakedEngines,
  holdVerbs,
  startEnv,
  whenCommitted,
  type TestEnv,
} from '../support/harness.js';
import { raw, rewriteRow, setCommandColumn } from '../support/sqlite-rows.js';

afterEach(assertNoLeakedEngines);

const hold = holdVerbs();
/** `tasks` tasks held under `key` (released by the test). */
const holding = defineCommand({
  name: 'rows.holding',
  schema: z.object({ key: z.string(), tasks: z.number().int().min(1).default(1) }),
  execute(ctx) {
    ctx.expect({ tasks: ctx.params.tasks });
    for (let i = 0; i < ctx.params.tasks; i++)
      ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.key } });
  },
});
const leaf = defineCommand({
  name: 'rows.leaf',
  schema: z.object({}),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});
/** A child that ends at once, then a task held under `key`. */
const parent = defineCommand({
  name: 'rows.parent',
  schema: z.object({ key: z.string() }),
  execute(ctx) {
    ctx.addChild(leaf, {});
  },
  next(ctx) {
    if (ctx.command.stage === 1)
      ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.key } });
  },
});
/** `holding`, its parameters checked by an asynchronous schema (at a restart, after the read). */
const checkedLater = defineCommand({
  name: 'rows.checked-later',
  schema: z
    .object({ key: z.string(), n: z.number() })
    .refine(async (p) => Promise.resolve(p.n >= 0), 'negative'),
  execute(ctx) {
    ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.key } });
  },
});
const commands = [holding, leaf, parent, checkedLater];

type LoadFailed = EngineEventMap['load-failed'];

/** Resolves once every task of the command is running on its agent (durably). */
async function running(env: TestEnv, id: number, tasks: number): Promise<void> {
  await whenCommitted(env.engine, async () => {
    const d = await env.engine.inspect(id);
    return d?.tasks.filter((t) => t.status === 'running').length === tasks;
  });
}

/**
 * Restarts the engine after `corrupt` rewrote rows of the file; returns the new environment,
 * the load failures it reported, and proof that it reconciled agent a1 and runs new work there.
 */
async function restartCorrupted(
  env: TestEnv,
  corrupt: (dbPath: string) => void,
): Promise<{ env: TestEnv; failures: LoadFailed[] }> {
  const failures: LoadFailed[] = [];
  env.agent().resetCounters();
  const next = await env.restart({
    beforeStart: (e) => {
      corrupt(env.dbPath);
      e.on('load-failed', (f) => failures.push(f));
    },
  });
  // New work on the same agent: its reconciliation is done once this task has run there.
  const other = await next.engine.submit(leaf, {});
  expect((await next.engine.waitFor(other.id)).status).toBe('succeeded');
  return { env: next, failures };
}

describe('commands whose rows cannot be read', () => {
  it('a command row that cannot be read: reported, and its running task left alone', async () => {
    let env = await startEnv({ commands, verbs: hold.verbs });
    try {
      const { id } = await env.engine.submit(holding, { key: 'unreadable-1' });
      await running(env, id, 1);
      const taskId = agentTaskId(env.engine.storeId, id, 0);
      const r = await restartCorrupted(env, (path) =>
        setCommandColumn(path, id, 'params', '{"broken'),
      );
      env = r.env;
      expect(r.failures).toEqual([
        {
          commandId: id,
          error: expect.objectContaining({
            code: 'CORRUPT_ROW',
            message: expect.stringMatching(new RegExp(`commands row ${id} .*params`)) as unknown,
          }) as unknown,
        },
      ]);
      expect(env.agent().counters().stops).toBe(0);
      expect(env.agent().task(taskId)?.state).toBe('running');
    } finally {
      await env.cleanup();
    }
  });

  it('parameters refused at the restart, by an asynchronous schema or none: each command reported once, in row order, and held', async () => {
    let env = await startEnv({ commands, verbs: hold.verbs });
    try {
      const later = await env.engine.submit(checkedLater, { key: 'unreadable-4', n: 1 });
      const now = await env.engine.submit(holding, { key: 'unreadable-4' });
      const fine = await env.engine.submit(checkedLater, { key: 'unreadable-4', n: 2 });
      const ids = [later.id, now.id, fine.id];
      await whenCommitted(env.engine, async () => {
        const all = await Promise.all(ids.map((id) => env.engine.inspect(id)));
        return all.every((d) => d?.tasks[0]?.status === 'running');
      });
      const r = await restartCorrupted(env, (path) => {
        setCommandColumn(path, later.id, 'params', '{"key":"unreadable-4","n":-1}');
        setCommandColumn(path, now.id, 'params', '{"key":7}');
      });
      env = r.env;
      expect(r.failures.map((f) => f.commandId)).toEqual([later.id, now.id]);
      expect(r.failures[0]?.error.message).toMatch(/negative/);
      expect(env.agent().counters().stops).toBe(0);
      for (const id of ids)
        expect(env.agent().task(agentTaskId(env.engine.storeId, id, 0))?.state).toBe('running');
      // The held ones are not run when their tasks end; the one whose parameters passed is.
      hold.release('unreadable-4');
      expect((await env.engine.waitFor(fine.id)).status).toBe('succeeded');
      expect((await env.engine.get(later.id))?.status).toBe('waiting');
      expect((await env.engine.get(now.id))?.status).toBe('waiting');
    } finally {
      await env.cleanup();
    }
  });

  it('a task row that cannot be read: the command is not run half, none of its tasks stopped', async () => {
    let env = await startEnv({ commands, verbs: hold.verbs });
    try {
      const { id } = await env.engine.submit(holding, { key: 'unreadable-2', tasks: 2 });
      await running(env, id, 2);
      const r = await restartCorrupted(env, (path) =>
        raw(path, (db) =>
          rewriteRow(db, 'tasks', 'command_id = ? AND ordinal = 1', [id], 'status', 'lost'),
        ),
      );
      env = r.env;
      expect(r.failures).toEqual([
        {
          commandId: id,
          error: expect.objectContaining({
            code: 'CORRUPT_ROW',
            message: expect.stringMatching(new RegExp(`tasks row ${id}/1 .*status`)) as unknown,
          }) as unknown,
        },
      ]);
      expect(env.agent().counters().stops).toBe(0);
      for (const ordinal of [0, 1])
        expect(env.agent().task(agentTaskId(env.engine.storeId, id, ordinal))?.state).toBe(
          'running',
        );
      // Its tasks ending does not run it on a partial picture either.
      hold.release('unreadable-2');
      const again = await env.engine.submit(leaf, {});
      await env.engine.waitFor(again.id);
      expect((await env.engine.get(id))?.status).toBe('waiting');
    } finally {
      await env.cleanup();
    }
  });

  it('a child row that cannot be read: its parent is not run without it', async () => {
    let env = await startEnv({ commands, verbs: hold.verbs });
    try {
      const { id } = await env.engine.submit(parent, { key: 'unreadable-3' });
      await running(env, id, 1);
      const child = (await env.engine.inspect(id))!.children[0]!;
      expect(child.status).toBe('succeeded');
      const r = await restartCorrupted(env, (path) =>
        setCommandColumn(path, child.id, 'status', 'exploded'),
      );
      env = r.env;
      expect(r.failures.map((f) => f.commandId).sort()).toEqual([id, child.id].sort());
      expect(r.failures.find((f) => f.commandId === id)?.error).toMatchObject({
        code: 'CORRUPT_ROW',
        message: expect.stringMatching(
          new RegExp(`command ${id} is not loaded: .*commands row ${child.id}`),
        ) as unknown,
      });
      expect(env.agent().counters().stops).toBe(0);
      const taskId = agentTaskId(env.engine.storeId, id, 0);
      expect(env.agent().task(taskId)?.state).toBe('running');
      hold.release('unreadable-3');
      const again = await env.engine.submit(leaf, {});
      await env.engine.waitFor(again.id);
      // Without its child's row it would succeed as if the child had never been: it waits.
      expect((await env.engine.get(id))?.status).toBe('waiting');
    } finally {
      await env.cleanup();
    }
  });
});
