/**
 * Crash recovery: an engine in a child process is SIGKILLed at random moments while it runs a
 * mixed workload; agents (and their counters) live on in this process. After the last restart,
 * every command must have ended exactly once, every task must have been started once and
 * cleared once on its agent, and nothing may be lost or left on an agent.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inProcessAgents, type InProcessBroker } from '../../src/agents/in-process/broker.js';
import { IpcAgentHost } from '../../src/agents/ipc/ipc-host.js';
import { isTerminal } from '../../src/core/states.js';
import { agentTaskId, type CommandRecord, type Store } from '../../src/store/port.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../support/harness.js';
import { randomWorkload, rng, type ChainParams, type Submission } from './fixtures/workload.js';

const TRIALS = Number(process.env.COCO_CRASH_TRIALS ?? 24);
const SEED = Number(process.env.COCO_CRASH_SEED ?? Date.now() % 1_000_000);
const AGENTS = ['h1', 'h2'];
const CHILD = new URL('./fixtures/engine-process.ts', import.meta.url).pathname;

interface Running {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<number | null>;
  readonly idle: Promise<void>;
  submit(batch: number, items: Submission[]): Promise<number[]>;
}

function spawnEngine(dbPath: string, broker: InProcessBroker): Running {
  const child = fork(CHILD, [dbPath], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const host = new IpcAgentHost(child, broker);
  const waiters = new Map<number, (ids: number[]) => void>();
  let readyResolve!: () => void;
  let idleResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const idle = new Promise<void>((r) => (idleResolve = r));
  child.on('message', (message: unknown) => {
    const m = message as { kind?: string; batch?: number; ids?: number[] };
    if (m.kind === 'ready') readyResolve();
    else if (m.kind === 'idle') idleResolve();
    else if (m.kind === 'submitted' && m.batch !== undefined) waiters.get(m.batch)?.(m.ids ?? []);
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      host.close();
      resolve(code);
    }),
  );
  return {
    child,
    ready,
    exited,
    idle,
    submit(batch, items) {
      return new Promise((resolve) => {
        waiters.set(batch, resolve);
        child.send({ kind: 'submit', batch, items });
      });
    },
  };
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function allCommands(store: Store): Promise<CommandRecord[]> {
  const out: CommandRecord[] = [];
  let beforeId: number | undefined;
  for (;;) {
    const page = await store.listCommands({
      limit: 1000,
      ...(beforeId === undefined ? {} : { beforeId }),
    });
    out.push(...page);
    if (page.length < 1000) return out;
    beforeId = page.at(-1)!.id;
  }
}

describe('crash recovery', () => {
  it(`SIGKILL at random moments (${TRIALS} trials): every command ends once, every task is cleared once`, async () => {
    const dir = tempDir('coco-crash-');
    const dbPath = join(dir, 'coco.db');
    const broker = inProcessAgents(AGENTS);
    const random = rng(SEED);
    const submitted = new Map<number, Submission>();
    let kills = 0;
    try {
      for (let trial = 0; trial < TRIALS; trial++) {
        const run = spawnEngine(dbPath, broker);
        if (random() < 0.2) {
          // Kill while it may still be starting (migrating, loading, reconciling).
          await Promise.race([delay(Math.floor(random() * 800)), run.exited]);
        } else {
          await run.ready;
          const items = randomWorkload(random, 3 + Math.floor(random() * 6), AGENTS);
          void run
            .submit(trial, items)
            .then((ids) => ids.forEach((id, i) => submitted.set(id, items[i]!)));
          await Promise.race([delay(Math.floor(random() * 300)), run.exited]);
        }
        run.child.kill('SIGKILL');
        await run.exited;
        kills++;
      }
      const last = spawnEngine(dbPath, broker);
      await last.ready;
      await last.idle;
      last.child.send({ kind: 'stop' });
      expect(await last.exited).toBe(0);
    } catch (error) {
      throw new Error(`crash test failed (seed ${SEED}): ${String(error)}`, { cause: error });
    }

    const store = sqliteStore({ path: dbPath });
    const { storeId } = await store.open('verifier');
    try {
      const commands = await allCommands(store);
      const byId = new Map(commands.map((c) => [c.id, c]));
      // Nothing acknowledged is lost.
      for (const id of submitted.keys())
        expect(byId.has(id), `acknowledged command ${id} exists`).toBe(true);
      const storeTasks = new Set<string>();
      const statuses: Record<string, number> = {};
      for (const c of commands) {
        statuses[`${c.type}:${c.status}`] = (statuses[`${c.type}:${c.status}`] ?? 0) + 1;
        expect(isTerminal(c.status), `command ${c.id} ended (${c.status})`).toBe(true);
        expect(c.tasksCleared, `command ${c.id} settled`).toBe(true);
        expect(c.compensation).not.toBe('compensating');
        expect(
          (await store.getEntity('count', `end:${c.id}`))?.value,
          `end handler of ${c.id} took effect once`,
        ).toBe(1);
        for (const t of await store.getTasks(c.id)) {
          const taskId = agentTaskId(storeId, c.id, t.ordinal);
          storeTasks.add(taskId);
          const history = broker.agent(t.agentId).taskHistory(taskId);
          if (history) {
            expect(history.starts, `task ${taskId} started once`).toBe(1);
            expect(history.clears, `task ${taskId} cleared once`).toBe(1);
          } else {
            expect(t.status, `never-started task ${taskId}`).toBe('cancelled');
          }
        }
        for (const u of await store.getUndo(c.id)) {
          const count = (await store.getEntity('count', `undo:${c.id}`))?.value;
          if (u.status === 'done') expect(count, `undo of ${c.id} took effect once`).toBe(1);
          else expect(count, `undo of ${c.id} not run`).toBeUndefined();
          if (c.status !== 'succeeded') expect(u.status, `undo of failed ${c.id} ran`).toBe('done');
        }
        const children = commands.filter((x) => x.parentId === c.id).sort((a, b) => a.id - b.id);
        if (c.type === 'crash.chain') {
          const stages = (c.params as ChainParams).stages.length;
          for (let k = 0; k < children.length; k++) {
            expect(
              (await store.getEntity('count', `stage:${c.id}:${k}`))?.value,
              `stage ${k} of chain ${c.id} once`,
            ).toBe(1);
          }
          if (c.status === 'succeeded') expect(children).toHaveLength(stages);
          else {
            // Stages after the failing one were never created.
            const failedAt = children.findIndex((ch) => ch.status !== 'succeeded');
            expect(failedAt).toBe(children.length - 1);
          }
        }
        if (c.type.startsWith('crash.group')) {
          const allOk = children.every((ch) => ch.status === 'succeeded');
          expect(c.status === 'succeeded', `group ${c.id} outcome matches children`).toBe(allOk);
        }
        if (c.status !== 'succeeded' && c.parentId !== null) {
          // A failed or cancelled child was compensated.
          expect(['compensated', 'none']).toContain(c.compensation);
        }
      }
      // No task of ours is left on an agent, and agents never ran a task the store does not know.
      for (const agentId of AGENTS) {
        const agent = broker.agent(agentId);
        expect(await agent.listTasks(`${storeId}-`)).toEqual([]);
        for (const id of agent.historyIds())
          expect(storeTasks.has(id), `agent task ${id} known to the store`).toBe(true);
        expect(agent.counters().clearsOfRunning).toBe(0);
      }
      console.log(
        `crash test: seed ${SEED}, ${kills} kills, ${commands.length} commands, ${storeTasks.size} tasks`,
        statuses,
      );
      expect(kills).toBeGreaterThanOrEqual(20);
      expect(submitted.size).toBeGreaterThan(0);
    } finally {
      await store.close('verifier');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
