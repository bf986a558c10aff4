/**
 * A batch the store refuses for what it holds used to be tried again for ever: the node stalled
 * behind it (every later submission refused as in a store outage). Now the committer finds the
 * tree whose changes are refused on their own, stores the others', marks that tree held in the
 * store and halts (`TREE_REFUSED`); loaded again, the tree is held — nothing of it runs — while
 * the rest goes on, and a cancel ends it from what was stored; retention deletes the mark with it.
 *
 * The refusal is real: a trigger (SQLite) or a CHECK constraint (PostgreSQL) added by the test
 * refuses a task whose verb is `poison`, asked for in a command's second stage (its root stored
 * by then). Each store's test is seen failing with the committer's isolation turned off.
 */
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { builtinVerbs } from '../../src/verbs/builtins.js';
import { defineCommand } from '../../src/core/command-type.js';
import { ErrorCode, type ErrorInfo } from '../../src/core/errors.js';
import { parseConfig } from '../../src/config/config.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { createNodeMetrics } from '../../src/observability/metrics.js';
import { startNode } from '../../src/server/node.js';
import { postgresStore } from '../../src/store/postgres/pg-store.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/port.js';
import { FAST, tempDir } from '../support/harness.js';
import { parsePrometheusText, sampleValue } from '../support/prom-text.js';
import { PG_URL, adminQuery, describePg, freshSchema } from '../support/pg.js';

/** A first stage with a noop task, a second (a little later) with a task of the verb given. */
const twoStages = defineCommand({
  name: 'refused.two',
  schema: z.object({ verb: z.string() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
  async next(ctx) {
    if (ctx.command.stage !== 1) return;
    // The first stage's end is stored before this one's work: a tree loaded again runs this
    // stage again, whatever batches the node made (the agents of a new engine are new).
    await new Promise((resolve) => setTimeout(resolve, 50));
    ctx.startTask({ agent: 'a1', verb: ctx.params.verb });
  },
});

const one = defineCommand({
  name: 'refused.one',
  schema: z.object({}),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: 'noop' });
  },
});

/** One task of the verb in its parameters. */
const oneOf = defineCommand({
  name: 'refused.one-of',
  schema: z.object({ verb: z.string() }),
  execute(ctx) {
    ctx.expect({ tasks: 1 });
    ctx.startTask({ agent: 'a1', verb: ctx.params.verb });
  },
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function engineOn(store: Store): Engine {
  const engine = createEngine({
    store,
    // `poison` runs as `noop` does, once the store takes it.
    agents: inProcessAgents(['a1'], { verbs: { ...builtinVerbs, poison: builtinVerbs.noop! } }),
    commands: [twoStages, one, oneOf],
    tuning: FAST,
  });
  cleanups.push(() => engine.stop());
  return engine;
}

function halted(engine: Engine): Promise<ErrorInfo> {
  return new Promise((resolve) => engine.on('halted', ({ error }) => resolve(error)));
}

/** One store for a test: made again for each engine, poisoned, and its held marks read. */
interface Setup {
  readonly makeStore: () => Store;
  readonly poison: () => Promise<void>;
  /** Takes the refusal away (the operator's fix). */
  readonly cure: () => Promise<void>;
  readonly held: () => Promise<unknown[]>;
  /** Many nodes share the store (another node may hold the tree). */
  readonly shared: boolean;
}

function suite(setup: () => Setup): void {
  it('halts with the refused tree held, then runs everything else; a cancel ends the tree', async () => {
    const { makeStore, poison, held } = setup();
    const first = engineOn(makeStore());
    await first.start();
    const metrics = createNodeMetrics();
    metrics.attach(first);
    await poison();
    const stop = halted(first);
    const before = await Promise.all(
      Array.from({ length: 5 }, () => first.submit(one, {}).then((r) => r.id)),
    );
    // Submitted together: the refused tree's second stage is in a batch with the other's.
    const [bad, good] = (
      await Promise.all([
        first.submit(twoStages, { verb: 'poison' }),
        first.submit(twoStages, { verb: 'noop' }),
      ])
    ).map((r) => r.id) as [number, number];
    const error = await stop;
    expect(error.code).toBe(ErrorCode.TreeRefused);
    expect(error.message).toContain(`root ${bad}`);
    expect(error.message).toMatch(/poison/);
    expect(first.state).toBe('stopped');
    expect(await held()).toEqual([[bad, 1]]);
    expect(
      sampleValue(
        parsePrometheusText(await metrics.registry.metrics()),
        'coco_trees_refused_total',
      ),
    ).toBe(1);

    // (On PostgreSQL, the new node takes the halted one's trees over as it would a dead node's.)
    const second = engineOn(makeStore());
    await second.start();
    // Everything else ends as it would have.
    for (const id of [...before, good])
      expect((await second.waitFor(id)).status, `command ${id}`).toBe('succeeded');
    // The refused tree is held: stored as it was before its refused step, nothing of it runs.
    await expect
      .poll(async () => (await second.inspect(bad))?.unloadable?.code)
      .toBe(ErrorCode.TreeRefused);
    const details = await second.inspect(bad);
    expect(details?.command.status).toBe('waiting');
    expect(details?.unloadable).toMatchObject({ code: ErrorCode.TreeRefused });
    expect(details?.unloadable?.message).toMatch(/refused the changes .* once/);
    expect(details?.tasks.map((t) => t.verb)).toEqual(['noop']);
    expect(second.storeOutage).toBeNull();
    // More work is taken.
    const later = (await second.submit(one, {})).id;
    expect((await second.waitFor(later)).status).toBe('succeeded');
    // A cancel ends it, from what was stored.
    await second.cancel(bad);
    const ended = await second.waitFor(bad);
    expect(ended.status).toBe('failed');
    expect(ended.error?.code).toBe(ErrorCode.TreeRefused);
    expect(ended.error?.message).toMatch(/ended by a cancel: it was held/);
    // Retention deletes the mark with its tree.
    await expect.poll(async () => (await second.get(bad))?.tasksCleared).toBe(true);
    await second.prune({ olderThanMs: 0 });
    expect(await second.get(bad)).toBeNull();
    expect(await held()).toEqual([]);
  });

  it('a release runs the tree on once the cause is gone (refused again before)', async () => {
    const { makeStore, poison, cure, held, shared } = setup();
    const first = engineOn(makeStore());
    await first.start();
    await poison();
    const stop = halted(first);
    const bad = (await first.submit(twoStages, { verb: 'poison' })).id;
    await stop;
    const second = engineOn(makeStore());
    await second.start();
    await expect
      .poll(async () => (await second.inspect(bad))?.unloadable?.code)
      .toBe(ErrorCode.TreeRefused);
    // Not held: refused with COMMAND_STATE, as an unknown command with COMMAND_NOT_FOUND.
    const other = (await second.submit(one, {})).id;
    await expect(second.release(other)).rejects.toMatchObject({ code: ErrorCode.CommandState });
    await expect(second.release(987_654)).rejects.toMatchObject({
      code: ErrorCode.CommandNotFound,
    });
    // Released with the cause still there: refused again, held again.
    const again = halted(second);
    expect(await second.release(bad)).toEqual({ rootId: bad, released: 1 });
    expect((await again).code).toBe(ErrorCode.TreeRefused);
    expect(await held()).toEqual([[bad, 1]]);
    // The cause gone, a release runs it on to its end.
    await cure();
    const third = engineOn(makeStore());
    await third.start();
    await expect
      .poll(async () => (await third.inspect(bad))?.unloadable?.code)
      .toBe(ErrorCode.TreeRefused);
    if (shared) {
      // Another node does not hold it: it names the node that does.
      const other = engineOn(makeStore());
      await other.start();
      await expect(other.release(bad)).rejects.toThrow(
        new RegExp(`run by node ${third.nodeId}: release it through that node`),
      );
    }
    expect(await third.release(bad)).toEqual({ rootId: bad, released: 1 });
    expect(await held()).toEqual([]);
    const ended = await third.waitFor(bad);
    expect(ended.status).toBe('succeeded');
    expect((await third.inspect(bad))?.tasks.map((t) => t.verb)).toEqual(['noop', 'poison']);
  });

  it('a new tree refused whole: its submission refused, nothing of it stored; the others answered', async () => {
    const { makeStore, poison, held } = setup();
    const first = engineOn(makeStore());
    await first.start();
    await poison();
    const stop = halted(first);
    // Submitted in one turn: one batch holds them all.
    const others = Array.from({ length: 5 }, () => first.submit(one, {}));
    const refused = first.submit(oneOf, { verb: 'poison' });
    await expect(refused).rejects.toMatchObject({ code: ErrorCode.TreeRefused });
    expect((await stop).code).toBe(ErrorCode.TreeRefused);
    // Their rows were stored apart from the refused tree's: each submission is answered.
    const ids = (await Promise.all(others)).map((r) => r.id);
    expect(await held()).toEqual([]);
    const second = engineOn(makeStore());
    await second.start();
    for (const id of ids) expect((await second.waitFor(id)).status).toBe('succeeded');
    const listed = await second.list({ limit: 100 });
    expect(listed.commands.map((c) => c.type)).not.toContain('refused.one-of');
  });
}

describe('a tree whose changes the store refuses (SQLite)', () => {
  suite(() => {
    const path = `${tempDir('coco-refused-')}/coco.db`;
    const sql = (text: string): unknown[] => {
      const db = new Database(path);
      try {
        return db.prepare(text).raw(true).all();
      } finally {
        db.close();
      }
    };
    return {
      makeStore: () => sqliteStore({ path }),
      poison: async () => {
        const db = new Database(path);
        db.exec(
          "CREATE TRIGGER poison BEFORE INSERT ON tasks WHEN NEW.verb = 'poison' " +
            "BEGIN SELECT RAISE(ABORT, 'a poison verb'); END",
        );
        db.close();
      },
      cure: async () => {
        const db = new Database(path);
        db.exec('DROP TRIGGER poison');
        db.close();
      },
      held: () => Promise.resolve(sql('SELECT root_id, refusals FROM held_trees')),
      shared: false,
    };
  });
});

describe('a tree whose changes the store refuses, on a node', () => {
  it('the node restarts its engine by itself and answers with the tree held', async () => {
    const dir = tempDir('coco-refused-node-');
    const silent = { debug() {}, info() {}, warn() {}, error() {} };
    const node = await startNode({
      config: parseConfig(
        { store: `sqlite:${dir}/coco.db`, api: { port: 0, token: 'refused-token-0123456789' } },
        dir,
      ),
      commands: [twoStages, one],
      broker: inProcessAgents(['a1'], { verbs: { ...builtinVerbs, poison: builtinVerbs.noop! } }),
      logger: silent,
    });
    cleanups.push(() => node.close());
    const first = node.engine;
    const db = new Database(`${dir}/coco.db`);
    db.exec(
      "CREATE TRIGGER poison BEFORE INSERT ON tasks WHEN NEW.verb = 'poison' " +
        "BEGIN SELECT RAISE(ABORT, 'a poison verb'); END",
    );
    db.close();
    const stop = halted(first);
    const bad = (await first.submit(twoStages, { verb: 'poison' })).id;
    expect((await stop).code).toBe(ErrorCode.TreeRefused);
    await expect.poll(() => node.engine !== first).toBe(true);
    await node.rejoined();
    expect(node.engine.state).toBe('running');
    const answer = await node.api.inject({
      method: 'GET',
      url: `/v1/commands/${bad}`,
      headers: { authorization: 'Bearer refused-token-0123456789' },
    });
    expect(answer.statusCode).toBe(200);
    expect(answer.json<{ unloadable: ErrorInfo | null }>().unloadable?.code).toBe(
      ErrorCode.TreeRefused,
    );
    const later = (await node.engine.submit(one, {})).id;
    expect((await node.engine.waitFor(later)).status).toBe('succeeded');
    // The cause gone, an operator releases it through the API: it runs on to its end.
    const cure = new Database(`${dir}/coco.db`);
    cure.exec('DROP TRIGGER poison');
    cure.close();
    const released = await node.api.inject({
      method: 'POST',
      url: `/v1/commands/${bad}/release`,
      headers: {
        authorization: 'Bearer refused-token-0123456789',
        'content-type': 'application/json',
      },
      payload: {},
    });
    expect(released.statusCode).toBe(200);
    expect(released.json()).toEqual({ id: bad, rootId: bad, released: 1 });
    expect((await node.engine.waitFor(bad)).status).toBe('succeeded');
  });
});

describePg('a tree whose changes the store refuses (PostgreSQL)', () => {
  suite(() => {
    const fresh = freshSchema('coco_refused');
    cleanups.unshift(() => fresh.drop());
    return {
      makeStore: () => postgresStore({ url: PG_URL, schema: fresh.schema }),
      poison: async () => {
        await adminQuery(
          `ALTER TABLE ${fresh.schema}.tasks ADD CONSTRAINT poison CHECK (verb <> 'poison') NOT VALID`,
        );
      },
      cure: async () => {
        await adminQuery(`ALTER TABLE ${fresh.schema}.tasks DROP CONSTRAINT poison`);
      },
      held: async () =>
        (await adminQuery(`SELECT root_id, refusals FROM ${fresh.schema}.held_trees`)).rows.map(
          (r: { root_id: string; refusals: number }) => [Number(r.root_id), r.refusals],
        ),
      shared: true,
    };
  });
});
