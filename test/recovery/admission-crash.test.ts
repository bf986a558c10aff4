/**
 * Admission across a crash: an engine in a child process is SIGKILLed while 400 tasks wait
 * `queued` for an agent with a limit of 4 (the agent, with its own counters, lives on in this
 * process). After the restart the limit still holds on the agent's side, the queue is taken up
 * in the same order (priority, then submission), and no task starts twice.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { IpcAgentHost } from '../../src/brokers/ipc/ipc-host.js';
import { tempDir } from '../support/harness.js';

const CHILD = new URL('./fixtures/admission-process.ts', import.meta.url).pathname;
const LIMIT = 4;
const TOTAL = 404;

interface Child {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  next(kind: string, send?: object): Promise<{ ids?: number[] }>;
}

function spawn(dbPath: string, broker: ReturnType<typeof inProcessAgents>): Child {
  const child = fork(CHILD, [dbPath], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const host = new IpcAgentHost(child, broker);
  const seen = new Map<string, { ids?: number[] }>();
  const waiting = new Map<string, (m: { ids?: number[] }) => void>();
  child.on('message', (message: unknown) => {
    const m = message as { kind: string; ids?: number[] };
    const w = waiting.get(m.kind);
    if (w) {
      waiting.delete(m.kind);
      w(m);
    } else seen.set(m.kind, m);
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      host.close();
      resolve(code);
    }),
  );
  return {
    child,
    exited,
    next(kind, message) {
      const had = seen.get(kind);
      if (had && !message) {
        seen.delete(kind);
        return Promise.resolve(had);
      }
      seen.delete(kind);
      const p = new Promise<{ ids?: number[] }>((resolve) => waiting.set(kind, resolve));
      if (message) child.send(message);
      return p;
    },
  };
}

describe('admission across a SIGKILL of the node', () => {
  it('keeps the limit and the order, and starts nothing twice', async () => {
    const dir = tempDir('coco-adm-crash-');
    const dbPath = join(dir, 'coco.db');
    let running = 0;
    let max = 0;
    let auto = false;
    const starts: number[] = [];
    const held: (() => void)[] = [];
    const broker = inProcessAgents(['h1'], {
      verbs: {
        work: (args) => {
          running++;
          max = Math.max(max, running);
          starts.push((args as { n: number }).n);
          return new Promise((resolve) => {
            const done = (): void => {
              running--;
              resolve({ ok: true });
            };
            if (auto) setImmediate(done);
            else held.push(done);
          });
        },
      },
    });
    let second: Child | null = null;
    try {
      const first = spawn(dbPath, broker);
      await first.next('ready');
      const { ids = [] } = await first.next('submitted', { kind: 'submit', count: TOTAL });
      expect(ids).toHaveLength(TOTAL);
      await first.next('queued', { kind: 'queued', count: TOTAL - LIMIT });
      expect(starts).toHaveLength(LIMIT);
      first.child.kill('SIGKILL');
      await first.exited;

      second = spawn(dbPath, broker);
      await second.next('ready');
      // The 4 tasks still run on the agent: they hold their slots again, nothing else starts.
      expect(starts).toHaveLength(LIMIT);
      auto = true;
      for (const done of held.splice(0)) done();
      await second.next('idle');
      expect(max).toBe(LIMIT);
      expect(starts).toHaveLength(TOTAL);
      // Every task started once, on the agent's own count.
      expect(new Set(starts).size).toBe(TOTAL);
      const agent = broker.agent('h1');
      const prefix = agent.historyIds()[0]!.replace(/-\d+-\d+$/, '');
      for (const id of ids) expect(agent.taskHistory(`${prefix}-${id}-0`)?.starts).toBe(1);
      // The 400 that waited: odd n (priority 1) first, then even, each in submission order.
      const waited = starts.slice(LIMIT);
      expect(waited).toEqual(waited.slice().sort((a, b) => (b % 2) - (a % 2) || a - b));
      second.child.kill('SIGTERM');
      await second.exited;
    } finally {
      second?.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
