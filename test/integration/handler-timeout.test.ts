/**
 * A handler awaiting something that never settles used to keep its command busy for ever: not
 * ended by its own `timeoutMs`, not by a cancel (a busy command is not advanced). Now a run has a
 * time limit (`handlerTimeoutMs` on the type, else the engine's `tuning.handlerTimeoutMs` for
 * stages, onSuccess and onFailure): past it the run counts as failed (`HANDLER_TIMEOUT`, retried
 * under the type's policy), its signal is aborted, and what it does afterwards is dropped. Undo
 * steps are bounded only by their type (they may wait for the tasks they run).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { defineCommand, type CommandType } from '../../src/core/command-type.js';
import { CocoError, ErrorCode } from '../../src/core/errors.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { createNodeMetrics } from '../../src/observability/metrics.js';
import { sqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { parsePrometheusText, sampleValue } from '../support/prom-text.js';
import { FAST, tempDir } from '../support/harness.js';

const never = (): Promise<void> => new Promise(() => {});
const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function engineWith(commands: CommandType[], handlerTimeoutMs?: number): Promise<Engine> {
  const engine = createEngine({
    store: sqliteStore({ path: `${tempDir('coco-handler-timeout-')}/coco.db` }),
    agents: inProcessAgents(['a1']),
    commands,
    tuning: { ...FAST, ...(handlerTimeoutMs === undefined ? {} : { handlerTimeoutMs }) },
  });
  await engine.start();
  cleanups.push(() => engine.stop());
  return engine;
}

describe('a handler that does not end in time', () => {
  it('fails its run with HANDLER_TIMEOUT, retried under the policy, its signal aborted', async () => {
    const aborted: unknown[] = [];
    const hangs = defineCommand({
      name: 'timeout.hangs',
      schema: z.object({}),
      handlerTimeoutMs: 50,
      retry: { maxAttempts: 2, backoffMs: 1, maxBackoffMs: 1 },
      async execute(ctx) {
        ctx.signal.addEventListener('abort', () => aborted.push(ctx.signal.reason));
        await never();
      },
    });
    const engine = await engineWith([hangs]);
    const metrics = createNodeMetrics();
    metrics.attach(engine);
    const events: unknown[] = [];
    engine.on('handler-timeout', (e) => events.push(e));
    const { id } = await engine.submit(hangs, {});
    const ended = await engine.waitFor(id);
    // Each timed-out run is told, and counted by type and phase.
    expect(events).toEqual([
      { commandId: id, type: 'timeout.hangs', phase: 'stage', limitMs: 50 },
      { commandId: id, type: 'timeout.hangs', phase: 'stage', limitMs: 50 },
    ]);
    const families = parsePrometheusText(await metrics.registry.metrics());
    expect(
      sampleValue(families, 'coco_handler_timeouts_total', {
        type: 'timeout.hangs',
        phase: 'stage',
      }),
    ).toBe(2);
    expect(ended.status).toBe('failed');
    expect(ended.error?.code).toBe(ErrorCode.HandlerTimeout);
    expect(ended.error?.message).toMatch(/after 2 attempt\(s\).*did not end within 50 ms/s);
    expect(aborted).toHaveLength(2);
    expect(aborted[0]).toMatchObject({ code: ErrorCode.HandlerTimeout });
  });

  it('a late run is dropped: what it does through ctx afterwards is refused, the retry counts', async () => {
    const late: string[] = [];
    const slowFirst = defineCommand({
      name: 'timeout.slow-first',
      schema: z.object({}),
      handlerTimeoutMs: 50,
      retry: { maxAttempts: 3, backoffMs: 1, maxBackoffMs: 1 },
      async execute(ctx) {
        ctx.expect({ tasks: 1 });
        if (ctx.command.attempt === 1) {
          await wait(200);
          try {
            ctx.startTask({ agent: 'a1', verb: 'echo', args: { late: true } });
          } catch (error) {
            late.push((error as CocoError).code);
          }
          return;
        }
        ctx.startTask({ agent: 'a1', verb: 'noop' });
      },
    });
    const engine = await engineWith([slowFirst]);
    const { id } = await engine.submit(slowFirst, {});
    expect((await engine.waitFor(id)).status).toBe('succeeded');
    await expect.poll(() => late.length, { timeout: 2_000 }).toBe(1);
    expect(late[0]).toBe(ErrorCode.CommandState);
    const details = await engine.inspect(id);
    expect(details?.tasks.map((t) => t.verb)).toEqual(['noop']);
  });

  it("the engine's bound ends a hang so that a cancel takes effect", async () => {
    const hangs = defineCommand({
      name: 'timeout.engine-bound',
      schema: z.object({}),
      retry: { maxAttempts: 100, backoffMs: 1, maxBackoffMs: 1 },
      async execute() {
        await never();
      },
    });
    const engine = await engineWith([hangs], 100);
    const { id } = await engine.submit(hangs, {});
    await wait(20);
    await engine.cancel(id);
    const ended = await engine.waitFor(id);
    expect(ended.status).toBe('cancelled');
  });

  it("an undo step is not bounded by the engine's default, only by its type", async () => {
    const undone: string[] = [];
    const compensates = (name: string, handlerTimeoutMs?: number) =>
      defineCommand({
        name,
        schema: z.object({}),
        retry: { maxAttempts: 1, backoffMs: 1, maxBackoffMs: 1 },
        ...(handlerTimeoutMs === undefined ? {} : { handlerTimeoutMs }),
        execute(ctx) {
          ctx.addUndo('slow');
          throw new CocoError('BOOM', 'fails after recording its undo step');
        },
        undo: {
          async slow() {
            await wait(150);
            undone.push(name);
          },
        },
      });
    const unbounded = compensates('timeout.undo-default');
    const bounded = compensates('timeout.undo-bounded', 50);
    const engine = await engineWith([unbounded, bounded], 50);
    const a = await engine.waitFor((await engine.submit(unbounded, {})).id);
    expect(a.compensation).toBe('compensated');
    const b = await engine.waitFor((await engine.submit(bounded, {})).id);
    expect(b.compensation).toBe('failed');
    expect(b.compensationError?.message).toMatch(/HANDLER_TIMEOUT|did not end within 50 ms/);
    expect(undone).toContain('timeout.undo-default');
  });

  it('a bad handlerTimeoutMs is refused at definition; null is no bound', () => {
    for (const bad of [0, -1, 1e300, Number.NaN])
      expect(() =>
        defineCommand({
          name: 'timeout.bad',
          schema: z.object({}),
          handlerTimeoutMs: bad,
          execute() {},
        }),
      ).toThrow(/handlerTimeoutMs/);
    const unbounded = defineCommand({
      name: 'timeout.none',
      schema: z.object({}),
      handlerTimeoutMs: null,
      execute() {},
    });
    expect(unbounded.handlerTimeoutMs).toBeNull();
    expect(
      defineCommand({
        name: 'timeout.frac',
        schema: z.object({}),
        handlerTimeoutMs: 0.5,
        execute() {},
      }).handlerTimeoutMs,
    ).toBe(1);
  });
});
