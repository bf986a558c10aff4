/**
 * Paging through 10,000 commands: every command once, newest first, keyset cursors that new
 * submits do not shift, and the filters (type, roots only, status, created and ended times).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandPage, type CommandSummary } from '../../src/http/contracts.js';
import { other, startApiNode, work, type ApiNode } from './support.js';

const COUNT = 10_000;
let api: ApiNode;
let ids: number[];
let cut: number;
beforeAll(async () => {
  api = await startApiNode();
  // Two groups, apart in time: the older half api.work, then api.other.
  const first = await api.node.engine.submitMany(
    Array.from({ length: COUNT / 2 }, () => ({ type: work, params: {} })),
  );
  const firstIds = first.map((c) => c.id);
  const last = await api.node.engine.get(firstIds.at(-1)!);
  while (Date.now() <= last!.createdAt) await new Promise((r) => setTimeout(r, 1));
  cut = Date.now();
  const second = await api.node.engine.submitMany(
    Array.from({ length: COUNT / 2 }, () => ({ type: other, params: {} })),
  );
  ids = [...firstIds, ...second.map((c) => c.id)];
  await Promise.all([
    api.node.engine.waitFor(ids.at(-1)!),
    api.node.engine.waitFor(firstIds.at(-1)!),
  ]);
}, 120_000);
afterAll(async () => {
  await api.close();
});

async function all(query: string): Promise<CommandSummary[]> {
  const out: CommandSummary[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const q: string = `/v1/commands?limit=500${query}${cursor ? `&cursor=${cursor}` : ''}`;
    const r = await api.call('GET', q, { role: 'viewer' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const page = commandPage.parse(r.body);
    expect(page.commands.length).toBeLessThanOrEqual(500);
    out.push(...page.commands);
    cursor = page.nextCursor;
    // A submit between pages lands before the first page and never shifts the next ones.
    if (pages++ === 3) await api.node.engine.submit(other, {});
  } while (cursor !== null);
  return out;
}

describe(`paging through ${COUNT} commands`, () => {
  it('every command exactly once, newest first', async () => {
    const seen = await all('');
    const mine = seen.filter((c) => ids.includes(c.id)).map((c) => c.id);
    expect(mine).toHaveLength(COUNT);
    expect(new Set(mine).size).toBe(COUNT);
    expect(mine).toEqual([...ids].sort((a, b) => b - a));
    const every = seen.map((c) => c.id);
    expect(every).toEqual([...every].sort((a, b) => b - a));
  });

  it('filters: type, roots only, status, created and ended times', async () => {
    const works = await all('&type=api.work');
    expect(works).toHaveLength(COUNT / 2);
    expect(works.every((c) => c.type === 'api.work')).toBe(true);
    expect((await all('&rootsOnly=true&type=api.work')).length).toBe(COUNT / 2);
    expect((await all('&status=succeeded&type=api.work')).length).toBe(COUNT / 2);
    expect((await all('&status=failed,cancelled')).length).toBe(0);
    const before = await all(`&createdBefore=${cut}`);
    expect(before.map((c) => c.type)).toEqual(Array(COUNT / 2).fill('api.work'));
    const after = await all(`&createdAfter=${new Date(cut).toISOString()}&type=api.other`);
    expect(after.length).toBeGreaterThanOrEqual(COUNT / 2);
    const ended = await all(`&endedAfter=0&endedBefore=${Date.now() + 1}&type=api.work`);
    expect(ended).toHaveLength(COUNT / 2);
    expect(ended.every((c) => c.endedAt !== null)).toBe(true);
  });
});
