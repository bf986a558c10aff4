/**
 * The long-poll of one agent's task changes: a loop of `POST /v2/tasks/changes` with the last
 * cursor and boot id. The agent holds the request until a task of ours changes (or `waitMs`
 * passes), so a task's end reaches the engine within milliseconds instead of at the next poll.
 * Failures back off with jitter; the agent's circuit breaker applies to these requests too.
 *
 * The loop also keeps the latest status it was told of each task (its *view*). While the feed is
 * complete (read from cursor 0 of the agent's current boot) and live (the last request answered
 * and the next is on its way), the view is as fresh as a status call would be — it lags the agent
 * by one round trip — so the broker can answer status polls from it without a request.
 *
 * @module
 */
import type { Clock } from '../../core/clock.js';
import { changesResponse } from '../../protocol/agent-v2.js';
import type { TaskStatusReport } from '../port.js';
import { sleep, type AgentClient } from './client.js';

/** Settings of a {@link ChangesLoop}. */
export interface ChangesLoopSettings {
  readonly waitMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** The broker's call budget; a long-poll gets `waitMs` on top of it. */
  readonly timeoutMs: number;
  readonly prefix: string;
}

/**
 * An answer without changes that came back sooner than this after asking to wait means the
 * agent (or a proxy in between) does not hold requests; without a pause the loop would spin.
 */
const QUICK_EMPTY_ANSWER_MS = 50;
/** The pause after such an answer: about a poll cycle, so the loop costs what polling costs. */
const QUICK_EMPTY_PAUSE_MS = 1_000;

/** One agent's long-poll loop. */
export class ChangesLoop {
  readonly #client: AgentClient;
  readonly #settings: ChangesLoopSettings;
  readonly #clock: Clock;
  readonly #deliver: (reports: readonly TaskStatusReport[]) => void;
  readonly #stop = new AbortController();
  #cursor = 0;
  #bootId: string | undefined;
  #done: Promise<void> | null = null;
  /** Latest status of each task the feed reported in this boot, with when it was received. */
  readonly #view = new Map<string, { readonly report: TaskStatusReport; readonly at: number }>();
  /** The view holds every task of the boot (it was read from cursor 0). */
  #complete = false;
  /** The last request answered and the loop is waiting on the agent (not backing off). */
  #live = false;
  /** The last request answered: the next may be held (and takes no call slot). */
  #answered = false;

  constructor(
    client: AgentClient,
    settings: ChangesLoopSettings,
    clock: Clock,
    deliver: (reports: readonly TaskStatusReport[]) => void,
  ) {
    this.#client = client;
    this.#settings = settings;
    this.#clock = clock;
    this.#deliver = deliver;
  }

  /** Starts the loop (once). */
  start(): void {
    this.#done ??= this.#run();
  }

  /** Stops the loop, aborting the request in flight; resolves when it has stopped. */
  async stop(): Promise<void> {
    this.#live = false;
    this.#stop.abort();
    await this.#done;
  }

  /** Whether every change of the agent's tasks reaches the view (the feed is live and complete). */
  get pushesAll(): boolean {
    return this.#live && this.#complete;
  }

  /**
   * The statuses of `ids` from the view, in order, or null when the view cannot answer for all
   * of them (not complete or not live, or an id it has not seen: that one needs a status call).
   */
  statuses(ids: readonly string[]): TaskStatusReport[] | null {
    if (!this.pushesAll) return null;
    const out: TaskStatusReport[] = [];
    for (const id of ids) {
      const seen = this.#view.get(id);
      if (!seen) return null;
      out.push(seen.report);
    }
    return out;
  }

  /** Drops tasks from the view (they were cleared on the agent). */
  forget(ids: readonly string[]): void {
    for (const id of ids) this.#view.delete(id);
  }

  /**
   * Drops ended tasks seen before `before` (ms since the epoch): tasks of other callers that
   * were cleared without the feed saying so would otherwise stay in the view forever.
   */
  trim(before: number): void {
    for (const [id, seen] of this.#view)
      if (seen.at < before && seen.report.state !== 'running') this.#view.delete(id);
  }

  /** Tasks in the view. */
  get viewSize(): number {
    return this.#view.size;
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let failures = 0;
    while (!signal.aborted && !this.#client.closed) {
      // Only a live loop (its last request answered) with a closed circuit sends a held
      // request, outside the broker's call slots. The first request (and the first after a
      // failure) asks for an answer at once and takes a slot like any call: a node coming up
      // (or reconnecting) brings its long-polls up as a stream, not all at once. A probe, too,
      // must answer at once, or it would keep every other call failing fast for the whole wait.
      const held = this.#answered && this.#client.circuit.state === 'closed';
      const waitMs = held ? this.#settings.waitMs : 0;
      const began = this.#clock.now();
      try {
        const answer = await this.#client.call(
          'changes',
          { cursor: this.#cursor, bootId: this.#bootId, waitMs, prefix: this.#settings.prefix },
          changesResponse,
          // Retried like any call: a keep-alive connection the agent just closed is no outage.
          { timeoutMs: waitMs + this.#settings.timeoutMs, signal, held },
        );
        failures = 0;
        const sameBoot = answer.bootId === this.#bootId;
        if (!sameBoot) {
          // The agent read from 0 (our first request, or it restarted): the view starts over, and
          // this answer (with the pages that follow at once) holds every task of the boot.
          this.#view.clear();
          this.#complete = true;
        }
        this.#cursor = answer.cursor;
        this.#bootId = answer.bootId;
        const at = this.#clock.now();
        for (const report of answer.tasks) this.#view.set(report.taskId, { report, at });
        this.#live = true;
        this.#answered = true;
        if (answer.tasks.length > 0) this.#deliver(answer.tasks);
        else if (sameBoot && waitMs > 0 && at - began < QUICK_EMPTY_ANSWER_MS) {
          this.#live = false;
          await sleep(this.#clock, QUICK_EMPTY_PAUSE_MS, signal);
        }
      } catch {
        // The client has counted the failure (circuit, agent down); here only the pace matters.
        this.#live = false;
        this.#answered = false;
        if (signal.aborted) break;
        failures++;
        const { backoffBaseMs, backoffMaxMs } = this.#settings;
        const backoff = Math.min(backoffMaxMs, backoffBaseMs * 2 ** Math.min(failures - 1, 20));
        // Jitter in [backoff/2, backoff], and never before an open circuit lets a probe through.
        const jittered = backoff / 2 + Math.random() * (backoff / 2);
        const untilProbe = this.#client.circuit.openUntil - this.#clock.now();
        await sleep(this.#clock, Math.max(jittered, untilProbe), signal);
      }
    }
  }
}
