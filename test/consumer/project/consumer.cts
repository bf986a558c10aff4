// A consumer of the packed package, as CommonJS: `require()` of every entry (ESM, loaded through
// Node's require of ES modules, Node >= 20.19), then one command on in-process agents.
import coco = require('coco-engine');
import sqlite = require('coco-engine/sqlite');
import postgres = require('coco-engine/postgres');
import inProcess = require('coco-engine/in-process');
import http = require('coco-engine/http');
import agent = require('coco-engine/agent');
import jobs = require('coco-engine/jobs');
import fs = require('node:fs');
import os = require('node:os');
import path = require('node:path');
import zod = require('zod');

const functions: Record<string, unknown> = {
  createEngine: coco.createEngine,
  storeFromUrl: coco.storeFromUrl,
  sqliteStore: sqlite.sqliteStore,
  postgresStore: postgres.postgresStore,
  inProcessAgents: inProcess.inProcessAgents,
  httpAgents: http.httpAgents,
  startAgent: agent.startAgent,
  createJobMonitor: jobs.createJobMonitor,
};
for (const [name, value] of Object.entries(functions)) {
  if (typeof value !== 'function') throw new Error(`CJS: ${name} is ${typeof value}`);
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coco-consumer-cjs-'));
  const copy: inProcess.Verb = (args) => ({ copied: args });
  const job = coco.defineCommand({
    name: 'consumer.copy',
    schema: zod.z.object({ disk: zod.z.string() }),
    execute(ctx) {
      ctx.startTask({ agent: 'host-1', verb: 'copy', args: ctx.params });
    },
  });
  const engine = coco.createEngine({
    store: sqlite.sqliteStore({ path: path.join(dir, 'coco.db') }),
    agents: inProcess.inProcessAgents(['host-1'], { verbs: { copy } }),
    commands: [job],
  });
  try {
    await engine.start();
    const { id } = await engine.submit(job, { disk: 'd1' });
    const done = await engine.waitFor(id);
    if (done.status !== 'succeeded') throw new Error(`CJS: command ended ${done.status}`);
    console.log(`cjs ok: command ${id} ${done.status}`);
  } finally {
    await engine.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
