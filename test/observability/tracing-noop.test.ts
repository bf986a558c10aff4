/**
 * Tracing without an SDK (the API's no-op tracer, the engine's default): a restart makes no span
 * per resumed command (a million resumed commands made a million no-op spans); with an SDK,
 * resumed commands get theirs (tracing.test.ts checks them in their traces).
 */
import { ProxyTracer, ProxyTracerProvider, trace } from '@opentelemetry/api';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Tracing } from '../../src/engine/tracing.js';
import { Journal, testCommands } from '../support/commands.js';
import { assertNoLeakedEngines, holdVerbs, startEnv } from '../support/harness.js';

afterEach(async () => {
  vi.restoreAllMocks();
  await assertNoLeakedEngines();
});

describe('tracing without an SDK', () => {
  it('makesSpans: not without a tracer, nor with the no-op one; with an SDK, yes', async () => {
    expect(new Tracing(null).makesSpans()).toBe(false);
    const proxies = new ProxyTracerProvider();
    const proxy = proxies.getTracer('coco-engine');
    expect(proxy).toBeInstanceOf(ProxyTracer);
    expect(new Tracing(proxy).makesSpans()).toBe(false);
    expect(new Tracing(proxies.getDelegate().getTracer('coco-engine')).makesSpans()).toBe(false);
    // The default tracer, no SDK registered.
    expect(new Tracing(trace.getTracer('coco-engine')).makesSpans()).toBe(false);
    const sdk = new BasicTracerProvider();
    expect(new Tracing(sdk.getTracer('coco-engine')).makesSpans()).toBe(true);
    // A proxy whose SDK came later makes spans from then on.
    proxies.setDelegate(sdk);
    expect(new Tracing(proxy).makesSpans()).toBe(true);
    await sdk.shutdown();
  });

  it('a restart starts no span for the commands it resumes', async () => {
    const hold = holdVerbs();
    const t = testCommands(new Journal());
    const env = await startEnv({ commands: t.all, verbs: hold.verbs });
    const running = new Promise<void>((resolve) => {
      const off = env.engine.on('committed', (b) => {
        if (b.taskUpdates.some((u) => u.status === 'running')) {
          off();
          resolve();
        }
      });
    });
    const { id } = await env.engine.submit(t.leaf, {
      name: 'l',
      verb: 'hold',
      args: { key: 'k1' },
    });
    await running;
    const started = vi.spyOn(ProxyTracer.prototype, 'startSpan');
    const restarted = await env.restart();
    expect(started.mock.calls.filter(([name]) => name.startsWith('command '))).toEqual([]);
    hold.release('k1');
    expect((await restarted.engine.waitFor(id)).status).toBe('succeeded');
    await restarted.cleanup();
  });
});
