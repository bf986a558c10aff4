/**
 * The HTTP agent broker at scale (issue 3): 1,000 simulated agents × 100 in-flight tasks each
 * (100,000 tasks), the real engine on SQLite with the HTTP broker, real HTTP on loopback.
 *
 * The agents run in a child process (one node:http server hosting every agent under
 * `/agents/<id>`, the test suite's fake agent), so `process.cpuUsage()` here measures the engine
 * and its broker only. Measured:
 * - requests per poll cycle per agent in the steady state (status polls must be ≤ 1; with the
 *   long-poll live, the broker answers most polls from it and sends a real status call every
 *   `statusRefreshMs`; idle long-polls add a request per agent per `waitMs`);
 * - the engine process's CPU time per poll cycle (all agents polled once);
 * - the latency from an agent ending a task to its command ending durably (p50, p95), with the
 *   long-poll on (`BENCH_LONG_POLL=0` measures the poll-only path for comparison).
 *
 * Run: `node --import tsx bench/agents-http.ts` (about a minute at full size on 2 vCPUs).
 * Env: BENCH_AGENTS (1000), BENCH_TASKS (100 per agent), BENCH_WINDOW_S (10), BENCH_FINISH (2000
 * tasks ended for the latency), BENCH_FINISH_RATE (200/s, spread over the agents: a latency
 * measurement, not a throughput one — at 1,000/s a loaded 2-vCPU machine saturates and the
 * figure becomes queueing), BENCH_POLL_MS (1000), BENCH_LONG_POLL (1), BENCH_STATUS_REFRESH_MS
 * (the broker's default; 0 makes every poll a request), BENCH_TRANSPORT (`node-http`, the
 * broker's default, or `fetch`: the global fetch).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { HttpBroker } from '../src/brokers/http/broker.js';
import { defineCommand } from '../src/core/command-type.js';
import type { ChangeBatch } from '../src/store/port.js';
import { FakeAgentServer } from '../test/brokers/fake-agent.js';
import { benchEngine, machine, median, report, tempDb } from './lib.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 1_000);
const TASKS = Number(process.env.BENCH_TASKS ?? 100);
const WINDOW_S = Number(process.env.BENCH_WINDOW_S ?? 10);
const FINISH = Number(process.env.BENCH_FINISH ?? 2_000);
const FINISH_RATE = Number(process.env.BENCH_FINISH_RATE ?? 200);
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 1_000);
const LONG_POLL = process.env.BENCH_LONG_POLL !== '0';
const TRANSPORT = process.env.BENCH_TRANSPORT === 'fetch' ? 'fetch' : 'node-http';
/** The broker's `longPoll.statusRefreshMs` (its default when unset; 0: every poll a request). */
const STATUS_REFRESH_MS =
  process.env.BENCH_STATUS_REFRESH_MS === undefined
    ? undefined
    : Number(process.env.BENCH_STATUS_REFRESH_MS);

const toHost = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('finish'), n: z.number(), rate: z.number() }),
  z.object({ kind: z.literal('usage') }),
]);
const fromHost = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('ready'),
    configs: z.array(z.object({ id: z.string(), url: z.string(), secret: z.string() })),
  }),
  z.object({ kind: z.literal('finished'), ends: z.array(z.tuple([z.number(), z.number()])) }),
  z.object({ kind: z.literal('usage'), cpuMs: z.number(), running: z.number() }),
]);
type FromHost = z.output<typeof fromHost>;

const agentId = (i: number): string => `agent-${i}`;

/** The child: hosts the agents and ends tasks when told. */
async function host(): Promise<void> {
  const server = await FakeAgentServer.start({
    agents: Array.from({ length: AGENTS }, (_, i) => agentId(i)),
    prefixRouting: true,
  });
  const agents = [...server.agents.values()];
  const send = (message: FromHost): void => void process.send?.(message);
  process.on('message', (raw: unknown) => {
    const message = toHost.parse(raw);
    if (message.kind === 'usage') {
      const cpu = process.cpuUsage();
      const running = agents.reduce((n, a) => n + a.running().length, 0);
      return send({ kind: 'usage', cpuMs: (cpu.user + cpu.system) / 1000, running });
    }
    // End `n` tasks at `rate` per second, one agent after the other (as independent hosts would).
    const ends: [number, number][] = [];
    const perTick = Math.max(1, Math.round(message.rate / 100));
    let k = 0;
    const tick = setInterval(() => {
      for (let j = 0; j < perTick && k < message.n; j++, k++) {
        const agent = agents[k % agents.length]!;
        const taskId = agent.running()[0];
        if (taskId === undefined) continue;
        const i = (agent.tasks.get(taskId)?.args as { i: number }).i;
        agent.onEnded = (_id, at) => ends.push([i, at]);
        agent.finish(taskId, { result: i });
        agent.onEnded = null;
      }
      if (k >= message.n) {
        clearInterval(tick);
        send({ kind: 'finished', ends });
      }
    }, 10);
  });
  process.on('disconnect', () => void server.close().then(() => process.exit(0)));
  send({ kind: 'ready', configs: server.configs() });
}

function ask<K extends FromHost['kind']>(
  child: ChildProcess,
  message: z.input<typeof toHost>,
  kind: K,
): Promise<Extract<FromHost, { kind: K }>> {
  return new Promise((resolve) => {
    const on = (raw: unknown): void => {
      const parsed = fromHost.parse(raw);
      if (parsed.kind !== kind) return;
      child.off('message', on);
      resolve(parsed as Extract<FromHost, { kind: K }>);
    };
    child.on('message', on);
    child.send(message);
  });
}

const now = (): number => performance.timeOrigin + performance.now();
const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--host'], {
    env: process.env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await new Promise<Extract<FromHost, { kind: 'ready' }>>((resolve) =>
    child.once('message', (raw) =>
      resolve(fromHost.parse(raw) as Extract<FromHost, { kind: 'ready' }>),
    ),
  );
  const broker = new HttpBroker({
    caller: 'bench-engine',
    agents: ready.configs,
    longPoll:
      LONG_POLL && STATUS_REFRESH_MS !== undefined
        ? { statusRefreshMs: STATUS_REFRESH_MS }
        : LONG_POLL,
    ...(TRANSPORT === 'fetch' ? { fetch: globalThis.fetch } : {}),
  });
  const cmd = defineCommand({
    name: 'bench.http',
    schema: z.object({ i: z.number(), agent: z.string() }),
    execute(ctx) {
      ctx.expect({ tasks: 1 });
      ctx.startTask({ agent: ctx.params.agent, verb: 'hold', args: { i: ctx.params.i } });
    },
  });
  const db = tempDb();
  const engine = benchEngine(db.path, broker, [cmd], { pollIntervalMs: POLL_MS });
  const endedAt = new Map<number, number>();
  engine.on('committed', (b: ChangeBatch) => {
    const t = now();
    for (const c of b.commandUpdates)
      if (c.endedAt !== null && !endedAt.has(c.id)) endedAt.set(c.id, t);
  });
  await engine.start();

  // Submit, agent by agent, so that each agent's tasks start in a few batched calls.
  const total = AGENTS * TASKS;
  const t0 = performance.now();
  const ids: number[] = [];
  const CHUNK = 1_000;
  for (let from = 0; from < total; from += CHUNK) {
    const items = Array.from({ length: Math.min(CHUNK, total - from) }, (_, j) => {
      const i = from + j;
      return { type: cmd, params: { i, agent: agentId(Math.floor(i / TASKS)) } };
    });
    for (const { id } of await engine.submitMany(items)) ids.push(id);
  }
  while (engine.stats().watchedTasks < total) await new Promise((r) => setTimeout(r, 50));
  const startS = (performance.now() - t0) / 1000;
  const startCalls = broker.requestCounts().start;

  // Steady state: every task running, nothing changes; the engine polls, the long-polls wait.
  await new Promise((r) => setTimeout(r, 2 * POLL_MS));
  const before = broker.requestCounts();
  const cpu0 = process.cpuUsage();
  const agentCpu0 = (await ask(child, { kind: 'usage' }, 'usage')).cpuMs;
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
  const cpu = process.cpuUsage(cpu0);
  const windowMs = performance.now() - w0;
  const agentCpu = (await ask(child, { kind: 'usage' }, 'usage')).cpuMs - agentCpu0;
  const after = broker.requestCounts();
  const statusReqs = after.status - before.status;
  const allReqs =
    statusReqs +
    (after.changes - before.changes) +
    (after.start - before.start) +
    (after.stop - before.stop) +
    (after.clear - before.clear) +
    (after.list - before.list) +
    (after.health - before.health);
  // A poll cycle polls every agent once: by a status request, or from the long-poll's view.
  const cycles = (statusReqs + after.statusFromView - before.statusFromView) / AGENTS;
  const statusPerAgentCycle = statusReqs / AGENTS / cycles;
  const allPerAgentCycle = allReqs / AGENTS / cycles;
  const cpuPerCycleMs = (cpu.user + cpu.system) / 1000 / cycles;

  // Latency: the agents end tasks at a steady rate; each command's end must become durable.
  const finished = await ask(child, { kind: 'finish', n: FINISH, rate: FINISH_RATE }, 'finished');
  const wanted = finished.ends.map(([i]) => ids[i]!);
  const deadline = Date.now() + 60_000 + 2 * POLL_MS;
  while (wanted.some((id) => !endedAt.has(id)) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  const latencies = finished.ends.flatMap(([i, at]) => {
    const end = endedAt.get(ids[i]!);
    return end === undefined ? [] : [end - at];
  });
  latencies.sort((a, b) => a - b);
  const p50 = percentile(latencies, 0.5);
  const p95 = percentile(latencies, 0.95);

  await engine.stop();
  await broker.close();
  child.disconnect();
  db.cleanup();
  report(
    {
      bench: 'agents-http',
      value: +p50.toFixed(1),
      unit: 'ms (p50, agent end -> command ended durably)',
      p95: +p95.toFixed(1),
      max: +(latencies.at(-1) ?? NaN).toFixed(1),
      ended: latencies.length,
      statusRequestsPerAgentPerCycle: +statusPerAgentCycle.toFixed(3),
      requestsPerAgentPerCycle: +allPerAgentCycle.toFixed(3),
      engineCpuMsPerCycle: +cpuPerCycleMs.toFixed(1),
      agentsCpuMsPerCycle: +(agentCpu / cycles).toFixed(1),
      agents: AGENTS,
      tasksPerAgent: TASKS,
      pollIntervalMs: POLL_MS,
      longPoll: LONG_POLL,
      statusRefreshMs: STATUS_REFRESH_MS ?? 'default',
      transport: TRANSPORT,
      startSeconds: +startS.toFixed(1),
      startRequests: startCalls,
    },
    [
      `agents-http: ${AGENTS} agents x ${TASKS} tasks = ${total} in flight over HTTP (loopback), long-poll ${LONG_POLL ? 'on' : 'off'}, transport ${TRANSPORT}, poll interval ${POLL_MS} ms (${machine()})`,
      `  submitted and started in ${startS.toFixed(1)} s with ${startCalls} start requests (${(startCalls / AGENTS).toFixed(1)} per agent)`,
      `  steady state over ${(windowMs / 1000).toFixed(1)} s: ${cycles.toFixed(1)} poll cycles; status requests per agent per cycle ${statusPerAgentCycle.toFixed(3)}, all requests ${allPerAgentCycle.toFixed(3)}`,
      `  engine process CPU per poll cycle (${AGENTS} agents polled, ${total} statuses): ${cpuPerCycleMs.toFixed(1)} ms = ${((100 * (cpu.user + cpu.system)) / 1000 / windowMs).toFixed(0)}% of a core; agents' process ${(agentCpu / cycles).toFixed(1)} ms`,
      `  agent end -> command ended durably, ${latencies.length} of ${FINISH} tasks ended at ${FINISH_RATE}/s: p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${(latencies.at(-1) ?? NaN).toFixed(1)} ms (median check ${median(latencies).toFixed(1)})`,
    ],
  );
}

if (process.argv.includes('--host')) await host();
else await main();
