/**
 * The HTTP agent broker at scale (issue 3): 1,000 simulated agents × 100 in-flight tasks each
 * (100,000 tasks), the real engine on SQLite with the HTTP broker, real HTTP on loopback.
 *
 * The agents run in child processes (each one node:http server hosting its agents under
 * `/agents/<id>`, the test suite's fake agent), so `process.cpuUsage()` here measures the engine
 * and its broker only. Measured:
 * - requests per poll cycle per agent in the steady state (status polls must be ≤ 1; with the
 *   long-poll live, the broker answers most polls from it and sends a real status call every
 *   `statusRefreshMs`; idle long-polls add a request per agent per `waitMs`);
 * - the engine process's CPU time per poll cycle (all agents polled once);
 * - the latency from an agent ending a task to its command ending durably (p50, p95), with the
 *   long-poll on (`BENCH_LONG_POLL=0` measures the poll-only path for comparison).
 *
 * Also the engine process's heap and RSS with every task in flight (after a full GC when run
 * with `--expose-gc`), and the start of all tasks (seconds, engine CPU per task started).
 *
 * Run: `node --import tsx bench/agents-http.ts` (about a minute at full size on 2 vCPUs). At
 * 10,000 agents × 100 tasks (1,000,000 in flight, issue 15) give the heaps room:
 * `BENCH_AGENTS=10000 BENCH_AGENT_PROCS=2 node --expose-gc --max-old-space-size=8192
 * dist/bench/agents-http.js` (the agents' processes inherit the flags).
 * Env: BENCH_AGENTS (1000), BENCH_TASKS or BENCH_TASKS_PER_AGENT (100 per agent),
 * BENCH_AGENT_PROCS (1: the agents' processes, each hosting an equal share of the agents on its
 * own port), BENCH_WINDOW_S (10), BENCH_FINISH (2000
 * tasks ended for the latency), BENCH_FINISH_RATE (200/s, spread over the agents: a latency
 * measurement, not a throughput one — at 1,000/s a loaded 2-vCPU machine saturates and the
 * figure becomes queueing), BENCH_POLL_MS (1000), BENCH_LONG_POLL (1), BENCH_STATUS_REFRESH_MS
 * (the broker's default; 0 makes every poll a request), BENCH_STATUS_REFRESHES_PER_S (the broker's
 * `statusRefreshesPerSecond`, its default when unset), BENCH_TRANSPORT (`node-http`, the
 * broker's default, or `fetch`: the global fetch), BENCH_MAX_SOCKETS (connections per agents'
 * process, unbounded by default), BENCH_PROGRESS_S (10: how often the start says how far it got),
 * BENCH_SAVE_AGENTS (1; 0 leaves the agents' rows unsaved), BENCH_MAX_CALLS (the broker's
 * `maxConcurrentCalls`, its default when unset), BENCH_START_LIMIT_S (none: give up a start that
 * takes longer, saying how far it got).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { HttpBroker } from '../src/brokers/http/broker.js';
import { nodeHttpFetch } from '../src/brokers/http/transport.js';
import { defineCommand } from '../src/core/command-type.js';
import type { ChangeBatch } from '../src/store/port.js';
import { FakeAgentServer } from '../test/brokers/fake-agent.js';
import { sqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { benchEngine, machine, median, report, tempDb } from './lib.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 1_000);
const TASKS = Number(process.env.BENCH_TASKS ?? process.env.BENCH_TASKS_PER_AGENT ?? 100);
const PROCS = Math.max(1, Number(process.env.BENCH_AGENT_PROCS ?? 1));
/**
 * Connections per agents' process (each is one host to the broker's pool) for calls other than
 * long-polls: unset, the broker's own transport. Since the broker bounds its calls in flight
 * (`maxConcurrentCalls`), the engine holds one connection per agent (its long-poll) plus one per
 * call slot, so this is no longer needed to stay under `ulimit -n`.
 */
const MAX_SOCKETS =
  process.env.BENCH_MAX_SOCKETS === undefined ? undefined : Number(process.env.BENCH_MAX_SOCKETS);
/** `BENCH_SAVE_AGENTS=0`: agent rows are not saved (to see the rest without their writes). */
const SAVE_AGENTS = process.env.BENCH_SAVE_AGENTS !== '0';
/** The broker's `maxConcurrentCalls` (its default when unset). */
const MAX_CALLS =
  process.env.BENCH_MAX_CALLS === undefined ? undefined : Number(process.env.BENCH_MAX_CALLS);
/** How often the start phase says how far it got (it takes minutes at 1,000,000 tasks). */
const PROGRESS_MS = Number(process.env.BENCH_PROGRESS_S ?? 10) * 1000;
/** `BENCH_START_LIMIT_S`: give up (exit 1, saying how far it got) when the start takes longer. */
const START_LIMIT_MS = Number(process.env.BENCH_START_LIMIT_S ?? Infinity) * 1000;
const WINDOW_S = Number(process.env.BENCH_WINDOW_S ?? 10);
const FINISH = Number(process.env.BENCH_FINISH ?? 2_000);
const FINISH_RATE = Number(process.env.BENCH_FINISH_RATE ?? 200);
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 1_000);
const LONG_POLL = process.env.BENCH_LONG_POLL !== '0';
const TRANSPORT = process.env.BENCH_TRANSPORT === 'fetch' ? 'fetch' : 'node-http';
/** The broker's `longPoll.statusRefreshesPerSecond` (its default when unset). */
const REFRESHES_PER_S =
  process.env.BENCH_STATUS_REFRESHES_PER_S === undefined
    ? undefined
    : Number(process.env.BENCH_STATUS_REFRESHES_PER_S);
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
  z.object({
    kind: z.literal('usage'),
    cpuMs: z.number(),
    running: z.number(),
    rssBytes: z.number(),
  }),
]);
type FromHost = z.output<typeof fromHost>;

const agentId = (i: number): string => `agent-${i}`;

/** The agents child number `part` of {@link PROCS} hosts: an equal share, in id order. */
const shareOf = (part: number): { from: number; to: number } => ({
  from: Math.floor((part * AGENTS) / PROCS),
  to: Math.floor(((part + 1) * AGENTS) / PROCS),
});

/** The child: hosts its share of the agents and ends tasks when told. */
async function host(part: number): Promise<void> {
  const { from, to } = shareOf(part);
  const server = await FakeAgentServer.start({
    agents: Array.from({ length: to - from }, (_, i) => agentId(from + i)),
    prefixRouting: true,
  });
  const agents = [...server.agents.values()];
  const send = (message: FromHost): void => void process.send?.(message);
  process.on('message', (raw: unknown) => {
    const message = toHost.parse(raw);
    if (message.kind === 'usage') {
      const cpu = process.cpuUsage();
      const running = agents.reduce((n, a) => n + a.running().length, 0);
      return send({
        kind: 'usage',
        cpuMs: (cpu.user + cpu.system) / 1000,
        running,
        rssBytes: process.memoryUsage.rss(),
      });
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

/** Asks every agents' process the same question; their answers in order. */
function askAll<K extends FromHost['kind']>(
  children: readonly ChildProcess[],
  message: (part: number) => z.input<typeof toHost>,
  kind: K,
): Promise<Extract<FromHost, { kind: K }>[]> {
  return Promise.all(children.map((child, part) => ask(child, message(part), kind)));
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

/** The engine process's memory, after a full collection when `--expose-gc` allows one. */
function memory(): { heapBytes: number; rssBytes: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { heapBytes: m.heapUsed, rssBytes: m.rss };
}

/** The engine process's open file descriptors (sockets mostly; Linux only, else NaN). */
function openFds(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return NaN;
  }
}

const MB = 1024 * 1024;
const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

async function main(): Promise<void> {
  const children = Array.from({ length: PROCS }, (_, part) =>
    fork(fileURLToPath(import.meta.url), ['--host', String(part)], {
      env: process.env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const readies = await Promise.all(
    children.map(
      (child) =>
        new Promise<Extract<FromHost, { kind: 'ready' }>>((resolve) =>
          child.once('message', (raw) =>
            resolve(fromHost.parse(raw) as Extract<FromHost, { kind: 'ready' }>),
          ),
        ),
    ),
  );
  const transport =
    TRANSPORT === 'fetch'
      ? globalThis.fetch
      : MAX_SOCKETS === undefined
        ? undefined
        : nodeHttpFetch({ maxSockets: MAX_SOCKETS });
  const broker = new HttpBroker({
    caller: 'bench-engine',
    agents: readies.flatMap((r) => r.configs),
    longPoll: LONG_POLL
      ? {
          ...(STATUS_REFRESH_MS === undefined ? {} : { statusRefreshMs: STATUS_REFRESH_MS }),
          ...(REFRESHES_PER_S === undefined ? {} : { statusRefreshesPerSecond: REFRESHES_PER_S }),
        }
      : false,
    ...(transport === undefined ? {} : { fetch: transport }),
    ...(MAX_CALLS === undefined ? {} : { maxConcurrentCalls: MAX_CALLS }),
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
  const store = sqliteStore({ path: db.path, synchronous: 'FULL' });
  // The SQLite store saves an agent's row on the event loop, one durable transaction each
  // (src/store/sqlite/agents.ts): at 10,000 agents coming up at once that is 10,000 fsyncs in a row.
  if (!SAVE_AGENTS) {
    // The engine saves agent rows in batches (`saveAgents`, engine/agent-rows.ts).
    store.saveAgent = () => Promise.resolve();
    store.saveAgents = () => Promise.resolve();
  }
  const engine = benchEngine(db.path, broker, [cmd], { pollIntervalMs: POLL_MS }, { store });
  const endedAt = new Map<number, number>();
  engine.on('committed', (b: ChangeBatch) => {
    const t = now();
    for (const c of b.commandUpdates)
      if (c.endedAt !== null && !endedAt.has(c.id)) endedAt.set(c.id, t);
  });
  await engine.start();
  const mem0 = memory();

  // Submit, agent by agent, so that each agent's tasks start in a few batched calls.
  const total = AGENTS * TASKS;
  const startCpu0 = process.cpuUsage();
  const t0 = performance.now();
  const ids: number[] = [];
  const CHUNK = 1_000;
  // At 1,000,000 tasks the start takes minutes: say how it goes.
  const lag = monitorEventLoopDelay({ resolution: 20 });
  lag.enable();
  const progress = setInterval(() => {
    const c = broker.requestCounts();
    const loopLag = `loop delay p50 ${(lag.percentile(50) / 1e6).toFixed(0)} ms, max ${(lag.max / 1e6).toFixed(0)} ms`;
    lag.reset();
    console.log(
      `  … ${((performance.now() - t0) / 1000).toFixed(0)} s: ${ids.length} submitted, ${engine.stats().watchedTasks} started; ${loopLag}; requests ${JSON.stringify(c)}; call slots ${JSON.stringify(broker.callSlots())}; ${openFds()} fds; load ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
  }, PROGRESS_MS);
  // Gives up a start past BENCH_START_LIMIT_S, saying how far it got (a CPU profile is written).
  const giveUpIfLate = (): void => {
    if (performance.now() - t0 <= START_LIMIT_MS) return;
    const cpu = process.cpuUsage(startCpu0);
    console.log(
      `agents-http: start not done after ${START_LIMIT_MS / 1000} s: ${ids.length} submitted, ${engine.stats().watchedTasks} of ${total} started; engine CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s; heap ${(process.memoryUsage().heapUsed / MB).toFixed(0)} MB, RSS ${(process.memoryUsage.rss() / MB).toFixed(0)} MB; ${openFds()} fds; requests ${JSON.stringify(broker.requestCounts())}; call slots ${JSON.stringify(broker.callSlots())}`,
    );
    for (const child of children) child.kill();
    process.exit(1);
  };
  for (let from = 0; from < total; from += CHUNK) {
    giveUpIfLate();
    const items = Array.from({ length: Math.min(CHUNK, total - from) }, (_, j) => {
      const i = from + j;
      return { type: cmd, params: { i, agent: agentId(Math.floor(i / TASKS)) } };
    });
    for (const { id } of await engine.submitMany(items)) ids.push(id);
  }
  while (engine.stats().watchedTasks < total) {
    giveUpIfLate();
    await new Promise((r) => setTimeout(r, 50));
  }
  clearInterval(progress);
  lag.disable();
  const startS = (performance.now() - t0) / 1000;
  const startCpu = process.cpuUsage(startCpu0);
  const startCpuUsPerTask = (startCpu.user + startCpu.system) / total;
  const startCalls = broker.requestCounts().start;

  // Steady state: every task running, nothing changes; the engine polls, the long-polls wait.
  await new Promise((r) => setTimeout(r, 2 * POLL_MS));
  const before = broker.requestCounts();
  const polls0 = engine.pollCounts();
  const cpu0 = process.cpuUsage();
  const usage = async (): Promise<{ cpuMs: number; rssBytes: number; running: number }> => {
    const all = await askAll(children, () => ({ kind: 'usage' }), 'usage');
    return {
      cpuMs: sum(all.map((u) => u.cpuMs)),
      rssBytes: sum(all.map((u) => u.rssBytes)),
      running: sum(all.map((u) => u.running)),
    };
  };
  const agentCpu0 = (await usage()).cpuMs;
  const w0 = performance.now();
  await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
  const cpu = process.cpuUsage(cpu0);
  const windowMs = performance.now() - w0;
  const agentUsage = await usage();
  const agentCpu = agentUsage.cpuMs - agentCpu0;
  // With every task in flight, after the window (outside the CPU measurement: a full GC).
  const mem1 = memory();
  const fds = openFds();
  const heapPerTask = (mem1.heapBytes - mem0.heapBytes) / total;
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
  // A poll cycle polls every agent once (the dispatcher's count): by a status request, from the
  // long-poll's view, or — its changes pushed — by asking only about tasks no report vouched for.
  const polls1 = engine.pollCounts();
  const cycles = (polls1.polls - polls0.polls) / AGENTS;
  const tasksAskedPerCycle = (polls1.tasks - polls0.tasks) / cycles;
  const statusPerAgentCycle = statusReqs / AGENTS / cycles;
  const allPerAgentCycle = allReqs / AGENTS / cycles;
  const cpuPerCycleMs = (cpu.user + cpu.system) / 1000 / cycles;

  // Latency: the agents end tasks at a steady rate; each command's end must become durable.
  const finished = {
    ends: (
      await askAll(
        children,
        (part) => {
          const { from, to } = shareOf(part);
          const share = (to - from) / AGENTS;
          return { kind: 'finish', n: Math.round(FINISH * share), rate: FINISH_RATE * share };
        },
        'finished',
      )
    ).flatMap((f) => f.ends),
  };
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
  if (transport !== undefined && 'destroy' in transport) transport.destroy();
  for (const child of children) child.disconnect();
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
      tasksAskedPerCycle: Math.round(tasksAskedPerCycle),
      agentsCpuMsPerCycle: +(agentCpu / cycles).toFixed(1),
      engineCpuShare: +((cpu.user + cpu.system) / 1000 / windowMs).toFixed(3),
      agentsCpuShare: +(agentCpu / windowMs).toFixed(3),
      engineHeapMB: Math.round(mem1.heapBytes / MB),
      engineRssMB: Math.round(mem1.rssBytes / MB),
      engineHeapBytesPerTask: Math.round(heapPerTask),
      agentsRssMB: Math.round(agentUsage.rssBytes / MB),
      engineOpenFds: fds,
      agents: AGENTS,
      agentProcesses: PROCS,
      tasksPerAgent: TASKS,
      pollIntervalMs: POLL_MS,
      longPoll: LONG_POLL,
      statusRefreshMs: STATUS_REFRESH_MS ?? 'default',
      statusRefreshesPerSecond: REFRESHES_PER_S ?? 'default',
      transport: TRANSPORT,
      maxSocketsPerAgentsProcess: MAX_SOCKETS ?? 'unbounded',
      agentRowsSaved: SAVE_AGENTS,
      maxConcurrentCalls: MAX_CALLS ?? 'default',
      callSlots: broker.callSlots(),
      loadAverage: loadavg().map((l) => +l.toFixed(2)),
      startSeconds: +startS.toFixed(1),
      startRequests: startCalls,
      startCpuUsPerTask: Math.round(startCpuUsPerTask),
    },
    [
      `agents-http: ${AGENTS} agents (in ${PROCS} process${PROCS > 1 ? 'es' : ''}) x ${TASKS} tasks = ${total} in flight over HTTP (loopback), long-poll ${LONG_POLL ? 'on' : 'off'}, transport ${TRANSPORT}, poll interval ${POLL_MS} ms (${machine()})`,
      `  submitted and started in ${startS.toFixed(1)} s with ${startCalls} start requests (${(startCalls / AGENTS).toFixed(1)} per agent); engine CPU ${startCpuUsPerTask.toFixed(0)} µs per task started`,
      `  steady state over ${(windowMs / 1000).toFixed(1)} s: ${cycles.toFixed(1)} poll cycles (${Math.round(tasksAskedPerCycle)} task ids asked about per cycle); status requests per agent per cycle ${statusPerAgentCycle.toFixed(3)}, all requests ${allPerAgentCycle.toFixed(3)}`,
      `  engine process CPU per poll cycle (${AGENTS} agents polled, ${total} statuses): ${cpuPerCycleMs.toFixed(1)} ms = ${((100 * (cpu.user + cpu.system)) / 1000 / windowMs).toFixed(0)}% of a core; agents' processes ${(agentCpu / cycles).toFixed(1)} ms = ${((100 * agentCpu) / windowMs).toFixed(0)}% of a core`,
      `  engine memory with ${total} in flight: heap ${(mem1.heapBytes / MB).toFixed(0)} MB (${heapPerTask.toFixed(0)} B per task over the started engine), RSS ${(mem1.rssBytes / MB).toFixed(0)} MB, ${fds} open file descriptors; agents' processes RSS ${(agentUsage.rssBytes / MB).toFixed(0)} MB`,
      `  agent end -> command ended durably, ${latencies.length} of ${FINISH} tasks ended at ${FINISH_RATE}/s: p50 ${p50.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${(latencies.at(-1) ?? NaN).toFixed(1)} ms (median check ${median(latencies).toFixed(1)})`,
    ],
  );
}

const hostAt = process.argv.indexOf('--host');
if (hostAt >= 0) await host(Number(process.argv[hostAt + 1] ?? 0));
else await main();
