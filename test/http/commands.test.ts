/**
 * The command routes as the contract says: submit (unknown type, idempotent resubmission and its
 * conflict), the detail (parameters, status history, tasks, child ids), unknown ids, cancel,
 * agents with their tasks in flight, and the stream of job changes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCommand } from '../../src/core/command-type.js';
import { agentList, commandDetail, commandPage, jobPage } from '../../src/http/contracts.js';
import { TOKENS } from '../support/api.js';
import { chain, codeOf, hold, other, startApiNode, work, type ApiNode } from './support.js';

let api: ApiNode;
beforeAll(async () => {
  api = await startApiNode();
});
afterAll(async () => {
  await api.close();
});

describe('submit', () => {
  it('an unknown type is UNKNOWN_COMMAND_TYPE (400) naming the known ones; nothing stored', async () => {
    const r = await api.call('POST', '/v1/commands', { body: { type: 'no.such', params: {} } });
    expect(r.status).toBe(400);
    expect(codeOf(r.body)).toBe('UNKNOWN_COMMAND_TYPE');
    expect(JSON.stringify(r.body)).toContain('known: api.chain, api.other, api.work');
  });

  it('bad parameters: 400 PARAMETERS_INVALID naming the field; a bad body: 400 BAD_REQUEST', async () => {
    const r = await api.call('POST', '/v1/commands', {
      body: { type: 'api.work', params: { tasks: 'two' } },
    });
    expect(r.status).toBe(400);
    expect(codeOf(r.body)).toBe('PARAMETERS_INVALID');
    const bad = await api.call('POST', '/v1/commands', { body: { type: 'api.work', extra: 1 } });
    expect(bad.status).toBe(400);
    expect(codeOf(bad.body)).toBe('BAD_REQUEST');
    const notJson = await api.call('POST', '/v1/commands', {
      body: '{nope',
      headers: { 'content-type': 'application/json' },
    });
    expect(notJson.status).toBe(400);
    expect(codeOf(notJson.body)).toBe('BAD_REQUEST');
  });

  it('an idempotency key again with the same type and parameters gives the first command (200); with others, 409', async () => {
    const body = {
      type: 'api.work',
      params: { tasks: 0, note: 'a', verb: 'noop' },
      idempotencyKey: 'k-1',
    };
    const first = await api.call('POST', '/v1/commands', { body });
    expect(first.status).toBe(201);
    const { id } = first.body as { id: number };
    // The same parameters in another key order are the same parameters.
    const again = await api.call('POST', '/v1/commands', {
      body: { ...body, params: { verb: 'noop', note: 'a', tasks: 0 } },
    });
    expect(again).toEqual({ status: 200, body: { id } });
    const before = (await api.node.engine.list()).commands.length;
    const other = await api.call('POST', '/v1/commands', {
      body: { ...body, params: { tasks: 0, note: 'b' } },
    });
    expect(other.status).toBe(409);
    expect(codeOf(other.body)).toBe('IDEMPOTENCY_CONFLICT');
    expect(other.body).toMatchObject({ error: { details: { commandId: id } } });
    const otherType = await api.call('POST', '/v1/commands', {
      body: { type: 'api.other', params: {}, idempotencyKey: 'k-1' },
    });
    expect(otherType.status).toBe(409);
    expect((await api.node.engine.list()).commands.length).toBe(before);
  });

  it('concurrent submits with one key make one command; a conflicting one among them is refused', async () => {
    const body = { type: 'api.work', params: { note: 'c' }, idempotencyKey: 'k-2' };
    const answers = await Promise.all([
      ...Array.from({ length: 5 }, () => api.call('POST', '/v1/commands', { body })),
      api.call('POST', '/v1/commands', { body: { ...body, params: { note: 'd' } } }),
    ]);
    const ids = new Set(answers.slice(0, 5).map((a) => (a.body as { id: number }).id));
    expect(ids.size).toBe(1);
    expect(
      answers
        .slice(0, 5)
        .map((a) => a.status)
        .sort(),
    ).toEqual([200, 200, 200, 200, 201]);
    expect(answers[5]!.status).toBe(409);
  });
});

describe('detail, unknown ids, cancel', () => {
  it('the detail has the parameters, the stored status history, tasks and child ids', async () => {
    const { id } = await api.node.engine.submit(work, { tasks: 1, note: 'detail' });
    await api.node.engine.waitFor(id);
    const r = await api.call('GET', `/v1/commands/${id}`, { role: 'viewer' });
    expect(r.status).toBe(200);
    const d = commandDetail.parse(r.body);
    expect(d).toMatchObject({
      id,
      type: 'api.work',
      status: 'succeeded',
      parentId: null,
      rootId: id,
      params: { tasks: 1, note: 'detail' },
      paramsVersion: 1,
      children: [],
      error: null,
    });
    expect(d.tasks).toHaveLength(1);
    expect(d.statusHistory[0]).toEqual({ status: 'pending', at: d.createdAt });
    expect(d.statusHistory.at(-1)).toMatchObject({ status: 'succeeded' });
    expect(d.statusHistory.map((h) => h.at)).toEqual([...d.statusHistory.map((h) => h.at)].sort());
    // Exactly the contract's fields.
    expect(Object.keys(r.body as object).sort()).toEqual(Object.keys(commandDetail.shape).sort());
  });

  it("the detail gives each child's place: its journal seq (shared with undo steps) and stage", async () => {
    const { id } = await api.node.engine.submit(chain, {});
    expect((await api.node.engine.waitFor(id)).status).toBe('succeeded');
    const d = commandDetail.parse((await api.call('GET', `/v1/commands/${id}`)).body);
    expect(d.children).toHaveLength(2);
    expect(d.childPositions.map((p) => p.id)).toEqual(d.children);
    expect(d.childPositions.map((p) => p.stage)).toEqual([0, 1]);
    // The undo step the second stage recorded sits between the two children in the journal.
    const [first, second] = d.childPositions.map((p) => p.seq!);
    expect(d.undo.map((u) => u.name)).toEqual(['between']);
    expect(d.undo[0]!.seq).toBeGreaterThan(first!);
    expect(d.undo[0]!.seq).toBeLessThan(second!);
    const inspected = await api.node.engine.inspect(id);
    expect(d.childPositions).toEqual(
      inspected!.children.map((c) => ({ id: c.id, seq: c.seq, stage: c.originStage })),
    );
  });

  it("a handler's ctx.log carries the command's id, type and root", async () => {
    const { id } = await api.node.engine.submit(work, { tasks: 0, note: 'log' });
    await api.node.engine.waitFor(id);
    expect(api.logs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          msg: 'api.work runs',
          commandId: id,
          type: 'api.work',
          rootId: id,
        }),
      ]),
    );
  });

  it('unknown ids: 404 COMMAND_NOT_FOUND / NOT_FOUND; a bad id: 400', async () => {
    for (const [path, code] of [
      ['/v1/commands/424242', 'COMMAND_NOT_FOUND'],
      ['/v1/jobs/424242', 'NOT_FOUND'],
      ['/v1/jobs/424242/events', 'NOT_FOUND'],
    ] as const) {
      const r = await api.call('GET', path, { role: 'viewer' });
      expect(r.status, path).toBe(404);
      expect(codeOf(r.body)).toBe(code);
    }
    const cancel = await api.call('POST', '/v1/commands/424242/cancel', { body: {} });
    expect(cancel.status).toBe(404);
    expect(codeOf(cancel.body)).toBe('COMMAND_NOT_FOUND');
    for (const bad of ['abc', '0', '-1', '1.5']) {
      const r = await api.call('GET', `/v1/commands/${bad}`, { role: 'viewer' });
      expect(r.status, bad).toBe(400);
      expect(codeOf(r.body)).toBe('BAD_REQUEST');
    }
  });

  it('cancel (operator): 202, then 409 once ended; agents show the tasks in flight', async () => {
    const { id } = await api.node.engine.submit(work, { tasks: 2, verb: 'hold', key: 'cancel' });
    await api.node.monitor!.flush();
    // In-process agents report no agent records; the count is the dispatcher's.
    agentList.parse((await api.call('GET', '/v1/agents', { role: 'viewer' })).body);
    while ((api.node.engine.tasksInFlight().get('a1') ?? 0) < 2)
      await new Promise((r) => setTimeout(r, 10));
    const r = await api.call('POST', `/v1/commands/${id}/cancel`, { role: 'operator', body: {} });
    expect(r).toEqual({ status: 202, body: { id, cancelRequested: true } });
    expect((await api.node.engine.waitFor(id)).status).toBe('cancelled');
    const again = await api.call('POST', `/v1/commands/${id}/cancel`, { body: {} });
    expect(again.status).toBe(409);
    expect(codeOf(again.body)).toBe('COMMAND_STATE');
  });
});

describe('lists', () => {
  it('are summaries: no parameters; pages by cursor; a bad cursor is 400', async () => {
    const r = await api.call('GET', '/v1/commands?limit=2', { role: 'viewer' });
    const page = commandPage.parse(r.body);
    expect(page.commands).toHaveLength(2);
    for (const c of (r.body as { commands: object[] }).commands)
      expect(Object.keys(c).sort()).toEqual(
        ['createdAt', 'endedAt', 'error', 'id', 'parentId', 'rootId', 'status', 'type'].sort(),
      );
    expect(page.nextCursor).not.toBeNull();
    const next = commandPage.parse(
      (await api.call('GET', `/v1/commands?limit=2&cursor=${page.nextCursor}`, { role: 'viewer' }))
        .body,
    );
    expect(next.commands[0]!.id).toBeLessThan(page.commands[1]!.id);
    for (const q of [
      'cursor=zzz',
      'limit=0',
      'limit=501',
      'status=nope',
      'createdAfter=yesterday',
      'foo=1',
    ]) {
      const bad = await api.call('GET', `/v1/commands?${q}`, { role: 'viewer' });
      expect(bad.status, q).toBe(400);
      expect(codeOf(bad.body)).toBe('BAD_REQUEST');
    }
    const jobs = jobPage.parse(
      (await api.call('GET', '/v1/jobs?limit=1', { role: 'viewer' })).body,
    );
    expect(jobs.jobs).toHaveLength(1);
    expect(jobs.nextCursor).not.toBeNull();
  });
});

describe('GET /v1/events', () => {
  it('streams every job change (event: job, the job record) until the node closes it', async () => {
    const controller = new AbortController();
    const res = await fetch(`${api.url}/v1/events`, {
      headers: { authorization: `Bearer ${TOKENS.viewer}` },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    // The opening comment: the stream is live before the submit.
    while (!text.includes('\n\n')) {
      const chunk = (await reader.read()) as { done: boolean; value?: Uint8Array };
      text += decoder.decode(chunk.value);
    }
    const { id } = await api.node.engine.submit(work, { tasks: 1, verb: 'hold', key: 'events' });
    hold.release('events');
    const seen: { id: number; status: string }[] = [];
    while (!seen.some((j) => j.id === id && j.status === 'succeeded')) {
      const chunk = (await reader.read()) as { done: boolean; value?: Uint8Array };
      if (chunk.done) break;
      text += decoder.decode(chunk.value);
      let end: number;
      while ((end = text.indexOf('\n\n')) >= 0) {
        const event = text.slice(0, end);
        text = text.slice(end + 2);
        if (!event.startsWith('event: job\n')) continue;
        seen.push(
          JSON.parse(event.slice(event.indexOf('data: ') + 6)) as { id: number; status: string },
        );
      }
    }
    expect(seen.filter((j) => j.id === id).map((j) => j.status)).toContain('running');
    expect(seen.filter((j) => j.id === id).at(-1)?.status).toBe('succeeded');
    controller.abort();
  });
});

describe("an ended command's detail, kept", () => {
  it('is answered again from what was rendered, with an ETag (304 when sent back); live ones are not kept; retention drops it', async () => {
    const own = await startApiNode();
    try {
      const get = (id: number, headers: Record<string, string> = {}): Promise<Response> =>
        fetch(`${own.url}/v1/commands/${id}`, {
          headers: { authorization: `Bearer ${TOKENS.viewer}`, ...headers },
        });
      const { id: live } = await own.node.engine.submit(work, {
        tasks: 1,
        verb: 'hold',
        key: 'kept',
      });
      const running = await get(live);
      expect(running.status).toBe(200);
      expect(running.headers.get('etag')).toBeNull();
      expect(commandDetail.parse(await running.json()).status).not.toBe('succeeded');
      hold.release('kept');
      await own.node.engine.waitFor(live);
      // The live detail was not kept: the ended one is read.
      const ended = await get(live);
      const etag = ended.headers.get('etag');
      expect(etag).toMatch(/^"\d+-\d+-[0-9a-z]+"$/);
      expect(ended.headers.get('content-type')).toBe('application/json; charset=utf-8');
      const first = await ended.text();
      expect(commandDetail.parse(JSON.parse(first)).status).toBe('succeeded');
      const again = await get(live);
      expect(again.headers.get('etag')).toBe(etag);
      expect(await again.text()).toBe(first);
      const notModified = await get(live, { 'if-none-match': etag! });
      expect(notModified.status).toBe(304);
      expect(await notModified.text()).toBe('');
      expect((await get(live, { 'if-none-match': '"other"' })).status).toBe(200);
      // Retention deletes the tree: what was kept of it goes too.
      const pruned = await own.call('POST', '/v1/admin/prune', { body: { olderThanMs: 0 } });
      expect(pruned.status).toBe(200);
      expect(pruned.body).toMatchObject({ commands: 1 });
      const gone = await get(live);
      expect(gone.status).toBe(404);
      expect(codeOf(await gone.json())).toBe('COMMAND_NOT_FOUND');
    } finally {
      await own.close();
    }
  });
  it('is not kept while its tree runs: a succeeded child compensated later is read anew', async () => {
    // A child with an undo step, and a parent whose second child holds until it is cancelled.
    const undone = defineCommand({
      name: 'api.undone',
      schema: z.object({}),
      execute(ctx) {
        ctx.addUndo('back');
      },
      undo: { back() {} },
    });
    const saga = defineCommand({
      name: 'api.saga',
      schema: z.object({}),
      execute(ctx) {
        ctx.expect({ children: 2 });
        ctx.addChild(undone, {});
      },
      next(ctx) {
        if (ctx.command.stage === 1) ctx.addChild(work, { tasks: 1, verb: 'hold', key: 'saga' });
      },
    });
    const own = await startApiNode({ commands: [work, other, chain, undone, saga] });
    try {
      const read = async (id: number): Promise<Record<string, unknown>> => {
        const res = await fetch(`${own.url}/v1/commands/${id}`, {
          headers: { authorization: `Bearer ${TOKENS.viewer}` },
        });
        return (await res.json()) as Record<string, unknown>;
      };
      const { id: root } = await own.node.engine.submit(saga, {});
      const first = root + 1;
      // The first child succeeded (its tasks, none, cleared) while its tree still runs: read.
      const child = await own.node.engine.waitFor(first);
      expect(child.status).toBe('succeeded');
      expect((await read(first)).compensation).toBe('none');
      await own.node.engine.cancel(root);
      await own.node.engine.waitFor(root);
      // Its parent's abort compensated it: the detail says so (a kept one would still say none).
      expect((await read(first)).compensation).toBe('compensated');
    } finally {
      hold.release('saga');
      await own.close();
    }
  });
});
