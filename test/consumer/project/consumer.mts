// A consumer of the packed package, as ESM: every entry imported by name, then one command run
// through the HTTP broker to an embedded reference agent with a plug-in verb, on a SQLite file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import {
  CocoError,
  ErrorCode,
  createEngine,
  defineCommand,
  storeFromUrl,
  type CommandRecord,
} from 'coco-engine';
import { sqliteStore, sqliteJobStore } from 'coco-engine/sqlite';
import { postgresStore, postgresJobStore } from 'coco-engine/postgres';
import { inProcessAgents, InProcessAgent } from 'coco-engine/in-process';
import { httpAgents, HttpBroker } from 'coco-engine/http';
import { startAgent, storageVerbs, type Verb } from 'coco-engine/agent';
import { createJobMonitor, jobStoreFromUrl } from 'coco-engine/jobs';

const names: Record<string, unknown> = {
  createEngine,
  defineCommand,
  storeFromUrl,
  sqliteStore,
  sqliteJobStore,
  postgresStore,
  postgresJobStore,
  inProcessAgents,
  InProcessAgent,
  httpAgents,
  HttpBroker,
  startAgent,
  storageVerbs,
  createJobMonitor,
  jobStoreFromUrl,
};
for (const [name, value] of Object.entries(names)) {
  if (typeof value !== 'function') throw new Error(`ESM: ${name} is ${typeof value}`);
}
if (ErrorCode.DriverMissing !== 'DRIVER_MISSING') throw new Error('ESM: no DRIVER_MISSING');

const dir = mkdtempSync(join(tmpdir(), 'coco-consumer-esm-'));
const secret = 'consumer-secret-0123456789';
const where: Verb = (args, ctx) => ({ args, root: ctx.storageRoot ?? null, agent: ctx.agentId });
const agent = await startAgent({
  id: 'host-1',
  secret,
  dataDir: join(dir, 'agent'),
  storageRoot: join(dir, 'storage'),
  verbs: { where },
  logger: { debug() {}, info() {}, warn() {}, error() {} },
});
const hello = defineCommand({
  name: 'consumer.hello',
  schema: z.object({ name: z.string() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'host-1', verb: 'where', args: { hello: ctx.params.name } });
  },
  onSuccess: (ctx) => ({ greeted: ctx.params.name }),
});
const engine = createEngine({
  store: storeFromUrl(`sqlite:${join(dir, 'coco.db')}`),
  agents: httpAgents({ caller: 'consumer', agents: [{ id: 'host-1', url: agent.url, secret }] }),
  commands: [hello],
});
try {
  await engine.start();
  const { id } = await engine.submit(hello, { name: 'esm' });
  const done: CommandRecord = await engine.waitFor(id);
  if (done.status !== 'succeeded') throw new Error(`ESM: command ended ${done.status}`);
  const tasks = await engine.inspect(id);
  const result = JSON.stringify(tasks?.tasks[0]?.result);
  if (!result.includes(JSON.stringify(join(dir, 'storage')))) {
    throw new Error(`ESM: the verb did not see the storage root: ${result}`);
  }
  try {
    await engine.submit(hello, { name: 1 } as unknown as { name: string });
    throw new Error('ESM: bad parameters were accepted');
  } catch (e) {
    if (!(e instanceof CocoError) || e.code !== ErrorCode.ParametersInvalid) throw e;
  }
  console.log(`esm ok: command ${id} ${done.status}, task result ${result}`);
} finally {
  await engine.stop();
  await agent.close();
  rmSync(dir, { recursive: true, force: true });
}
