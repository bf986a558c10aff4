/**
 * Root admission with a long queue (engine/root-admission.ts): N roots of one type wait — its
 * type paused, or at its limit — then a resume admits them all at once. Reports the CPU time to
 * queue them (each submission past the first) and to admit them; value = the admission's ms.
 *
 * `npm run bench -- root-queue` (`BENCH_ROOTS`, default 100,000)
 *
 * @module
 */
import { z } from 'zod';
import { defineCommand } from '../src/core/command-type.js';
import { RootAdmission } from '../src/engine/root-admission.js';
import { liveRoot, machine, report } from './lib.js';

const N = Number(process.env.BENCH_ROOTS ?? 100_000);
const type = defineCommand({ name: 'bench.root', schema: z.object({}), execute() {} });

const commands = Array.from({ length: N }, (_, i) => liveRoot(type, i + 1, i + 1));
let admitted = 0;
const roots = new RootAdmission({ admitted: () => admitted++ }, {});
roots.setPaused(new Map([[type.name, { type: type.name, pausedAt: 0, by: null, reason: null }]]));
const cpu = (): number => process.cpuUsage().user / 1_000;
let t = cpu();
for (const c of commands) roots.submit(c, c.createdAt);
const queueMs = cpu() - t;
t = cpu();
roots.setPaused(new Map());
const admitMs = cpu() - t;
if (admitted !== N) throw new Error(`admitted ${admitted} of ${N}`);
report(
  {
    bench: 'root-queue',
    value: Math.round(admitMs),
    unit: 'ms',
    roots: N,
    queueMs: Math.round(queueMs),
  },
  [
    `root-queue: ${N} roots of a paused type queued in ${queueMs.toFixed(0)} ms of CPU, admitted by its resume in ${admitMs.toFixed(0)} ms (${machine()})`,
  ],
);
