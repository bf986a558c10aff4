/**
 * The node's HTTP API under load (issue 11): `coco`'s node (engine on SQLite, job view, API) in a
 * child process, autocannon here, on loopback, every call authenticated (an operator token).
 * Measured: submits/s (`POST /v1/commands`, a command with no task: it is stored, runs its
 * handler and ends), then gets/s (`GET /v1/commands/:id` of commands that exist, the detail:
 * five keyed reads), each with its p99 latency.
 *
 * Run: `npm run bench -- api`. Env: BENCH_CONNECTIONS (64), BENCH_DURATION_S (10),
 * BENCH_API_CACHE (the node's `api.detailCacheEntries`: 0 renders every detail anew),
 * BENCH_API_PROFILE (a directory: the server's CPU profile of the gets phase alone is written there
 * as `gets.cpuprofile`, for `--cpu-prof`-style analysis without the submits mixed in).
 */
import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';

import { fileURLToPath } from 'node:url';
import autocannon, { type Result } from 'autocannon';
import { z } from 'zod';
import { inProcessAgents } from '../src/brokers/in-process/broker.js';
import { parseConfig } from '../src/config/config.js';
import { defineCommand } from '../src/core/command-type.js';
import { startNode } from '../src/server/node.js';
import { machine, report, tempDb } from './lib.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const TOKEN = 'bench-operator-token-0123456789';

const noop = defineCommand({
  name: 'bench.api',
  schema: z.object({ n: z.number() }),
  execute() {},
});

/** The child: a node on a fresh SQLite file, its URL sent to the parent. */
async function server(): Promise<void> {
  const db = tempDb();
  const config = parseConfig(
    {
      store: `sqlite:${db.path}`,
      api: {
        port: 0,
        tokens: [{ name: 'bench', role: 'operator', token: TOKEN }],
        ...(process.env.BENCH_API_CACHE === undefined
          ? {}
          : { detailCacheEntries: Number(process.env.BENCH_API_CACHE) }),
      },
    },
    db.dir,
  );
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const node = await startNode({
    config,
    commands: [noop],
    broker: inProcessAgents(['a1']),
    logger: quiet,
  });
  process.send!({ url: node.url });
  const profiler = new Session();
  process.on('message', (m) => {
    if (m === 'profile:start') {
      profiler.connect();
      void profiler
        .post('Profiler.enable')
        .then(() => profiler.post('Profiler.start'))
        .then(() => process.send!('profiling'));
      return;
    }
    if (typeof m === 'object' && m !== null && 'profileTo' in m) {
      void profiler.post('Profiler.stop').then(({ profile }) => {
        writeFileSync(join(String(m.profileTo), 'gets.cpuprofile'), JSON.stringify(profile));
        process.send!('profiled');
      });
      return;
    }
    if (m === 'cpu') {
      const u = process.cpuUsage();
      process.send!({ cpuMs: (u.user + u.system) / 1000 });
      return;
    }
    void node.close().then(() => {
      db.cleanup();
      process.exit(0);
    });
  });
}

async function run(options: Parameters<typeof autocannon>[0]): Promise<Result> {
  return autocannon({ connections: CONNECTIONS, duration: DURATION_S, ...options });
}

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['server'], {
    execArgv: process.execArgv.filter((a) => a !== '--expose-gc'),
  });
  const { url } = await new Promise<{ url: string }>((resolve) =>
    child.once('message', (m) => resolve(m as { url: string })),
  );
  const cpu = async (): Promise<number> => {
    child.send('cpu');
    return new Promise((resolve) =>
      child.once('message', (m) => resolve((m as { cpuMs: number }).cpuMs)),
    );
  };
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  const cpu0 = await cpu();
  const submits = await run({
    url: `${url}/v1/commands`,
    method: 'POST',
    headers,
    body: JSON.stringify({ type: 'bench.api', params: { n: 1 } }),
  });
  const cpu1 = await cpu();
  const ids = (
    (await (await fetch(`${url}/v1/commands?limit=500`, { headers })).json()) as {
      commands: { id: number }[];
    }
  ).commands.map((c) => c.id);
  const profileTo = process.env.BENCH_API_PROFILE;
  const ack = async (message: unknown, answer: string): Promise<void> => {
    const done = new Promise((resolve) => child.once('message', resolve));
    child.send(message as string);
    if ((await done) !== answer) throw new Error(`the server did not answer ${answer}`);
  };
  if (profileTo) await ack('profile:start', 'profiling');
  const gets = await run({
    url,
    headers: { authorization: `Bearer ${TOKEN}` },
    requests: ids.slice(0, 100).map((id) => ({ method: 'GET', path: `/v1/commands/${id}` })),
  });
  const cpu2 = await cpu();
  if (profileTo) await ack({ profileTo }, 'profiled');
  // The server's CPU time per call: what the machine's other load does not change much.
  const submitUs = Math.round(((cpu1 - cpu0) * 1000) / submits.requests.total);
  const getUs = Math.round(((cpu2 - cpu1) * 1000) / gets.requests.total);
  child.send('stop');
  await new Promise((r) => child.once('exit', r));
  const bad = (r: Result): number => r.errors + r.timeouts + r.non2xx;
  const lines = [
    `api (${machine()}, ${CONNECTIONS} connections, ${DURATION_S} s each, loopback, SQLite, token auth)`,
    `  submits: ${Math.round(submits.requests.average)}/s, p50 ${submits.latency.p50} ms, p99 ${submits.latency.p99} ms (${submits.requests.total} total, ${bad(submits)} not 2xx), server CPU ${submitUs} us/call`,
    `  gets:    ${Math.round(gets.requests.average)}/s, p50 ${gets.latency.p50} ms, p99 ${gets.latency.p99} ms (${gets.requests.total} total, ${bad(gets)} not 2xx), server CPU ${getUs} us/call`,
    `  load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} CPUs during the run`,
  ];
  if (bad(submits) + bad(gets) > 0) {
    for (const line of lines) console.log(line);
    throw new Error('calls failed during the benchmark');
  }
  report(
    {
      bench: 'api',
      value: Math.round(submits.requests.average),
      unit: 'submits/s',
      gets: Math.round(gets.requests.average),
      p99ms: submits.latency.p99,
      getP99ms: gets.latency.p99,
      submitCpuUs: submitUs,
      getCpuUs: getUs,
    },
    lines,
  );
}

if (process.argv[2] === 'server') void server();
else
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
