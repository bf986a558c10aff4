/**
 * N agents coming up on one SQLite node: the broker tells the engine of each (`onAgentInfo`, a
 * few per turn of the event loop, as health answers arrive), and the engine saves their rows.
 * Reports how long the telling took and until every row is in the store, the main thread's CPU
 * (process.cpuUsage, with the polling of the rows at the end), the event loop's longest stall
 * and p99 delay while telling, and the store writes made.
 *
 * `BENCH_AGENTS=10000 BENCH_PER_TURN=10 node dist/bench/agent-rows.js`
 *
 * @module
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { z } from 'zod';
import { defineCommand } from '../src/core/command-type.js';
import type { AgentRecord } from '../src/core/records.js';
import { createEngine } from '../src/engine/engine.js';
import { sqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { brokerWithInfos } from '../test/support/info-broker.js';

const agents = Number(process.env.BENCH_AGENTS ?? 10_000);
const perTurn = Number(process.env.BENCH_PER_TURN ?? 10);

const dir = mkdtempSync(join(tmpdir(), 'coco-agent-rows-'));
const store = sqliteStore({ path: join(dir, 'coco.db') });
let writes = 0;
const saveAgent = store.saveAgent.bind(store);
store.saveAgent = (r: AgentRecord) => {
  writes++;
  return saveAgent(r);
};
// Absent before the store had it: then only saveAgent is counted.
const batched = store as unknown as {
  saveAgents?: (rs: readonly AgentRecord[]) => Promise<void>;
};
const saveAgents = batched.saveAgents?.bind(store);
if (saveAgents) {
  batched.saveAgents = (rs: readonly AgentRecord[]) => {
    writes++;
    return saveAgents(rs);
  };
}
const { broker, tell } = brokerWithInfos();
const cmd = defineCommand({ name: 'bench.rows', schema: z.object({}), execute() {} });
const engine = createEngine({ store, agents: broker, commands: [cmd] });
await engine.start();

const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < agents; i += perTurn) {
  for (let j = i; j < Math.min(agents, i + perTurn); j++) {
    tell({
      agentId: `agent-${j}`,
      address: `http://10.0.${j >> 8}.${j & 255}:7391`,
      up: true,
      bootId: `boot-${j}`,
      lastSeenAt: Date.now(),
    });
  }
  await new Promise((r) => setImmediate(r));
}
const toldMs = performance.now() - t0;
// The stalls of the telling phase only (reading 10,000 rows back below stalls the loop too).
delay.disable();
while ((await store.listAgents()).length < agents) await new Promise((r) => setTimeout(r, 20));
const savedMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
console.log(
  JSON.stringify({
    agents,
    perTurn,
    toldMs: Math.round(toldMs),
    allSavedMs: Math.round(savedMs),
    mainCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    loopMaxStallMs: Math.round(delay.max / 1e6),
    loopP99Ms: +(delay.percentile(99) / 1e6).toFixed(1),
    storeWrites: writes,
  }),
);
await engine.stop();
rmSync(dir, { recursive: true, force: true });
