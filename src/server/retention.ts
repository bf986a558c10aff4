/**
 * The scheduled retention of a node (`retention` in the configuration): a pass every interval
 * deletes the trees that ended at least `maxAge` ago, with their jobs ({@link runRetention}), in
 * bounded batches until none remain or the pass's budget is spent, and logs what it did.
 *
 * The schedule belongs to the node, not to a generation: each pass works on the generation
 * running then (a node that lost its lease and rejoined under a new node id keeps its schedule),
 * and a pass that finds none running (a rejoin in progress) waits for the next.
 *
 * @module
 */
import type { Logger } from '../core/command-type.js';
import { toErrorInfo, ErrorCode } from '../core/errors.js';
import { runRetention, type RetentionReport, type RetentionTarget } from '../jobs/retention.js';

/**
 * The first pass comes this soon after the node starts, or after one interval if that is
 * shorter: a node restarted more often than its interval (deployments) still prunes, and a
 * minute lets the node finish resuming its work before retention competes with it.
 */
export const FIRST_PASS_DELAY_MS = 60_000;

/** How a schedule prunes (a reload may replace them: {@link RetentionSchedule.setSettings}). */
export interface RetentionSettings {
  /** Trees whose root ended at least this long ago go. */
  readonly maxAgeMs: number;
  /** Time from the end of a pass to the start of the next. */
  readonly intervalMs: number;
  /** Trees per transaction. */
  readonly batch: number;
  /** Longest a pass goes on. */
  readonly budgetMs: number;
}

/** Options of {@link RetentionSchedule}: its first settings, and what it prunes. */
export interface RetentionScheduleOptions extends RetentionSettings {
  /**
   * What the running generation prunes, and its node id (logged with each pass), or null when
   * none runs (between generations).
   */
  target(): { readonly nodeId: string; readonly target: RetentionTarget } | null;
  readonly logger: Logger;
}

/** What a schedule's passes have done so far (the metrics read it at a scrape). */
export interface RetentionCounts {
  /**
   * Passes by outcome: `done` (nothing left), `more` (cut short by the budget or a stop),
   * `failed` (logged), `skipped` (no generation running: a rejoin).
   */
  readonly passes: { done: number; more: number; failed: number; skipped: number };
  /** Rows deleted by the passes: the engine's trees, commands and tasks, the job view's jobs. */
  readonly deleted: { trees: number; commands: number; tasks: number; jobs: number };
  /** When the last pass that did not fail ended (ms since the epoch), or null. */
  lastSuccessAt: number | null;
}

/** Runs retention passes on a timer until stopped. */
export class RetentionSchedule {
  /** What the passes have done so far. */
  readonly counts: RetentionCounts = {
    passes: { done: 0, more: 0, failed: 0, skipped: 0 },
    deleted: { trees: 0, commands: 0, tasks: 0, jobs: 0 },
    lastSuccessAt: null,
  };
  readonly #o: RetentionScheduleOptions;
  /** The settings in force; null: off (a reload turned retention off). */
  #settings: RetentionSettings | null;
  #started = false;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #pass: Promise<RetentionReport | null> | null = null;
  #stopped = false;
  /** Aborted by {@link stop}: a pass under way ends after its current batch. */
  readonly #stop = new AbortController();

  constructor(options: RetentionScheduleOptions) {
    this.#o = options;
    const { maxAgeMs, intervalMs, batch, budgetMs } = options;
    this.#settings = { maxAgeMs, intervalMs, batch, budgetMs };
  }

  /** The settings in force, or null when retention was turned off. */
  get settings(): RetentionSettings | null {
    return this.#settings;
  }

  /** Arms the first pass (see {@link FIRST_PASS_DELAY_MS}). */
  start(): void {
    this.#started = true;
    if (this.#settings) this.#arm(Math.min(this.#settings.intervalMs, FIRST_PASS_DELAY_MS));
  }

  /**
   * Replaces the settings (a configuration reload), or turns retention off (null). A pass under
   * way ends with the settings it began with; the next uses these. A new interval counts from
   * now; retention turned back on makes its first pass as after a start.
   */
  setSettings(next: RetentionSettings | null): void {
    const was = this.#settings;
    this.#settings = next === null ? null : { ...next };
    if (!this.#started || this.#stopped) return;
    if (next === null || was === null || was.intervalMs !== next.intervalMs) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = null;
      // A pass under way arms the next itself when it ends.
      if (next !== null && this.#pass === null)
        this.#arm(was === null ? Math.min(next.intervalMs, FIRST_PASS_DELAY_MS) : next.intervalMs);
    }
  }

  #arm(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.runPass().then((report) => {
        const settings = this.#settings;
        if (settings === null || this.#timer !== null) return;
        // A pass cut short by its budget: the next comes after a pause as long as the budget,
        // so that catching up takes at most half the node's time; otherwise after an interval.
        this.#arm(
          report?.more === true
            ? Math.min(settings.intervalMs, settings.budgetMs)
            : settings.intervalMs,
        );
      });
    }, delayMs);
    // The node's engine keeps the process alive; a retention timer alone must not.
    this.#timer.unref();
  }

  /**
   * Runs one pass now (waiting for one in progress first); resolves with what it did, or null
   * when no generation was running, the pass failed (logged; the schedule goes on) or retention
   * is off.
   */
  async runPass(): Promise<RetentionReport | null> {
    while (this.#pass) await this.#pass;
    if (this.#stopped || this.#settings === null) return null;
    this.#pass = this.#run().finally(() => (this.#pass = null));
    return this.#pass;
  }

  async #run(): Promise<RetentionReport | null> {
    const { logger } = this.#o;
    const settings = this.#settings;
    if (settings === null) return null;
    const current = this.#o.target();
    const { passes, deleted } = this.counts;
    if (current === null) {
      passes.skipped++;
      logger.debug({}, 'retention pass skipped: no engine is running (rejoining)');
      return null;
    }
    try {
      const report = await runRetention(current.target, {
        olderThanMs: settings.maxAgeMs,
        batch: settings.batch,
        budgetMs: settings.budgetMs,
        signal: this.#stop.signal,
      });
      const { trees, commands, tasks, undo, jobs, steps, more, batches, durationMs } = report;
      passes[more ? 'more' : 'done']++;
      deleted.trees += trees;
      deleted.commands += commands;
      deleted.tasks += tasks;
      deleted.jobs += jobs;
      this.counts.lastSuccessAt = Date.now();
      logger.info(
        {
          nodeId: current.nodeId,
          trees,
          commands,
          tasks,
          undo,
          jobs,
          steps,
          more,
          batches,
          durationMs: Math.round(durationMs),
        },
        'retention pass',
      );
      return report;
    } catch (error) {
      passes.failed++;
      logger.warn(
        { nodeId: current.nodeId, error: toErrorInfo(error, ErrorCode.Internal) },
        'retention pass failed; the next one tries again',
      );
      return null;
    }
  }

  /**
   * Stops the schedule; resolves once a pass in progress has ended, which it does after its
   * current batch (a pass catching up may otherwise go on for its whole budget, past the bound a
   * supervisor gives a stopping node).
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stop.abort();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#pass;
  }
}
