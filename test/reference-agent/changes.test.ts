/**
 * The change feed: over HTTP (cursor, long-poll, stale boot cursor) and as a unit (coalescing,
 * paging, prefixes).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ChangeFeed, type Verb } from '../../src/reference-agent/index.js';
import { agent, cleanup, gate, server } from './support.js';

afterEach(cleanup);

describe('POST /v1/tasks/changes', () => {
  it('returns every task from cursor 0, each once with its latest status, then nothing new', async () => {
    const { agent: a, client } = await agent();
    await client.start([
      { taskId: 'x:1', verb: 'noop', args: 1 },
      { taskId: 'x:2', verb: 'sleep', args: { ms: 60_000 } },
      { taskId: 'y:1', verb: 'noop', args: 3 },
    ]);
    const all = await client.changes({ cursor: 0 });
    expect(all.bootId).toBe(a.bootId);
    expect(all.tasks).toEqual([
      { taskId: 'x:1', state: 'succeeded', result: 1 },
      { taskId: 'x:2', state: 'running', progress: 0 },
      { taskId: 'y:1', state: 'succeeded', result: 3 },
    ]);
    const mine = await client.changes({ cursor: 0, prefix: 'x:' });
    expect(mine.tasks.map((t) => t.taskId)).toEqual(['x:1', 'x:2']);
    const none = await client.changes({ cursor: all.cursor, bootId: a.bootId });
    expect(none).toEqual({ bootId: a.bootId, cursor: all.cursor, tasks: [] });
  });

  it('answers at once when something changed after the cursor, even with a long wait', async () => {
    const { agent: a, client } = await agent();
    const { cursor } = await client.changes({ cursor: 0 });
    await client.start([{ taskId: 't', verb: 'noop' }]);
    const started = Date.now();
    const page = await client.changes({ cursor, bootId: a.bootId, waitMs: 20_000 });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(page.tasks).toEqual([{ taskId: 't', state: 'succeeded', result: null }]);
    expect(page.cursor).toBeGreaterThan(cursor);
  });

  it('waits when nothing changed and wakes on the next change of its prefix', async () => {
    const release = gate();
    const held: Verb = () => release.promise;
    const { server: agentServer, client } = await server({ verbs: { held } });
    await client.start([{ taskId: 'a:1', verb: 'held' }]);
    const { cursor } = await client.changes({ cursor: 0 });

    const started = Date.now();
    const poll = client.changes({
      cursor,
      bootId: agentServer.bootId,
      waitMs: 20_000,
      prefix: 'a:',
    });
    await vi.waitFor(() => expect(agentServer.feed.waiting).toBe(1));
    // A change outside the prefix does not wake it.
    await client.start([{ taskId: 'b:1', verb: 'noop' }]);
    expect(agentServer.feed.waiting).toBe(1);
    release.open('done');
    const page = await poll;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(page.tasks).toEqual([{ taskId: 'a:1', state: 'succeeded', result: 'done' }]);
    expect(agentServer.feed.waiting).toBe(0);
  });

  it('answers empty with the same cursor after waitMs when nothing changes', async () => {
    const { agent: a, client } = await agent();
    await client.start([{ taskId: 't', verb: 'noop' }]);
    const { cursor } = await client.changes({ cursor: 0 });
    const started = Date.now();
    const page = await client.changes({ cursor, bootId: a.bootId, waitMs: 300 });
    const elapsed = Date.now() - started;
    expect(page).toEqual({ bootId: a.bootId, cursor, tasks: [] });
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(5_000);
  });

  it('restarts from 0 for a cursor of another boot (or one this boot never handed out)', async () => {
    const { agent: a, client } = await agent();
    await client.start([
      { taskId: 'p', verb: 'noop' },
      { taskId: 'q', verb: 'noop' },
    ]);
    const stale = await client.changes({ cursor: 1, bootId: 'an-older-boot', waitMs: 10_000 });
    expect(stale.bootId).toBe(a.bootId);
    expect(stale.tasks.map((t) => t.taskId)).toEqual(['p', 'q']);
    const ahead = await client.changes({ cursor: 1_000_000 });
    expect(ahead.tasks.map((t) => t.taskId)).toEqual(['p', 'q']);
    expect(ahead.cursor).toBe(stale.cursor);
  });

  it('answers pending long-polls when the agent closes', async () => {
    const { server: agentServer, client } = await server();
    const { cursor } = await client.changes({ cursor: 0 });
    const poll = client.changes({ cursor, bootId: agentServer.bootId, waitMs: 20_000 });
    await vi.waitFor(() => expect(agentServer.feed.waiting).toBe(1));
    const started = Date.now();
    await agentServer.close();
    expect((await poll).tasks).toEqual([]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('ChangeFeed', () => {
  it('coalesces: one entry per task, ordered by its latest change', () => {
    const feed = new ChangeFeed('boot');
    for (const id of ['a', 'b', 'c', 'a', 'b', 'a']) feed.changed(id);
    expect(feed.cursor).toBe(6);
    expect(feed.since(0, '')).toEqual({ cursor: 6, taskIds: ['c', 'b', 'a'] });
    expect(feed.since(4, '')).toEqual({ cursor: 6, taskIds: ['b', 'a'] });
    expect(feed.since(6, '')).toEqual({ cursor: 6, taskIds: [] });
    feed.forgotten('b');
    expect(feed.since(0, '')).toEqual({ cursor: 6, taskIds: ['c', 'a'] });
  });

  it('pages: the cursor stops where the page ends, the next page continues', () => {
    const feed = new ChangeFeed('boot');
    for (const id of ['n:1', 'm:1', 'n:2', 'n:3', 'm:2']) feed.changed(id);
    const first = feed.since(0, 'n:', 2);
    expect(first.taskIds).toEqual(['n:1', 'n:2']);
    const second = feed.since(first.cursor, 'n:', 2);
    expect(second).toEqual({ cursor: 5, taskIds: ['n:3'] });
  });

  it('maps foreign and impossible cursors to 0', () => {
    const feed = new ChangeFeed('boot');
    feed.changed('a');
    expect(feed.from(1, 'boot')).toBe(1);
    expect(feed.from(1, 'other')).toBe(0);
    expect(feed.from(7, undefined)).toBe(0);
  });

  it('wait resolves on a matching change, on abort, or at once when a change is pending', async () => {
    const feed = new ChangeFeed('boot');
    const woken = feed.wait(0, 'a', 60_000);
    feed.changed('b');
    expect(feed.waiting).toBe(1);
    feed.changed('a1');
    await woken;
    expect(feed.waiting).toBe(0);
    await feed.wait(0, 'a', 60_000); // 'a1' changed after 0: at once
    const hangUp = new AbortController();
    const aborted = feed.wait(feed.cursor, '', 60_000, hangUp.signal);
    hangUp.abort();
    await aborted;
    expect(feed.waiting).toBe(0);
  });
});
