/**
 * `npm run bench -- dashboard`: the dashboard's jobs list on a node holding 10,000 jobs. A node
 * (SQLite, the job view on, the API listening on loopback) runs BENCH_JOBS one-task commands to
 * the end; then, interleaved, the API's first page (`GET /v1/jobs?limit=50`, the read the page
 * makes) and the page itself in headless chromium: from navigation to the first 50 rows drawn
 * (token already in the tab's session). Needs /usr/bin/chromium for the page figure.
 */
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { chromium } from 'playwright-core';
import { inProcessAgents } from '../src/brokers/in-process/broker.js';
import { parseConfig } from '../src/config/config.js';
import { startNode } from '../src/server/node.js';
import { benchCommands } from './patterns.js';
import { machine, median, report, tempDb } from './lib.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 10_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const CHUNK = 1_000;
const TOKEN = 'a-viewer-token-for-the-dashboard-bench';
const CHROMIUM = '/usr/bin/chromium';
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const { one } = benchCommands('a1');
const db = tempDb();
const config = parseConfig(
  {
    store: `sqlite:${db.path}`,
    api: { port: 0, tokens: [{ name: 'bench', role: 'viewer', token: TOKEN }] },
  },
  db.dir,
);
const node = await startNode({
  config,
  commands: [one],
  broker: inProcessAgents(['a1'], { history: false }),
  logger: quiet,
});
const server = node.url!;

// The jobs: submitted in chunks, then wait until the job view shows them all ended.
const t0 = performance.now();
for (let i = 0; i < JOBS; i += CHUNK)
  await node.engine.submitMany(
    Array.from({ length: Math.min(CHUNK, JOBS - i) }, (_, j) => ({
      type: one,
      params: { i: i + j },
    })),
  );
const lastId = Math.max(...(await node.monitor!.jobStore.listJobs({ limit: 1 })).map((j) => j.id));
for (;;) {
  const last = await node.monitor!.jobStore.getJob(lastId);
  const running = await node.monitor!.jobStore.listJobs({ status: ['running'], limit: 1 });
  if (last?.endedAt !== null && running.length === 0) break;
  await new Promise((r) => setTimeout(r, 100));
}
const fillSeconds = (performance.now() - t0) / 1000;

const headers = { authorization: `Bearer ${TOKEN}` };
async function apiFirstPage(): Promise<number> {
  const t = performance.now();
  const res = await fetch(`${server}/v1/jobs?limit=50`, { headers });
  const body = (await res.json()) as { jobs: unknown[] };
  if (!res.ok || body.jobs.length !== 50) throw new Error(`first page: ${res.status}`);
  return performance.now() - t;
}
async function apiFiltered(): Promise<number> {
  const t = performance.now();
  const res = await fetch(`${server}/v1/jobs?limit=50&status=succeeded&type=bench.one`, {
    headers,
  });
  if (!res.ok) throw new Error(`filtered page: ${res.status}`);
  await res.json();
  return performance.now() - t;
}

const browser = existsSync(CHROMIUM)
  ? await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--no-first-run',
      ],
    })
  : null;
const context = await browser?.newContext({ viewport: { width: 1400, height: 900 } });
// The token already in the tab's session (a reload), set before the page's script runs.
await context?.addInitScript(`sessionStorage.setItem('coco.token', ${JSON.stringify(TOKEN)})`);
/**
 * From navigation to the first page's 50 rows drawn, in a fresh tab: as the driver sees it, and
 * as the page's own clock does (from its navigation start: without the driver's round trips).
 */
async function pageFirstPage(): Promise<{ wall: number; inPage: number }> {
  const page = await context!.newPage();
  const t = performance.now();
  await page.goto(`${server}/#/jobs`);
  // A function, not a string: the page's policy refuses eval, the driver's included. (This file
  // is type-checked without the DOM's types: the page's globals are named through globalThis.)
  const handle = await page.waitForFunction(
    () => {
      const g = globalThis as unknown as {
        document: { querySelectorAll(s: string): { length: number } };
        performance: { now(): number };
      };
      return g.document.querySelectorAll('tr[data-job]').length >= 50 && g.performance.now();
    },
    undefined,
    { polling: 'raf' },
  );
  const wall = performance.now() - t;
  const inPage = (await handle.jsonValue()) as number;
  await page.close();
  return { wall, inPage };
}

const api: number[] = [];
const filtered: number[] = [];
const pages: number[] = [];
const inPage: number[] = [];
// Warm-up (JIT, page cache, the browser's first start of a renderer), not counted.
await apiFirstPage();
if (browser) await pageFirstPage();
for (let i = 0; i < RUNS; i++) {
  api.push(await apiFirstPage());
  filtered.push(await apiFiltered());
  if (browser) {
    const p = await pageFirstPage();
    pages.push(p.wall);
    inPage.push(p.inPage);
  }
}
await browser?.close();
await node.close();
db.cleanup();

const round = (x: number): number => Math.round(x * 10) / 10;
report(
  {
    bench: 'dashboard',
    value: browser ? round(median(pages)) : NaN,
    unit: 'ms from navigation to the first 50 rows of the jobs list',
    jobs: JOBS,
    apiMs: round(median(api)),
    filteredMs: round(median(filtered)),
    pageMaxMs: browser ? round(Math.max(...pages)) : NaN,
    inPageMs: browser ? round(median(inPage)) : NaN,
    load: round(loadavg()[0]!),
    runs: RUNS,
  },
  [
    `machine: ${machine()}, load average ${loadavg()[0]!.toFixed(1)}`,
    `${JOBS} jobs run to the end in ${fillSeconds.toFixed(1)} s`,
    `GET /v1/jobs?limit=50: median ${round(median(api))} ms (${RUNS} runs)`,
    `GET /v1/jobs?limit=50&status=succeeded&type=bench.one: median ${round(median(filtered))} ms`,
    browser
      ? `jobs page, navigation to 50 rows drawn: median ${round(median(pages))} ms, max ${round(Math.max(...pages))} ms (by the page's clock: median ${round(median(inPage))} ms)`
      : `jobs page: skipped (no ${CHROMIUM})`,
  ],
);
