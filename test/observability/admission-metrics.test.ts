/**
 * Admission figures in `GET /metrics` after a queued workload: a real node (SQLite file, HTTP
 * API on loopback) with in-process agents, an agent limit and a root limit per type. The scrape
 * is parsed strictly; queue depths are checked while work waits, the wait histogram after.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { parseConfig } from '../../src/config/config.js';
import { defineCommand } from '../../src/core/command-type.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import { holdVerbs, tempDir } from '../support/harness.js';
import { parsePrometheusText, sampleValue, samples } from '../support/prom-text.js';

const TOKEN = 'admission-metrics-token-0123456789';
const silent = { debug() {}, info() {}, warn() {}, error() {} };
const hold = holdVerbs();

/** One task on `agent`, held until its key is released. */
const held = (name: string) =>
  defineCommand({
    name,
    schema: z.object({ key: z.string(), agent: z.string() }),
    execute(ctx) {
      ctx.expect({ tasks: 1 });
      ctx.startTask({ agent: ctx.params.agent, verb: 'hold', args: { key: ctx.params.key } });
    },
  });
const onLimited = held('adm.limited');
const rooted = held('adm.rooted');

describe('admission metrics', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  it('export queue depth per agent and per type, and the wait per agent', async () => {
    const dir = tempDir('coco-adm-metrics-');
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const node: CocoNode = await startNode({
      config: parseConfig(
        {
          store: `sqlite:${join(dir, 'coco.db')}`,
          api: { port: 0, token: TOKEN },
          agents: [{ id: 'a1', url: 'http://127.0.0.1:9', secret: 's'.repeat(32), maxRunning: 2 }],
          admission: { types: { 'adm.rooted': { maxRunning: 1 } } },
        },
        dir,
      ),
      commands: [onLimited, rooted],
      broker: inProcessAgents(['a1', 'a2'], { verbs: hold.verbs }),
      logger: silent,
    });
    cleanups.push(() => node.close());
    const { engine } = node;
    const scrape = async () => {
      const r = await fetch(`${node.url}/metrics`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(r.status).toBe(200);
      const families = parsePrometheusText(await r.text());
      const value = (name: string, labels: Record<string, string> = {}) =>
        sampleValue(families, name, labels);
      return Object.assign(value, {
        agents: (name: string) => samples(families, name).map((s) => s.labels.agent),
      });
    };

    const ids: number[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await engine.submit(onLimited, { key: `l${i}`, agent: 'a1' })).id);
    for (let i = 0; i < 3; i++)
      ids.push((await engine.submit(rooted, { key: `r${i}`, agent: 'a2' })).id);
    // Two tasks run on a1 (its limit), three wait; one adm.rooted root runs, two wait.
    const settled = (): boolean =>
      hold.held('l0') &&
      hold.held('l1') &&
      hold.held('r0') &&
      engine.admissionStats()[0]?.queued === 3 &&
      engine.rootAdmissionStats()[0]?.queued === 2;
    while (!settled()) await new Promise((r) => setImmediate(r));

    let v = await scrape();
    expect(v('coco_admission_tasks_queued', { agent: 'a1' })).toBe(3);
    expect(v('coco_admission_tasks_holding_slot', { agent: 'a1' })).toBe(2);
    expect(v('coco_admission_oldest_wait_seconds', { agent: 'a1' })).toBeGreaterThanOrEqual(0);
    expect(v('coco_admission_roots_queued', { type: 'adm.rooted' })).toBe(2);
    expect(v('coco_admission_roots_running', { type: 'adm.rooted' })).toBe(1);
    // Admitted at once (a free slot): two waits observed, both within the creation's own
    // milliseconds (a loaded machine may take a few between the task's creation and its slot).
    expect(v('coco_admission_wait_seconds_count', { agent: 'a1' })).toBe(2);
    expect(v('coco_admission_wait_seconds_bucket', { agent: 'a1', le: '0.01' })).toBe(2);
    // An agent without a limit is not tracked.
    expect(v.agents('coco_admission_tasks_queued')).toEqual(['a1']);

    const waitStart = Date.now();
    await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 5; i++) hold.release(`l${i}`);
    for (let i = 0; i < 3; i++) hold.release(`r${i}`);
    for (const id of ids) expect((await engine.waitFor(id)).status).toBe('succeeded');
    const waited = (Date.now() - waitStart) / 1000;

    v = await scrape();
    expect(v('coco_admission_tasks_queued', { agent: 'a1' })).toBe(0);
    expect(v('coco_admission_tasks_holding_slot', { agent: 'a1' })).toBe(0);
    expect(v('coco_admission_roots_queued', { type: 'adm.rooted' })).toBe(0);
    expect(v('coco_admission_wait_seconds_count', { agent: 'a1' })).toBe(5);
    // The three that waited did so for at least the 20 ms before the first release.
    const sum = v('coco_admission_wait_seconds_sum', { agent: 'a1' });
    expect(sum).toBeGreaterThanOrEqual(3 * 0.02);
    expect(sum).toBeLessThanOrEqual(3 * (waited + 1));

    // A paused type: flagged with the time of its pause, until its resume.
    const pause = await engine.pauseType('adm.rooted');
    v = await scrape();
    expect(v('coco_command_type_paused', { type: 'adm.rooted' })).toBe(1);
    expect(v('coco_command_type_paused_since_seconds', { type: 'adm.rooted' })).toBe(
      pause.pausedAt / 1000,
    );
    await engine.resumeType('adm.rooted');
    const r = await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(samples(parsePrometheusText(await r.text()), 'coco_command_type_paused')).toEqual([]);
  });
});
