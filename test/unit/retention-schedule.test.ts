/**
 * The node's retention schedule (src/server/retention.ts) on fake timers, with a fake target:
 * when passes run, what a pass cut short by its budget changes, that a failing pass or a missing
 * generation does not stop the schedule, how new settings (a reload) take effect, and that stop
 * ends the pass in progress after its current batch and waits for it.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/core/command-type.js';
import type { PruneRequest, PruneTotals } from '../../src/engine/retention.js';
import type { RetentionTarget } from '../../src/jobs/retention.js';
import { FIRST_PASS_DELAY_MS, RetentionSchedule } from '../../src/server/retention.js';

const INTERVAL = 120_000;
const BUDGET = 5_000;

function totals(more: boolean): PruneTotals {
  return {
    endedBefore: 0,
    trees: 1,
    commands: 2,
    tasks: 3,
    undo: 4,
    batches: 1,
    more,
    durationMs: 1,
  };
}

/** A target whose prunes answer from a script (a value, or an error to throw). */
function scripted(answers: (boolean | Error)[]): {
  target: RetentionTarget;
  requests: PruneRequest[];
} {
  const requests: PruneRequest[] = [];
  return {
    requests,
    target: {
      prune: async (request) => {
        requests.push(request);
        const next = answers.shift() ?? false;
        if (next instanceof Error) throw next;
        return totals(next);
      },
      get: async () => null,
      jobs: null,
    },
  };
}

function logger(): Logger & { lines: [string, string, unknown][] } {
  const lines: [string, string, unknown][] = [];
  const at =
    (level: string) =>
    (fields: unknown, message?: string): void =>
      void lines.push([level, message ?? '', fields]);
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}

describe('retention schedule', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('passes come after the first delay, then every interval; sooner after a pass cut short by its budget', async () => {
    const { target, requests } = scripted([true, false, false]);
    const log = logger();
    const s = new RetentionSchedule({
      maxAgeMs: 1_000,
      intervalMs: INTERVAL,
      batch: 7,
      budgetMs: BUDGET,
      logger: log,
      target: () => ({ nodeId: 'n1', target }),
    });
    s.start();
    await vi.advanceTimersByTimeAsync(FIRST_PASS_DELAY_MS - 1);
    expect(requests).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(requests).toEqual([
      {
        olderThanMs: 1_000,
        batch: 7,
        budgetMs: BUDGET,
        signal: expect.any(AbortSignal) as unknown,
      },
    ]);
    // Cut short (more): the next pass after a pause as long as the budget.
    await vi.advanceTimersByTimeAsync(BUDGET);
    expect(requests).toHaveLength(2);
    // Done: the next after a whole interval.
    await vi.advanceTimersByTimeAsync(INTERVAL - 1);
    expect(requests).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(requests).toHaveLength(3);
    const passes = log.lines.filter(([, m]) => m === 'retention pass');
    expect(passes[0]).toEqual([
      'info',
      'retention pass',
      {
        nodeId: 'n1',
        trees: 1,
        commands: 2,
        tasks: 3,
        undo: 4,
        jobs: 0,
        steps: 0,
        more: true,
        batches: 1,
        durationMs: expect.any(Number) as number,
      },
    ]);
    await s.stop();
    await vi.advanceTimersByTimeAsync(INTERVAL * 3);
    expect(requests).toHaveLength(3);
  });

  it('a failing pass is logged and the schedule goes on; no running generation skips a pass', async () => {
    const { target, requests } = scripted([new Error('database away'), false]);
    const log = logger();
    let running = false;
    const s = new RetentionSchedule({
      maxAgeMs: 1,
      intervalMs: 1_000,
      batch: 1,
      budgetMs: 1,
      logger: log,
      target: () => (running ? { nodeId: 'n1', target } : null),
    });
    s.start();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(requests).toHaveLength(0);
    expect(log.lines.at(-1)?.[0]).toBe('debug');
    running = true;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(log.lines.at(-1)).toMatchObject([
      'warn',
      'retention pass failed; the next one tries again',
      { nodeId: 'n1', error: { message: 'database away' } },
    ]);
    expect(s.counts.lastSuccessAt).toBeNull();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(requests).toHaveLength(2);
    expect(log.lines.at(-1)?.[1]).toBe('retention pass');
    // Counted for the metrics: one of each, and what the pass that worked deleted.
    expect(s.counts.passes).toEqual({ done: 1, more: 0, failed: 1, skipped: 1 });
    expect(s.counts.deleted).toEqual({ trees: 1, commands: 2, tasks: 3, jobs: 0 });
    expect(s.counts.lastSuccessAt).toBe(Date.now());
    await s.stop();
  });

  it('new settings take the next pass, a new interval counting from now; off stops the passes, on again starts as at a start', async () => {
    const { target, requests } = scripted([]);
    const s = new RetentionSchedule({
      maxAgeMs: 1_000,
      intervalMs: INTERVAL,
      batch: 7,
      budgetMs: BUDGET,
      logger: logger(),
      target: () => ({ nodeId: 'n1', target }),
    });
    s.start();
    await vi.advanceTimersByTimeAsync(FIRST_PASS_DELAY_MS);
    expect(requests.map((r) => r.olderThanMs)).toEqual([1_000]);
    // Same interval: the pass already armed keeps its time, with the new age and batch.
    s.setSettings({ maxAgeMs: 2_000, intervalMs: INTERVAL, batch: 9, budgetMs: BUDGET });
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(requests.map((r) => [r.olderThanMs, r.batch])).toEqual([
      [1_000, 7],
      [2_000, 9],
    ]);
    // A shorter interval counts from now.
    await vi.advanceTimersByTimeAsync(INTERVAL / 2);
    s.setSettings({ maxAgeMs: 2_000, intervalMs: 1_000, batch: 9, budgetMs: BUDGET });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(requests).toHaveLength(3);
    // Off: no pass, whatever the time.
    s.setSettings(null);
    expect(s.settings).toBeNull();
    await vi.advanceTimersByTimeAsync(INTERVAL * 3);
    expect(requests).toHaveLength(3);
    expect(await s.runPass()).toBeNull();
    // On again: the first pass as after a start (the shorter of the interval and the first delay).
    s.setSettings({ maxAgeMs: 3_000, intervalMs: INTERVAL, batch: 1, budgetMs: BUDGET });
    await vi.advanceTimersByTimeAsync(FIRST_PASS_DELAY_MS - 1);
    expect(requests).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(requests.at(-1)?.olderThanMs).toBe(3_000);
    await s.stop();
  });

  it('stop waits for the pass in progress, and no pass starts after it', async () => {
    let release!: () => void;
    let passes = 0;
    let asked: PruneRequest | null = null;
    const target: RetentionTarget = {
      prune: async (request) => {
        asked = request;
        passes++;
        await new Promise<void>((r) => (release = r));
        return totals(false);
      },
      get: async () => null,
      jobs: null,
    };
    const s = new RetentionSchedule({
      maxAgeMs: 1,
      intervalMs: 10,
      batch: 1,
      budgetMs: 1,
      logger: logger(),
      target: () => ({ nodeId: 'n1', target }),
    });
    s.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(passes).toBe(1);
    let stopped = false;
    const stopping = s.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    // The pass is told to start no further batch.
    expect((asked as PruneRequest | null)?.signal?.aborted).toBe(true);
    release();
    await stopping;
    await vi.advanceTimersByTimeAsync(100);
    expect(passes).toBe(1);
    expect(await s.runPass()).toBeNull();
  });
});
