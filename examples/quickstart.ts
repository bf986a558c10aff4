/**
 * A tour of coco on the embedded store: provision a small "cluster" as a tree of commands.
 *
 *   cluster.provision (serial)
 *     1. network.create            one task on host-1
 *     2. vm.group (concurrent)     three vm.create children, each two tasks on its host
 *     3. lb.configure              one task on host-1
 *
 * Every stage records an undo step; the third VM is flaky the first time you run with
 * `--fail`, which shows compensation running in reverse. Run: `npm start` (or
 * `npm start -- --fail`).
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { createEngine, defineCommand } from '../src/index.js';
import { createJobMonitor, sqliteJobStore, type StepNode } from '../src/jobs/index.js';
import { inProcessAgents } from '../src/brokers/in-process/broker.js';
import { sqliteStore } from '../src/store/sqlite/sqlite-store.js';

const fail = process.argv.includes('--fail');
const dir = resolve('.coco');
mkdirSync(dir, { recursive: true });
const dbPath = join(dir, 'quickstart.db');

const vm = defineCommand({
  name: 'vm.create',
  schema: z.object({ name: z.string(), host: z.string(), failBoot: z.boolean().default(false) }),
  execute(ctx) {
    ctx.expect({ tasks: 2 });
    ctx.addUndo('destroy', { name: ctx.params.name });
    ctx.startTask({
      agent: ctx.params.host,
      verb: 'sleep',
      args: { ms: 400, result: { disk: `${ctx.params.name}.img` } },
    });
    ctx.startTask(
      ctx.params.failBoot
        ? {
            agent: ctx.params.host,
            verb: 'fail',
            args: { message: `${ctx.params.name} did not boot` },
          }
        : {
            agent: ctx.params.host,
            verb: 'sleep',
            args: { ms: 700, result: { ip: `10.0.0.${ctx.command.id % 250}` } },
          },
    );
  },
  onSuccess(ctx) {
    return {
      name: ctx.params.name,
      ip: (ctx.tasks[1]?.result as { ip?: string } | null)?.ip ?? null,
    };
  },
  undo: {
    destroy(ctx, data) {
      ctx.log.info({ data }, 'destroying vm');
    },
  },
});

const vmGroup = defineCommand({
  name: 'vm.group',
  schema: z.object({
    vms: z.array(z.object({ name: z.string(), host: z.string(), failBoot: z.boolean() })),
  }),
  failurePolicy: 'wait-all',
  execute(ctx) {
    ctx.expect({ children: ctx.params.vms.length });
    for (const v of ctx.params.vms) ctx.addChild(vm, v);
  },
  onSuccess(ctx) {
    return ctx.children.map((c) => c.result);
  },
});

const step = defineCommand({
  name: 'cluster.step',
  schema: z.object({ what: z.string(), host: z.string(), ms: z.number() }),
  execute(ctx) {
    ctx.addUndo('revert', { what: ctx.params.what });
    ctx.startTask({ agent: ctx.params.host, verb: 'sleep', args: { ms: ctx.params.ms } });
  },
  undo: {
    revert() {},
  },
});

const provision = defineCommand({
  name: 'cluster.provision',
  schema: z.object({ cluster: z.string(), failBoot: z.boolean() }),
  execute(ctx) {
    ctx.expect({ children: 3 });
    ctx.addChild(step, { what: 'network', host: 'host-1', ms: 300 });
  },
  next(ctx) {
    if (ctx.command.stage === 1) {
      ctx.addChild(vmGroup, {
        vms: [1, 2, 3].map((i) => ({
          name: `${ctx.params.cluster}-vm${i}`,
          host: `host-${i}`,
          failBoot: ctx.params.failBoot && i === 3,
        })),
      });
    } else if (ctx.command.stage === 2) {
      ctx.addChild(step, { what: 'load balancer', host: 'host-1', ms: 300 });
    }
  },
  onSuccess(ctx) {
    return { cluster: ctx.params.cluster, stages: ctx.children.length };
  },
});

const engine = createEngine({
  store: sqliteStore({ path: dbPath }),
  agents: inProcessAgents(['host-1', 'host-2', 'host-3']),
  commands: [provision, step, vmGroup, vm],
  tuning: { pollIntervalMs: 100 },
});
// The user's view: a job per root command, steps for children and tasks, progress rolled up.
const monitor = createJobMonitor({ engine, store: sqliteJobStore({ path: dbPath }) });

const bar = (p: number): string => {
  const n = Math.round(p / 5);
  return `[${'#'.repeat(n)}${'.'.repeat(20 - n)}] ${p.toFixed(0).padStart(3)}%`;
};
let lastLine = '';
monitor.on('job', (job) => {
  const line = `  job ${job.id} ${job.type}: ${bar(job.progress)} ${job.status}`;
  if (line !== lastLine) console.log(line);
  lastLine = line;
});

const report = await engine.start();
await monitor.start();
console.log(
  `coco quickstart — store ${dbPath} (${report.resumed} unfinished command(s) resumed)\n`,
);
const { id } = await engine.submit(provision, { cluster: 'demo', failBoot: fail });
const ended = await engine.waitFor(id);
await monitor.flush();

function printStep(node: StepNode, indent: string): void {
  const s = node.step;
  const comp = s.compensation !== 'none' ? `, ${s.compensation}` : '';
  const err = s.error ? ` — ${s.error.code}` : '';
  console.log(
    `${indent}${s.name.padEnd(Math.max(1, 34 - indent.length))} ${bar(s.progress)} ${s.status}${comp}${err}`,
  );
  for (const t of node.tasks) {
    console.log(
      `${indent}  · ${t.name.padEnd(Math.max(1, 30 - indent.length))} ${bar(t.progress)} ${t.status}`,
    );
  }
  for (const child of node.children) printStep(child, `${indent}  `);
}

const tree = await monitor.getTree(id);
console.log('\nfinal job tree:');
if (tree?.root) printStep(tree.root, '  ');
if (ended.error) console.log(`\nerror: ${ended.error.code}: ${ended.error.message}`);
console.log(`\nresult: ${JSON.stringify(ended.result)}`);
console.log(`database: ${dbPath} (commands, tasks and the job view; inspect with sqlite3)`);
await monitor.stop();
await engine.stop();
process.exitCode = ended.status === 'succeeded' || fail ? 0 : 1;
