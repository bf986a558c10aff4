import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { inProcessAgents, type InProcessBroker } from '../../../src/brokers/in-process/broker.js';
import { IpcAgentHost } from '../../../src/brokers/ipc/ipc-host.js';
import { ErrorCode } from '../../../src/core/errors.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/ipc-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

interface FixtureResult {
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: { isCocoError: boolean; code?: string; message: string };
}

/** A forked child running an IpcBroker, hosted by an IpcAgentHost over `agents`. */
class Child {
  readonly process: ChildProcess;
  readonly host: IpcAgentHost;
  readonly activity: string[] = [];
  stdout = '';
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  readonly ready: Promise<unknown>;
  #n = 0;
  readonly #waiting = new Map<number, (result: FixtureResult) => void>();

  constructor(agents: InProcessBroker, timeoutMs = 10_000) {
    this.process = fork(FIXTURE, [String(timeoutMs)], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    this.exited = once(this.process, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    this.process.stdout?.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.host = new IpcAgentHost(this.process, agents);
    this.ready = new Promise((resolve) => {
      this.process.on(
        'message',
        (message: { kind?: string; n?: number; agentId?: string } & FixtureResult) => {
          if (message.kind === 'fixture-ready') resolve(message);
          if (message.kind === 'fixture-activity') this.activity.push(message.agentId!);
          if (message.kind === 'fixture-result') this.#waiting.get(message.n!)?.(message);
        },
      );
    });
  }

  /** Makes the child call `method` on its IpcBroker. */
  call(method: string, ...args: unknown[]): Promise<FixtureResult> {
    const n = ++this.#n;
    return new Promise((resolve) => {
      this.#waiting.set(n, resolve);
      this.process.send({ kind: 'fixture-call', n, method, args });
    });
  }

  /** Makes the child call `method`, expecting success. */
  async value(method: string, ...args: unknown[]): Promise<unknown> {
    const result = await this.call(method, ...args);
    if (!result.ok)
      throw new Error(`${method} failed in the child: ${JSON.stringify(result.error)}`);
    return result.value;
  }
}

const children: Child[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.process.exitCode === null && child.process.signalCode === null)
      child.process.kill('SIGKILL');
    await child.exited;
    child.host.close();
  }
});

async function spawn(agents: InProcessBroker, timeoutMs?: number): Promise<Child> {
  const child = new Child(agents, timeoutMs);
  children.push(child);
  await child.ready;
  return child;
}

describe('IPC agent broker across a real child process', () => {
  it("serves calls, errors and activity from the parent's agents", async () => {
    const agents = inProcessAgents(['a', 'b']);
    const child = await spawn(agents);
    expect(await child.value('agentIds')).toEqual(['a', 'b']);
    expect(
      await child.value('startTasks', 'a', [
        { taskId: 't1', verb: 'noop', args: { x: 1 } },
        { taskId: 't2', verb: 'echo', args: 'hi' },
      ]),
    ).toEqual([
      { taskId: 't1', accepted: true },
      { taskId: 't2', accepted: true },
    ]);
    for (let i = 0; i < 50 && !child.activity.includes('a'); i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(child.activity).toContain('a');
    expect(await child.value('getStatuses', 'a', ['t1', 't2'])).toEqual([
      { taskId: 't1', state: 'succeeded', result: { x: 1 } },
      { taskId: 't2', state: 'succeeded', result: 'hi' },
    ]);
    const unknownAgent = await child.call('listTasks', 'nobody', '');
    expect(unknownAgent.error).toMatchObject({
      isCocoError: true,
      code: ErrorCode.AgentUnknown,
    });
    expect(unknownAgent.error?.message).toContain('"nobody"');
    expect(agents.agent('a').counters()).toMatchObject({
      startCalls: 1,
      starts: 2,
      statusCalls: 1,
    });
  });

  it('times out a call the host does not answer', async () => {
    const agents = inProcessAgents(['a']);
    const child = await spawn(agents, 200);
    agents.agent('a').faults.hang();
    const result = await child.call('getStatuses', 'a', ['t1']);
    expect(result.error).toMatchObject({ isCocoError: true, code: ErrorCode.AgentTimeout });
    agents.agent('a').faults.resume();
    expect(await child.value('agentIds')).toEqual(['a']);
  });

  it('keeps the agents and their tasks when the child is SIGKILLed', async () => {
    const agents = inProcessAgents(['a']);
    const first = await spawn(agents);
    const requests = Array.from({ length: 100 }, (_, i) => ({
      taskId: `s${i}`,
      verb: 'sleep',
      args: { ms: 60_000 },
    }));
    await first.value('startTasks', 'a', [...requests, { taskId: 'n', verb: 'noop', args: null }]);
    first.process.kill('SIGKILL');
    expect((await first.exited)[1]).toBe('SIGKILL');

    const agent = agents.agent('a');
    expect(agent.runningCount).toBe(100);
    expect(agent.counters()).toMatchObject({ startCalls: 1, starts: 101 });

    const second = await spawn(agents);
    const reports = (await second.value('getStatuses', 'a', ['s0', 's99', 'n'])) as {
      state: string;
    }[];
    expect(reports.map((r) => r.state)).toEqual(['running', 'running', 'succeeded']);
    expect(((await second.value('listTasks', 'a', 's')) as string[]).length).toBe(100);
    await second.value(
      'stopTasks',
      'a',
      requests.map((r) => r.taskId),
    );
    expect(agent.runningCount).toBe(0);
    expect(first.host.calls).toBe(1);
  });

  it('fails pending calls in the child when the channel disconnects, and lets it exit', async () => {
    const agents = inProcessAgents(['a']);
    const child = await spawn(agents);
    agents.agent('a').faults.hang();
    void child.call('getStatuses', 'a', ['t1']);
    for (let i = 0; i < 100 && agents.agent('a').faults.heldCalls === 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(agents.agent('a').faults.heldCalls).toBe(1);
    child.process.disconnect();
    const [code] = await child.exited;
    expect(code).toBe(0);
    const printed = JSON.parse(child.stdout.trim()) as FixtureResult;
    expect(printed.error).toMatchObject({ isCocoError: true, code: ErrorCode.AgentUnavailable });
    agents.agent('a').faults.resume();
  });
});
