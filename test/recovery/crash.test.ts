/**
 * Crash recovery: an engine in a child process is SIGKILLed at random moments while it runs a
 * mixed workload; agents (and their counters) live on in this process. After the last restart,
 * every command must have ended exactly once, every task must have been started once and
 * cleared once on its agent, and nothing may be lost or left on an agent.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { inProcessAgents, type InProcessBroker } from '../../src/brokers/in-process/broker.js';
import { IpcAgentHost } from '../../src/brokers/ipc/ipc-host.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../support/harness.js';
import { verifyWorkload } from './fixtures/verify.js';
import { randomWorkload, rng, type Submission } from './fixtures/workload.js';

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
  /** Cancels these commands; resolves once every cancel is durable (or refused). */
  cancel(batch: number, ids: readonly number[]): Promise<void>;
}

function spawnEngine(
  dbPath: string,
  broker: InProcessBroker,
  env: Record<string, string> = {},
): Running {
  const child = fork(CHILD, [dbPath], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env },
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
    else if ((m.kind === 'submitted' || m.kind === 'cancelled') && m.batch !== undefined)
      waiters.get(m.batch)?.(m.ids ?? []);
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
    cancel(batch, ids) {
      return new Promise((resolve) => {
        waiters.set(batch, () => resolve());
        child.send({ kind: 'cancel', batch, ids });
      });
    },
  };
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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
      const summary = await verifyWorkload(store, storeId, broker, AGENTS, submitted);
      console.log(
        `crash test: seed ${SEED}, ${kills} kills, ${summary.commands} commands, ${summary.tasks} tasks`,
        summary.statuses,
      );
      expect(kills).toBeGreaterThanOrEqual(20);
      expect(submitted.size).toBeGreaterThan(0);
    } finally {
      await store.close('verifier');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('SIGKILL while commands that can no longer be loaded are ended by a cancel: each ends once', async () => {
    const dir = tempDir('coco-crash-held-');
    const dbPath = join(dir, 'coco.db');
    const broker = inProcessAgents(AGENTS);
    const random = rng(SEED);
    const submitted = new Map<number, Submission>();
    const running = (): number => AGENTS.reduce((n, a) => n + broker.agent(a).runningCount, 0);
    try {
      // Six leaves whose tasks would run for a minute: only their cancel ends them.
      const first = spawnEngine(dbPath, broker);
      await first.ready;
      const items: Submission[] = Array.from({ length: 6 }, (_, i) => ({
        type: 'crash.leaf',
        params: { agent: AGENTS[i % AGENTS.length]!, ms: [60_000], failAt: null },
      }));
      const ids = await first.submit(0, items);
      ids.forEach((id, i) => submitted.set(id, items[i]!));
      await vi.waitFor(() => expect(running()).toBe(6), { timeout: 10_000, interval: 20 });
      first.child.kill('SIGKILL');
      await first.exited;

      // Their parameters no longer load: held, their tasks left running. Cancel them, and kill
      // the engine at random moments while they end.
      const strict = { COCO_CRASH_LEAF: 'strict' };
      for (let trial = 1; trial <= 6; trial++) {
        const run = spawnEngine(dbPath, broker, strict);
        await run.ready;
        if (trial === 1) expect(running()).toBe(6);
        void run.cancel(trial, ids);
        await Promise.race([delay(Math.floor(random() * 200)), run.exited]);
        run.child.kill('SIGKILL');
        await run.exited;
      }
      // The operator cancels once more: those whose cancel never became durable are held still.
      const last = spawnEngine(dbPath, broker, strict);
      await last.ready;
      await last.cancel(99, ids);
      await last.idle;
      last.child.send({ kind: 'stop' });
      expect(await last.exited).toBe(0);
    } catch (error) {
      throw new Error(`held-commands crash test failed (seed ${SEED}): ${String(error)}`, {
        cause: error,
      });
    }

    const store = sqliteStore({ path: dbPath });
    const { storeId } = await store.open('verifier');
    try {
      // Each ended once (its end handler and undo took effect once, every task was started once
      // and cleared once, nothing is left on an agent), failed with why it could not be loaded.
      await verifyWorkload(store, storeId, broker, AGENTS, submitted);
      for (const id of submitted.keys())
        expect(await store.getCommand(id)).toMatchObject({
          status: 'failed',
          compensation: 'compensated',
          error: { code: 'COMMAND_UNLOADABLE' },
        });
    } finally {
      await store.close('verifier');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
