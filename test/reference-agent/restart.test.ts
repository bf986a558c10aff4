/**
 * The task table survives the agent: a SIGKILLed agent process restarted on the same data
 * directory reports every task, and those that were running as failed with AGENT_RESTARTED.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AGENT_RESTARTED,
  createAgentServer,
  TASKS_FILE,
  TaskTable,
  type Verb,
} from '../../src/reference-agent/index.js';
import { ErrorCode } from '../../src/core/errors.js';
import { agent, captureLogger, cleanup, Client, SECRET, tempDir } from './support.js';

afterEach(cleanup);

const CHILD = fileURLToPath(new URL('./fixtures/agent-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('restart persistence', () => {
  it('after a SIGKILL, a new boot reports every task; running ones failed with AGENT_RESTARTED', async () => {
    const dataDir = tempDir();
    const child = fork(CHILD, [dataDir, SECRET], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const exited = once(child, 'exit');
    try {
      const [ready] = (await once(child, 'message')) as [{ url: string; bootId: string }];
      const first = new Client(ready.url);
      await first.start([
        { taskId: 'done', verb: 'noop', args: { kept: true } },
        { taskId: 'boom', verb: 'fail', args: { message: 'on purpose' } },
        { taskId: 'long', verb: 'sleep', args: { ms: 600_000 } },
        { taskId: 'halted', verb: 'sleep', args: { ms: 600_000 } },
      ]);
      await first.stop(['halted']);
      await vi.waitFor(async () => expect((await first.one('boom')).state).toBe('failed'));
      expect((await first.one('long')).state).toBe('running');
      child.kill('SIGKILL');
      await exited;

      const { agent: second, client } = await agent({ dataDir });
      const health = await client.health();
      expect(health.bootId).not.toBe(ready.bootId);
      expect(second.previousBootId).toBe(ready.bootId);
      expect(health.tasks).toBe(4);
      const { tasks } = await client.status(['done', 'boom', 'long', 'halted']);
      expect(tasks[0]).toEqual({ taskId: 'done', state: 'succeeded', result: { kept: true } });
      expect(tasks[1]).toEqual({
        taskId: 'boom',
        state: 'failed',
        error: { code: ErrorCode.TaskFailed, message: 'on purpose' },
      });
      expect(tasks[2]).toMatchObject({
        taskId: 'long',
        state: 'failed',
        error: {
          code: AGENT_RESTARTED,
          details: { previousBootId: ready.bootId, bootId: second.bootId },
        },
      });
      expect(tasks[2]!.error!.message).toContain(`${ready.bootId} → ${second.bootId}`);
      expect(tasks[3]).toMatchObject({
        taskId: 'halted',
        state: 'cancelled',
        error: { code: ErrorCode.Cancelled },
      });
      // The feed of the new boot starts with every task.
      const changes = await client.changes({ cursor: 7, bootId: ready.bootId });
      expect(changes.tasks.map((t) => t.taskId)).toEqual(['done', 'boom', 'long', 'halted']);
      await second.close();

      // A further restart changes nothing: the task is no longer running.
      const { client: third } = await agent({ dataDir });
      expect(await third.one('long')).toEqual(tasks[2]);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
  });

  it('a clean close aborts running verbs; the next start fails their tasks; progress is on disk', async () => {
    const dataDir = tempDir();
    let aborted = false;
    const hold: Verb = (_args, ctx) => {
      ctx.progress(37);
      return new Promise((_resolve, reject) =>
        ctx.signal.addEventListener('abort', () => {
          aborted = true;
          reject(new Error('aborted'));
        }),
      );
    };
    const first = createAgentServer({
      id: 'agent-1',
      secret: SECRET,
      dataDir,
      logger: captureLogger().logger,
      verbs: { hold },
    });
    first.table.start([{ taskId: 'h', verb: 'hold', args: null }]);
    expect(first.table.status('h')).toEqual({ taskId: 'h', state: 'running', progress: 37 });
    await first.close();
    expect(aborted).toBe(true);
    const db = new Database(join(dataDir, TASKS_FILE), { readonly: true });
    try {
      expect(db.prepare('SELECT state, progress FROM tasks').all()).toEqual([
        { state: 'running', progress: 37 },
      ]);
    } finally {
      db.close();
    }

    const { agent: second, client } = await agent({ dataDir, verbs: { hold } });
    expect(second.previousBootId).toBe(first.bootId);
    expect(await client.one('h')).toMatchObject({
      state: 'failed',
      error: { code: AGENT_RESTARTED },
    });
  });

  it('one agent per data directory, and a directory belongs to one agent id', async () => {
    const dataDir = tempDir();
    const log = captureLogger().logger;
    const base = { dataDir, bootId: 'b1', verbs: {}, log, lockWaitMs: 0 };
    const table = TaskTable.open({ ...base, agentId: 'agent-1' });
    try {
      expect(() => TaskTable.open({ ...base, agentId: 'agent-1', bootId: 'b2' })).toThrow(
        expect.objectContaining({ code: ErrorCode.StoreInUse }),
      );
    } finally {
      table.close();
    }
    expect(() => TaskTable.open({ ...base, agentId: 'agent-2', bootId: 'b3' })).toThrow(
      expect.objectContaining({ code: ErrorCode.InvalidOptions }),
    );
    TaskTable.open({ ...base, agentId: 'agent-1', bootId: 'b4' }).close();
  });
});
