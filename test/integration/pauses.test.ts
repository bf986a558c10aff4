/**
 * Pausing command types (engine/pauses.ts, engine/root-admission.ts): a paused type's new roots
 * are stored and wait, queued, until it is resumed — across a restart (real SQLite) and across
 * nodes (PostgreSQL, signalled) — while its running roots, other types and children go on.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand } from '../../src/core/command-type.js';
import { ErrorCode } from '../../src/core/errors.js';
import type { Engine } from '../../src/engine/engine.js';
import { rejectsWith } from '../store-conformance/harness.js';
import { assertNoLeakedEngines, holdVerbs, startEnv } from '../support/harness.js';
import { describePg } from '../support/pg.js';
import { inProcessCluster } from '../cluster/fixtures/in-process.js';
import { until } from '../brokers/http-setup.js';

afterEach(assertNoLeakedEngines);

/** One task on a1 that runs until the test releases its key. */
const migrate = defineCommand({
  name: 'pause.migrate',
  aliases: ['pause.move'],
  schema: z.object({ key: z.string() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.key } });
  },
});

/** Another type, never paused here. */
const other = defineCommand({
  name: 'pause.other',
  schema: z.object({ key: z.string() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'hold', args: { key: ctx.params.key } });
  },
});

/** Runs one child of the paused type: children are never held. */
const parent = defineCommand({
  name: 'pause.parent',
  schema: z.object({ key: z.string() }),
  execute(ctx) {
    ctx.expect({ children: 1 });
    ctx.addChild(migrate, { key: ctx.params.key });
  },
});

/** A child-only type: it has no roots to pause. */
const leaf = defineCommand({
  name: 'pause.leaf',
  childOnly: true,
  schema: z.object({}),
  execute() {},
});

const commands = [migrate, other, parent, leaf];

async function statusOf(engine: Engine, id: number): Promise<string | undefined> {
  return (await engine.get(id))?.status;
}

describe('paused command types (SQLite)', () => {
  it("holds a paused type's new roots, stored queued, across a restart, until a resume", async () => {
    const hold = holdVerbs();
    let env = await startEnv({ commands, verbs: hold.verbs });
    try {
      const paused = env.record('type-paused');
      const running = await env.engine.submit(migrate, { key: 'running' });
      await until(() => hold.held('running'), 5_000, 'the first migration runs');

      const pause = await env.engine.pauseType('pause.move', { reason: 'SAN upgrade', by: 'ops' });
      expect(pause).toMatchObject({ type: 'pause.migrate', reason: 'SAN upgrade', by: 'ops' });
      expect(paused).toEqual([pause]);
      // Paused again: the first pause stays, and nothing is told again.
      expect(await env.engine.pauseType('pause.migrate', { by: 'someone else' })).toEqual(pause);
      expect(paused).toHaveLength(1);

      const waiting = await env.engine.submit(migrate, { key: 'waiting' });
      const detail = await env.engine.inspect(waiting.id);
      expect(detail?.command.status).toBe('pending');
      expect(detail?.command.queuedSince).not.toBeNull();
      expect(detail?.rootQueue).toMatchObject({
        paused: pause,
        text: 'queued: 0 ahead, pause.migrate paused',
      });
      // Stored queued: what a restart reads.
      expect((await env.store.getCommand(waiting.id))?.queuedSince).not.toBeNull();

      // Other types, and the paused type's running root, go on; so do children of the type.
      hold.release('b');
      const b = await env.engine.submit(other, { key: 'b' });
      expect((await env.engine.waitFor(b.id)).status).toBe('succeeded');
      hold.release('child');
      const p = await env.engine.submit(parent, { key: 'child' });
      expect((await env.engine.waitFor(p.id)).status).toBe('succeeded');
      hold.release('running');
      expect((await env.engine.waitFor(running.id)).status).toBe('succeeded');
      // A slot freed: still the paused root waits, its task never started.
      expect(await statusOf(env.engine, waiting.id)).toBe('pending');
      expect(hold.held('waiting')).toBe(false);
      expect(env.engine.rootAdmissionStats()).toContainEqual({
        type: 'pause.migrate',
        limit: null,
        running: 0,
        queued: 1,
        paused: pause,
      });

      // The pause outlives a restart: loaded again, the root waits again.
      env = await env.restart();
      expect([...env.engine.pausedTypes().values()]).toEqual([pause]);
      hold.release('c');
      const c = await env.engine.submit(other, { key: 'c' });
      expect((await env.engine.waitFor(c.id)).status).toBe('succeeded');
      expect(await statusOf(env.engine, waiting.id)).toBe('pending');
      expect(hold.held('waiting')).toBe(false);

      // Resumed: it runs, and a second resume finds no pause.
      const resumed = env.record('type-resumed');
      expect(await env.engine.resumeType('pause.migrate')).toEqual(pause);
      expect(resumed).toEqual([pause]);
      await until(() => hold.held('waiting'), 5_000, 'the waiting migration runs');
      hold.release('waiting');
      expect((await env.engine.waitFor(waiting.id)).status).toBe('succeeded');
      expect((await env.engine.get(waiting.id))?.queuedSince).toBeNull();
      expect(await env.engine.resumeType('pause.migrate')).toBeNull();
      expect(env.engine.pausedTypes().size).toBe(0);
    } finally {
      await env.cleanup();
    }
  });

  it('a queued root of a paused type is cancelled without running; bad pauses are refused', async () => {
    const hold = holdVerbs();
    const env = await startEnv({ commands, verbs: hold.verbs });
    try {
      await env.engine.pauseType('pause.migrate');
      const { id } = await env.engine.submit(migrate, { key: 'never' });
      await env.engine.cancel(id);
      expect((await env.engine.waitFor(id)).status).toBe('cancelled');
      expect(hold.held('never')).toBe(false);
      expect(env.engine.rootAdmissionStats()).toContainEqual(
        expect.objectContaining({ type: 'pause.migrate', queued: 0 }),
      );

      await rejectsWith(env.engine.pauseType('no.such'), ErrorCode.UnknownCommandType);
      await rejectsWith(env.engine.pauseType('pause.leaf'), ErrorCode.CommandTypeNotSubmittable);
      await rejectsWith(
        env.engine.pauseType('pause.other', { reason: 'x'.repeat(501) }),
        ErrorCode.ParametersInvalid,
      );
      // Nothing of a refused pause was kept.
      expect((await env.store.pausedTypes()).map((p) => p.type)).toEqual(['pause.migrate']);
      expect(await env.engine.resumeType('no.such')).toBeNull();
    } finally {
      await env.cleanup();
    }
  });
});

describePg('paused command types across nodes', () => {
  it('a pause on one node holds the roots submitted to another; a resume there lets them run', async () => {
    const hold = holdVerbs();
    const cluster = inProcessCluster({
      prefix: 'coco_pause',
      agents: inProcessAgents(['a1'], { verbs: hold.verbs }),
      commands,
      // Signals, not the claim tick, carry the pause: a tick this long would time the test out.
      tuning: { claimIntervalMs: 60_000 },
    });
    const a = await cluster.start('a');
    const b = await cluster.start('b');
    const seen = new Promise<void>((resolve) => b.on('type-paused', () => resolve()));
    const pause = await a.pauseType('pause.migrate', { reason: 'maintenance' });
    await seen;
    expect(b.pausedTypes().get('pause.migrate')).toEqual(pause);

    const { id } = await b.submit(migrate, { key: 'held' });
    expect((await b.inspect(id))?.rootQueue?.paused).toEqual(pause);
    hold.release('o');
    const o = await b.submit(other, { key: 'o' });
    expect((await b.waitFor(o.id)).status).toBe('succeeded');
    expect(await statusOf(b, id)).toBe('pending');
    expect(hold.held('held')).toBe(false);

    // A third node started now reads the pause at its start.
    const c = await cluster.start('c');
    expect(c.pausedTypes().get('pause.migrate')).toEqual(pause);

    const resumed = new Promise<void>((resolve) => b.on('type-resumed', () => resolve()));
    expect(await a.resumeType('pause.migrate')).toEqual(pause);
    await resumed;
    await until(() => hold.held('held'), 10_000, 'the held migration runs on node b');
    hold.release('held');
    expect((await b.waitFor(id)).status).toBe('succeeded');
    expect(c.pausedTypes().size).toBe(0);
  });
});
