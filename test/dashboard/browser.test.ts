/**
 * The dashboard in a real headless browser (Debian's chromium through playwright-core) against a
 * real `coco serve` process and a real reference agent over HTTP, with the disk pack of
 * examples/: sign in; watch a migration progress to done; cancel another mid-copy and see its
 * compensation in order, then run it again (each job's page linking to the other); a parameter
 * holding markup shown as text (no dialog fires); a viewer sees no cancel button and a forced
 * cancel is refused; a copy waiting for its agent's limit
 * (admission) shown with what it waits for; the agent going down and up; a tree the store refused
 * shown held and released by an operator once the cause is gone; a command type paused by an
 * operator (a viewer sees no pause), a migration waiting for it, and its resume. Screenshots
 * go to test-artifacts/dashboard/ (git-ignored).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { tempDir } from '../support/harness.js';
import {
  freePort,
  killHard,
  startAgentProcess,
  startServeProcess,
  type CocoProcess,
} from '../e2e/support.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = new URL('../../', import.meta.url).pathname;
const SHOTS = join(ROOT, 'test-artifacts', 'dashboard');
const OPERATOR = 'operator-token-for-the-dashboard-test';
const VIEWER = 'viewer-token-for-the-dashboard-test';
const ADMIN = 'admin-token-for-the-dashboard-test';
const SECRET = 'a-shared-secret-for-the-dashboard';
/** Markup in a parameter: it must only ever be text. */
const MARKUP = '<img src=x onerror=alert(1)></script><script>alert(2)</script>';
const MiB = 1024 * 1024;

const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser)
  console.warn(`dashboard browser tests skipped: no ${CHROMIUM} (apt-get install -y chromium)`);

const idOf = z.object({ id: z.number() });
const statusOf = z.object({ status: z.string() }).passthrough();

describe.skipIf(!haveBrowser && !process.env.CI)('the dashboard in a browser', () => {
  let dir: string;
  let server: string;
  let agent: CocoProcess & { url: string; bootId: string };
  let agentPort: number;
  let serve: CocoProcess & { url: string };
  let browser: Browser;
  let operator: BrowserContext;
  let page: Page;
  const dialogs: string[] = [];
  /** What the browser said about the page's Content-Security-Policy (nothing, expected). */
  const violations: string[] = [];
  /** The disk.create whose seed holds markup. */
  let markupCommand = 0;

  const api = async (path: string, body?: unknown): Promise<unknown> => {
    const res = await fetch(`${server}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: {
        authorization: `Bearer ${OPERATOR}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json: unknown = await res.json();
    if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  // Roots submitted so far: the jobs list shows one job each.
  let roots = 0;
  const submit = async (type: string, params: unknown): Promise<number> => {
    const { id } = idOf.parse(await api('/v1/commands', { type, params }));
    roots += 1;
    return id;
  };
  const ended = async (id: number): Promise<string> => {
    for (;;) {
      const { status } = statusOf.parse(await api(`/v1/commands/${id}`));
      if (['succeeded', 'failed', 'cancelled'].includes(status)) return status;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const startAgent = () =>
    startAgentProcess({
      id: 'host-1',
      port: agentPort,
      dataDir: join(dir, 'agent'),
      storageRoot: join(dir, 'storage'),
      secret: SECRET,
    });
  // The node's configuration file (a reload re-reads it).
  let config = '';
  const shot = (name: string, p: Page = page) =>
    p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const signIn = async (p: Page, token: string): Promise<void> => {
    await p.goto(`${server}/`);
    await p.fill('#token', token);
    await p.press('#token', 'Enter');
    await p.locator('header.top .role').waitFor();
  };

  beforeAll(async () => {
    // The page as `npm run build` makes it (type-checked by the build's own step).
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-dashboard.mjs'), '--no-check']);
    mkdirSync(SHOTS, { recursive: true });
    dir = tempDir('coco-dashboard-');
    agentPort = await freePort();
    agent = await startAgent();
    config = join(dir, 'coco.json');
    writeFileSync(
      config,
      JSON.stringify({
        store: 'sqlite:coco.db',
        api: {
          // Any free port, taken by the node itself (a port chosen here could be taken by
          // another test process before the node binds it).
          port: 0,
          tokens: [
            { name: 'ops', role: 'operator', token: OPERATOR },
            { name: 'watcher', role: 'viewer', token: VIEWER },
            { name: 'root', role: 'admin', token: ADMIN },
          ],
        },
        // One copy at a time on host-1: a second migration's copy waits, visibly.
        agents: [
          {
            id: 'host-1',
            url: agent.url,
            secret: SECRET,
            maxRunningByVerb: { 'volume.copy': 1 },
          },
        ],
        commands: [join(ROOT, 'examples', 'disk', 'index.ts')],
        tuning: { pollIntervalMs: 100 },
      }),
    );
    serve = await startServeProcess(config);
    server = serve.url;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
      // launch() gives the browser a fresh, temporary profile (user data dir) of its own.
    });
    operator = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    page = await operator.newPage();
    page.on('console', (m) => {
      if (m.text().includes('Content Security Policy')) violations.push(m.text());
    });
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    if (serve) await killHard(serve);
    if (agent) await killHard(agent);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('signs in with a token kept for the session only, and refuses a wrong one', async () => {
    // The page is public and strict: scripts and styles from this origin only, nothing inline.
    const res = await fetch(`${server}/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe');
    await page.goto(`${server}/`);
    await page.fill('#token', 'not-a-token-of-this-node');
    await page.click('button[type=submit]');
    await expect.poll(() => page.locator('[role=alert]').textContent()).toMatch(/not accepted/);
    await signIn(page, OPERATOR);
    expect(await page.locator('header.top .role').textContent()).toBe('operator');
    // (Expressions run in the page: this file is type-checked without the DOM's types.)
    expect(await page.evaluate(`sessionStorage.getItem('coco.token')`)).toBe(OPERATOR);
    expect(await page.evaluate(`localStorage.getItem('coco.token')`)).toBeNull();
  });

  it('shows a migration progressing live to done, step by step', async () => {
    // d1 is filled from a seed holding markup: it must show as text (below).
    const create = await submit('disk.create', {
      disk: 'd1',
      domain: 'sd-a',
      sizeBytes: 8 * MiB,
      agent: 'host-1',
      seed: MARKUP,
    });
    await submit('disk.create', {
      disk: 'd2',
      domain: 'sd-a',
      sizeBytes: 48 * MiB,
      agent: 'host-1',
      seed: 2,
    });
    expect(await ended(create)).toBe('succeeded');
    await page.goto(`${server}/#/jobs`);
    const id = await submit('disk.migrate', {
      disk: 'd1',
      toDomain: 'sd-b',
      agent: 'host-1',
      chunkBytes: 512,
    });
    // The new job appears in the list by itself, then opens from its row.
    const row = page.locator(`tr[data-job="${id}"]`);
    await row.waitFor();
    await row.locator('a').click();
    await page.locator('table.tree').waitFor();
    // The root's progress moves through values short of 100 before the end.
    const seen = new Set<string>();
    const root = page.locator(`tr[data-step="c${id}"]`);
    while (
      !(await root.locator('.badge').first().textContent())?.match(/succeeded|failed|cancelled/)
    ) {
      seen.add((await root.locator('.figure').textContent()) ?? '');
      await page.waitForTimeout(20);
    }
    expect([...seen].some((f) => f !== '0 %' && f !== '100 %')).toBe(true);
    expect(await root.locator('.badge').first().textContent()).toBe('succeeded');
    expect(await root.locator('.figure').textContent()).toBe('100 %');
    const steps = page.locator('table.tree tr.command');
    expect(await steps.count()).toBe(8);
    expect(
      await page.locator('table.tree tr.command .badge', { hasText: 'succeeded' }).count(),
    ).toBe(8);
    expect(await page.locator(`tr[data-step="c${id}"] .count`).textContent()).toMatch(
      /✓ 7\/7\s+children/,
    );
    await shot('1-migration-done');
    // Its command view lists the chain's children with their places in its journal (after its
    // two undo steps, in stage order).
    await page.goto(`${server}/#/commands/${id}`);
    const seqs = page.locator('table[aria-label="children"] td.seq');
    await expect.poll(() => seqs.count()).toBe(7);
    expect((await seqs.allTextContents()).map(Number)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    await shot('1-migration-command');
    markupCommand = create;
  });

  it('shows a parameter holding markup as text, and runs none of it', async () => {
    await page.goto(`${server}/#/commands/${markupCommand}`);
    const params = page.locator('.params pre');
    await params.waitFor();
    expect(await params.textContent()).toContain(JSON.stringify(MARKUP).slice(1, -1));
    await expect
      .poll(() => page.getByText('<img src=x onerror=alert(1)>', { exact: false }).count())
      .toBe(1);
    expect(await page.locator('img[src="x"], .params script').count()).toBe(0);
    await shot('2-markup-as-text');
    expect(dialogs).toEqual([]);
  });

  it('cancels a migration mid-copy for an operator, not for a viewer, and shows the compensation', async () => {
    // The copy is rate-limited so that it cannot end while the test runs: 48 MiB at 1 MiB/s takes
    // 47 s at least, past the test's 30 s timeout, and its progress moves every ½ s (1 %).
    const id = await submit('disk.migrate', {
      disk: 'd2',
      toDomain: 'sd-b',
      agent: 'host-1',
      chunkBytes: 64 * 1024,
      bytesPerSecond: MiB,
    });
    await page.goto(`${server}/#/jobs/${id}`);
    // Under way: the copy stage's progress moved.
    const copy = page.locator('table.tree tr.command', { hasText: 'disk.migrate.copy' });
    await copy.waitFor();
    await expect
      .poll(async () => Number.parseFloat((await copy.locator('.figure').textContent()) ?? '0'), {
        timeout: 20_000,
        interval: 20,
      })
      .toBeGreaterThan(0);

    // A viewer, in a session of its own, sees the same job without a cancel button, and a
    // cancel forced from its page is refused.
    const viewer = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const watcher = await viewer.newPage();
    await signIn(watcher, VIEWER);
    expect(await watcher.locator('header.top .role').textContent()).toBe('viewer');
    await watcher.goto(`${server}/#/jobs/${id}`);
    await watcher.locator('table.tree').waitFor();
    expect(await watcher.locator('button[data-cancel]').count()).toBe(0);
    const forced = await watcher.evaluate<{
      status: number;
      body: { error?: { code?: string } };
    }>(`(async () => {
        const res = await fetch('/v1/commands/${id}/cancel', {
          method: 'POST',
          headers: {
            authorization: 'Bearer ' + sessionStorage.getItem('coco.token'),
            'content-type': 'application/json',
          },
          body: '{}',
        });
        return { status: res.status, body: await res.json() };
      })()`);
    expect(forced.status).toBe(403);
    expect(forced.body.error?.code).toBe('FORBIDDEN');
    await shot('3-viewer-no-cancel', watcher);
    await viewer.close();

    // The operator cancels, confirming in the dialog.
    expect(
      statusOf.parse(await api(`/v1/jobs/${id}`).then((t) => (t as { job: unknown }).job)).status,
    ).toBe('running');
    await page.locator(`button[data-cancel="${id}"]`).click();
    await page.locator('dialog#confirm[open]').waitFor();
    await shot('4-confirm-cancel');
    await page.click('#confirm-cancel');
    const compensation = page.locator('section.compensation');
    await compensation.waitFor({ timeout: 20_000 });
    await expect
      .poll(() => page.locator(`tr[data-step="c${id}"] .badge`).first().textContent(), {
        timeout: 20_000,
      })
      .toMatch(/cancelled|failed/);
    // Every undo step ran, in reverse: the copy's partial target first, the lock last.
    await expect
      .poll(() => compensation.locator('li .undo-name').allTextContents(), {
        timeout: 10_000,
      })
      .toEqual([
        'removePartialTarget',
        'removeTarget',
        'removeSnapshot',
        'releaseTarget',
        'unlock',
      ]);
    // The done marks may come a refresh after the names (under load): the same wait.
    await expect
      .poll(() => compensation.locator('li.undo-done').count(), { timeout: 10_000 })
      .toBe(5);
    expect(await compensation.locator('li .order').allTextContents()).toEqual([
      '1',
      '2',
      '3',
      '4',
      '5',
    ]);
    await shot('5-cancelled-compensated');

    // Run again: confirmed, it starts a new job of the same type and parameters, and the page
    // goes to it; the cancelled one stays as it was.
    await page.locator(`button[data-rerun="${id}"]`).click();
    await page.locator('dialog#confirm[open]').waitFor();
    await page.click('#confirm-rerun');
    const shown = (): number => Number(/^#\/jobs\/(\d+)$/.exec(new URL(page.url()).hash)?.[1]);
    await expect.poll(shown).not.toBe(id);
    const next = shown();
    expect(next).toBeGreaterThan(id);
    roots += 1;
    await expect.poll(() => page.locator('h1').textContent()).toContain(`Job ${next}`);
    expect(await page.locator('h1 .type').textContent()).toBe('disk.migrate');
    await shot('5b-rerun');
    // The new job says which job it ran again, linking to it; that job's page names the new one.
    const words = (text: string | null): string => (text ?? '').replace(/\s+/g, ' ').trim();
    const rerunOf = page.locator(`p.reruns [data-rerun-of="${id}"]`);
    await rerunOf.waitFor({ timeout: 10_000 });
    expect(words(await rerunOf.textContent())).toBe(`Rerun of job ${id}`);
    expect(await page.locator('p.reruns [data-reruns]').count()).toBe(0);
    await rerunOf.locator('a').click();
    await expect.poll(() => new URL(page.url()).hash).toBe(`#/jobs/${id}`);
    const ranAgain = page.locator('p.reruns [data-reruns]');
    await ranAgain.waitFor({ timeout: 10_000 });
    expect(words(await ranAgain.textContent())).toBe(`Run again as: job ${next}`);
    expect(await ranAgain.locator('a').getAttribute('href')).toBe(`#/jobs/${next}`);
    expect(await page.locator('p.reruns [data-rerun-of]').count()).toBe(0);
    await shot('13-rerun-lineage');
    // The new job's root command says it too.
    await page.goto(`${server}/#/commands/${next}`);
    const commandRerunOf = page.locator(`p.reruns [data-rerun-of="${id}"]`);
    await commandRerunOf.waitFor({ timeout: 10_000 });
    expect(words(await commandRerunOf.textContent())).toBe(`Rerun of job ${id}`);
    expect(await commandRerunOf.locator('a').getAttribute('href')).toBe(`#/jobs/${id}`);
    // Not needed further: it ends here, before the next test takes the copy slot.
    await api(`/v1/commands/${next}/cancel`, {});
    expect(await ended(next)).toBe('cancelled');
    expect(statusOf.parse(await api(`/v1/commands/${id}`)).status).toBe('cancelled');
  });

  it('shows a copy waiting for its agent with what it waits for, until the slot frees', async () => {
    const slow = { toDomain: 'sd-b', agent: 'host-1', chunkBytes: 64 * 1024, bytesPerSecond: MiB };
    // 32 MiB at 1 MiB/s: the first copy holds the slot far longer than the checks take.
    for (const disk of ['q1', 'q2']) {
      const created = await submit('disk.create', {
        disk,
        domain: 'sd-a',
        sizeBytes: 32 * MiB,
        agent: 'host-1',
        seed: 3,
      });
      expect(await ended(created)).toBe('succeeded');
    }
    const copies = z.object({
      commands: z.array(z.object({ id: z.number(), rootId: z.number() })),
    });
    const tasksOf = z.object({
      tasks: z.array(z.object({ status: z.string() }).passthrough()),
    });
    /** The status of the copy task of migration `root` (none before its copy stage). */
    const copyOf = async (root: number): Promise<{ id: number; status: string }> => {
      const page = copies.parse(await api('/v1/commands?type=disk.migrate.copy&limit=10'));
      const id = page.commands.find((c) => c.rootId === root)?.id ?? 0;
      if (id === 0) return { id, status: 'none' };
      return {
        id,
        status: tasksOf.parse(await api(`/v1/commands/${id}`)).tasks[0]?.status ?? 'none',
      };
    };
    const until = (root: number, status: string): Promise<void> =>
      expect
        .poll(async () => (await copyOf(root)).status, { timeout: 30_000, interval: 50 })
        .toBe(status);
    // The first copy holds the slot before the second migration starts: then the second's
    // copy can only wait (which reaches its copy stage first is not up to the test otherwise).
    const first = await submit('disk.migrate', { disk: 'q1', ...slow });
    await until(first, 'running');
    const second = await submit('disk.migrate', { disk: 'q2', ...slow });
    await until(second, 'queued');
    const copyId = (await copyOf(second)).id;
    await page.goto(`${server}/#/commands/${copyId}`);
    const waiting = page.locator('table[aria-label="tasks"] .queue');
    await waiting.waitFor();
    expect(await waiting.textContent()).toMatch(/queued for host-1: 0 ahead/);
    expect(await page.locator('p[aria-label="waiting for admission"]').textContent()).toContain(
      'queued for host-1',
    );
    await shot('6-queued-copy');
    // The Agents page shows the slot held and the copy queued for it.
    await page.goto(`${server}/#/agents`);
    const copyRow = page.locator('table[aria-label="admission"] tr[data-verb="volume.copy"]');
    await expect.poll(() => copyRow.locator('td.num').allTextContents()).toEqual(['1 / 1', '1']);
    expect(
      await page
        .locator('table[aria-label="admission"] tr.waiting[data-admission="host-1"]')
        .count(),
    ).toBe(1);
    await shot('6b-admission');
    // The first migration ends (cancelled): the slot frees, the waiting copy starts.
    await api(`/v1/commands/${first}/cancel`, {});
    expect(await ended(first)).toBe('cancelled');
    await until(second, 'running');
    await api(`/v1/commands/${second}/cancel`, {});
    expect(await ended(second)).toBe('cancelled');
  }, 120_000);

  it('shows the agent going down and coming back up with a new boot id', async () => {
    // A slow copy keeps the node calling the agent.
    const copy = await submit('disk.copy', {
      disk: 'd2',
      toDomain: 'sd-c',
      toVolume: 'd2-copy',
      agent: 'host-1',
      chunkBytes: 512,
    });
    await page.goto(`${server}/#/agents`);
    const row = page.locator('tr[data-agent="host-1"]');
    await expect.poll(() => row.locator('.badge').textContent()).toBe('up');
    const bootBefore = await row.locator('td:nth-child(5)').getAttribute('title');
    await killHard(agent);
    await expect.poll(() => row.locator('.badge').textContent(), { timeout: 20_000 }).toBe('down');
    await shot('6-agent-down');
    agent = await startAgent();
    await expect.poll(() => row.locator('.badge').textContent(), { timeout: 20_000 }).toBe('up');
    await expect
      .poll(() => row.locator('td:nth-child(5)').getAttribute('title'))
      .toBe(agent.bootId);
    expect(agent.bootId).not.toBe(bootBefore);
    await expect
      .poll(() => page.locator('ol.log').textContent())
      .toMatch(/went down[\s\S]*came up|came up[\s\S]*went down/);
    await shot('7-agent-up');
    await ended(copy);
    // The list and the problems page, dark: every job ended, nothing unreadable or held.
    await page.goto(`${server}/#/jobs`);
    await expect.poll(() => page.locator('tr[data-job]').count()).toBe(roots);
    await shot('8-jobs');
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(`${server}/#/problems`);
    await page.locator('button', { hasText: 'Scan again' }).and(page.locator(':enabled')).waitFor();
    expect(await page.locator('table[aria-label="unreadable rows"]').count()).toBe(0);
    expect(await page.locator('main [role=alert]').count()).toBe(0);
    await shot('9-problems-dark');
    // host-1 removed from the configuration, another agent in its place, and the node reloaded:
    // host-1 is shown retired (its row kept), and the change logged.
    await page.goto(`${server}/#/agents`);
    const retiredRow = page.locator('tr[data-agent="host-1"]');
    await retiredRow.waitFor();
    const body = JSON.parse(readFileSync(config, 'utf8')) as { agents: unknown[] };
    body.agents = [{ id: 'host-2', url: 'http://127.0.0.1:9', secret: SECRET }];
    writeFileSync(config, JSON.stringify(body));
    serve.child.kill('SIGHUP');
    await expect
      .poll(() => retiredRow.locator('.badge').allTextContents(), { timeout: 10_000 })
      .toEqual(['up', 'retired']);
    await expect
      .poll(() => page.locator('ol.log').textContent())
      .toContain('host-1 retired (removed from the configuration): drained');
    // When, and what a drain means, on the badge.
    expect(
      await retiredRow.locator('.badge', { hasText: 'retired' }).getAttribute('title'),
    ).toMatch(/^retired at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}: .*Drained/);
    await shot('9b-agent-retired-dark');
    // An operator may not forget it; an admin may, once nothing of the node is on it.
    expect(await retiredRow.locator('button[data-forget]').count()).toBe(0);
    const admin = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const root = await admin.newPage();
    await signIn(root, ADMIN);
    await root.goto(`${server}/#/agents`);
    await root.locator('tr[data-agent="host-1"] button[data-forget="host-1"]').click();
    await root.locator('dialog#confirm[open]').waitFor();
    await root.click('#confirm-forget');
    await root.locator('tr[data-agent="host-1"]').waitFor({ state: 'detached' });
    expect(await root.locator('tr[data-agent]').count()).toBe(1);
    await admin.close();
    expect(dialogs).toEqual([]);
    expect(violations).toEqual([]);
    // ~19 s on a quiet machine (an agent's fall and return are found by real timers); its two
    // polls allow 20 s each: the default 30 s was passed on a loaded one.
  }, 90_000);

  it('says when the node does not answer, and stops saying it once it does', async () => {
    await page.goto(`${server}/#/jobs`);
    const banner = page.locator('.notice.health');
    await page.locator('tr[data-job]').first().waitFor();
    expect(await banner.count()).toBe(0);
    // The node's process frozen: its readiness read gets no answer.
    serve.child.kill('SIGSTOP');
    try {
      await banner.waitFor({ timeout: 20_000 });
      expect(await banner.getAttribute('data-health')).toBe('unreachable');
      expect(await banner.textContent()).toContain(
        'The node does not answer (no answer within 3 s)',
      );
      await shot('10-node-unreachable');
    } finally {
      serve.child.kill('SIGCONT');
    }
    await banner.waitFor({ state: 'detached', timeout: 20_000 });
  });

  it('shows a tree the store refused as held, and an operator releases it once the cause is gone', async () => {
    // host-1 listed again (an earlier test retired and forgot it): it takes tasks again.
    const body = JSON.parse(readFileSync(config, 'utf8')) as { agents: unknown[] };
    body.agents = [{ id: 'host-1', url: agent.url, secret: SECRET }];
    writeFileSync(config, JSON.stringify(body));
    serve.child.kill('SIGHUP');
    const agents = z.object({
      agents: z.array(z.object({ id: z.string(), state: z.string(), configured: z.boolean() })),
    });
    await expect
      .poll(
        async () =>
          agents
            .parse(await api('/v1/agents'))
            .agents.some((a) => a.id === 'host-1' && a.configured && a.state === 'up'),
        { timeout: 10_000 },
      )
      .toBe(true);
    const create = await submit('disk.create', {
      disk: 'd9',
      domain: 'sd-a',
      sizeBytes: 1 * MiB,
      agent: 'host-1',
      seed: 9,
    });
    expect(await ended(create)).toBe('succeeded');
    // The store refuses a verify task (a trigger added here): the migration's tree is held.
    const db = join(dir, 'coco.db');
    const sql = (text: string): void => {
      const conn = new Database(db);
      try {
        conn.exec(text);
      } finally {
        conn.close();
      }
    };
    sql(
      "CREATE TRIGGER refuse_verify BEFORE INSERT ON tasks WHEN NEW.verb = 'volume.verify' " +
        "BEGIN SELECT RAISE(ABORT, 'verify refused by the test'); END",
    );
    const id = await submit('disk.migrate', { disk: 'd9', toDomain: 'sd-b', agent: 'host-1' });
    // The node halts and rejoins; then the command reads held.
    const releasable = z.object({ releasable: z.boolean() }).passthrough();
    await expect
      .poll(
        async () => {
          try {
            return releasable.parse(await api(`/v1/commands/${id}`)).releasable;
          } catch {
            return false;
          }
        },
        { timeout: 20_000 },
      )
      .toBe(true);
    await page.goto(`${server}/#/commands/${id}`);
    const release = page.locator(`button[data-release="${id}"]`);
    await release.waitFor();
    expect(await page.locator('.notice.warn').textContent()).toMatch(/TREE_REFUSED/);
    await shot('11-tree-refused-held');
    sql('DROP TRIGGER refuse_verify');
    await release.click();
    await page.locator('dialog#confirm[open]').waitFor();
    await page.click('#confirm-release');
    expect(await ended(id)).toBe('succeeded');
    await expect.poll(() => page.locator(`button[data-release="${id}"]`).count()).toBe(0);
    expect(dialogs).toEqual([]);
    expect(violations).toEqual([]);
  });

  it('pauses a command type for an operator, shows a migration waiting for it, and resumes it', async () => {
    const REASON = 'storage array firmware <b>upgrade</b>';
    const typesOf = z.object({
      types: z.array(
        z
          .object({
            name: z.string(),
            queued: z.number(),
            paused: z
              .object({ by: z.string().nullable(), reason: z.string().nullable() })
              .nullable(),
          })
          .passthrough(),
      ),
    });
    const migrateType = async () =>
      typesOf.parse(await api('/v1/types')).types.find((t) => t.name === 'disk.migrate');
    const create = await submit('disk.create', {
      disk: 'd12',
      domain: 'sd-a',
      sizeBytes: 1 * MiB,
      agent: 'host-1',
      seed: 12,
    });
    expect(await ended(create)).toBe('succeeded');

    // The operator pauses disk.migrate from the Types page, with a reason.
    await page.goto(`${server}/#/types`);
    const row = page.locator('tr[data-type="disk.migrate"]');
    await row.waitFor();
    expect(await row.locator('.paused-cell').textContent()).not.toContain('paused');
    // A child-only type is marked so, and cannot be paused.
    const copyRow = page.locator('tr[data-type="disk.migrate.copy"]');
    expect(await copyRow.locator('.tag').textContent()).toBe('child only');
    expect(await copyRow.locator('button[data-pause]').count()).toBe(0);
    expect(await row.locator('button[data-resume]').count()).toBe(0);
    await row.locator('button[data-pause="disk.migrate"]').click();
    await page.locator('dialog#confirm[open]').waitFor();
    await page.fill('#confirm-text', REASON);
    await shot('12a-confirm-pause');
    await page.click('#confirm-pause');
    await expect.poll(() => row.locator('.paused-cell').textContent()).toContain('by ops');
    expect(await row.locator('.paused-cell .reason').textContent()).toBe(REASON);
    expect(await row.locator('button[data-pause]').count()).toBe(0);
    expect((await migrateType())?.paused).toEqual({ by: 'ops', reason: REASON });

    // A viewer sees the pause, and neither a Pause nor a Resume button.
    const viewer = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const watcher = await viewer.newPage();
    await signIn(watcher, VIEWER);
    await watcher.goto(`${server}/#/types`);
    const seen = watcher.locator('tr[data-type="disk.migrate"]');
    await expect.poll(() => seen.locator('.paused-cell').textContent()).toContain('by ops');
    expect(await watcher.locator('tr[data-type="disk.create"]').count()).toBe(1);
    expect(await watcher.locator('button[data-pause], button[data-resume]').count()).toBe(0);
    await shot('12-types-viewer', watcher);
    await viewer.close();

    // A migration submitted now is stored and waits: its job page says for what.
    const id = await submit('disk.migrate', { disk: 'd12', toDomain: 'sd-b', agent: 'host-1' });
    await page.goto(`${server}/#/jobs/${id}`);
    const waiting = page.locator('p[aria-label="waiting for a paused type"]');
    await waiting.waitFor({ timeout: 10_000 });
    // (As it reads: the template's line breaks are spaces on the page.)
    expect((await waiting.textContent())?.replace(/\s+/g, ' ')).toMatch(
      /Waiting: disk\.migrate is paused \(by ops, \d+ s ago: storage array firmware <b>upgrade<\/b>\) — resume it on the Types page\./,
    );
    expect(await page.locator('main b').count()).toBe(0);
    expect(statusOf.parse(await api(`/v1/commands/${id}`)).status).toBe('pending');
    await shot('12-type-paused');
    // Its command page says it too.
    await page.goto(`${server}/#/commands/${id}`);
    await page.locator('p[aria-label="waiting for a paused type"]').waitFor();
    // The problems page lists the pause, with the migration waiting for it.
    await page.goto(`${server}/#/problems`);
    const problem = page.locator('table[aria-label="paused types"] tr[data-paused="disk.migrate"]');
    await problem.waitFor();
    expect(await problem.locator('td.num').textContent()).toBe('1');
    await shot('12b-problems-paused');

    // The link goes to the Types page, which shows the root queued; a confirmed resume runs it.
    await page.goto(`${server}/#/jobs/${id}`);
    await page.locator('p[aria-label="waiting for a paused type"] a[data-types-link]').click();
    await expect.poll(() => new URL(page.url()).hash).toBe('#/types?type=disk.migrate');
    await expect.poll(() => row.locator('td[data-queued]').textContent()).toBe('1');
    expect(await row.getAttribute('class')).toContain('selected');
    await shot('12c-types-queued');
    await row.locator('button[data-resume="disk.migrate"]').click();
    await page.locator('dialog#confirm[open]').waitFor();
    expect(await page.locator('dialog#confirm').textContent()).toContain('the 1 waiting');
    await page.click('#confirm-resume');
    await expect
      .poll(() => row.locator('.paused-cell').textContent(), { timeout: 10_000 })
      .not.toContain('paused');
    expect(await row.locator('button[data-pause="disk.migrate"]').count()).toBe(1);
    expect(await ended(id)).toBe('succeeded');
    expect((await migrateType())?.paused).toBeNull();
    await page.goto(`${server}/#/jobs/${id}`);
    await expect
      .poll(() => page.locator(`tr[data-step="c${id}"] .badge`).first().textContent(), {
        timeout: 10_000,
      })
      .toBe('succeeded');
    expect(await page.locator('p[aria-label="waiting for a paused type"]').count()).toBe(0);
    await shot('12d-type-resumed');
    expect(dialogs).toEqual([]);
    expect(violations).toEqual([]);
  }, 60_000);
});
