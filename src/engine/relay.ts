/**
 * The relay of task reports between nodes of a shared store. The node holding an agent's lease
 * polls the other nodes' running tasks there along with its own ({@link Relay.foreignIds}) and
 * sends what it learns of them through the store ({@link Relay.foreignReport}); each node reads
 * the reports meant for its own commands and applies them as if it had polled
 * ({@link Relay.reportsSoon}).
 *
 * @module
 */
import type { TaskStatusReport } from '../brokers/port.js';
import type { Clock } from '../core/clock.js';
import { CocoError, ErrorCode } from '../core/errors.js';
import { agentTaskId } from '../core/records.js';
import type { ReportKey, SharedStore, TaskReportRecord } from '../store/shared-port.js';
import type { Dispatcher, PollGate } from './dispatcher.js';
import type { LiveTask } from './live.js';

/**
 * A relayed task end still shown as running after this long was lost on the way (its owner
 * died before applying it, or had not loaded the command yet): it is polled and relayed again.
 * An owner applies a report within milliseconds of the signal, so 5 s means lost, not slow.
 */
const RELAY_AGAIN_MS = 5_000;

/** Reports applied at a time from the store's inbox. */
const REPORT_BATCH = 1_000;

/** What the relay needs from its node. */
export interface RelayHost {
  readonly nodeId: string;
  readonly storeId: string;
  readonly store: SharedStore;
  readonly clock: Clock;
  readonly dispatcher: Dispatcher;
  /** The live task, if this node runs its command. */
  liveTask(commandId: number, ordinal: number): LiveTask | undefined;
  /** Agents whose lease this node holds. */
  held(): readonly string[];
  /** A claim is loading trees right now (their reports may come first). */
  claiming(): boolean;
  stopped(): boolean;
  /** Reports a failed store call (a lost lease halts the node). */
  failed(error: unknown, what: string): void;
}

/** Task reports for and from the other nodes. */
export class Relay implements Pick<PollGate, 'foreignIds' | 'foreignReport'> {
  readonly #h: RelayHost;
  /** Agent id -> agent task id -> the foreign task. */
  #foreign = new Map<string, Map<string, { commandId: number; ordinal: number }>>();
  /** Foreign tasks whose end was relayed, and when: not relayed again unless it seems lost. */
  readonly #relayed = new Map<string, number>();
  /**
   * Foreign tasks for which `unknown` was relayed: once the agent knows them again (their start
   * arrived after the poll), `running` is relayed once, so the owner ends the grace period the
   * `unknown` began instead of keeping a stale start of it.
   */
  readonly #unknownSent = new Set<string>();
  #outbox: TaskReportRecord[] = [];
  #readingReports: Promise<void> | null = null;
  #reportsAgain = false;

  constructor(host: RelayHost) {
    this.#h = host;
  }

  /** Forgets the foreign tasks of an agent this node no longer polls. */
  dropAgent(agentId: string): void {
    this.#foreign.delete(agentId);
  }

  /** Resolves once the report reading in progress (if any) has ended. */
  async idle(): Promise<void> {
    await this.#readingReports;
  }

  /** See {@link PollGate.foreignIds}. */
  foreignIds(agentId: string): readonly string[] {
    const tasks = this.#foreign.get(agentId);
    return tasks ? [...tasks.keys()] : [];
  }

  /** See {@link PollGate.foreignReport}. */
  foreignReport(agentId: string, report: TaskStatusReport): void {
    const task = this.#foreign.get(agentId)?.get(report.taskId);
    if (!task) return;
    if (report.state === 'running') {
      if (!this.#unknownSent.delete(report.taskId)) return;
    } else if (report.state === 'unknown') {
      this.#unknownSent.add(report.taskId);
    } else {
      if (this.#relayed.has(report.taskId)) return;
      this.#relayed.set(report.taskId, this.#h.clock.now());
      this.#unknownSent.delete(report.taskId);
      this.#foreign.get(agentId)?.delete(report.taskId);
    }
    this.#outbox.push({
      commandId: task.commandId,
      ordinal: task.ordinal,
      status: report.state,
      result: report.result ?? null,
      error: report.error ?? null,
      progress: null,
      at: this.#h.clock.now(),
    });
    if (this.#outbox.length === 1) queueMicrotask(() => void this.flush());
  }

  /** Sends the reports gathered for other nodes. */
  async flush(): Promise<void> {
    if (this.#outbox.length === 0) return;
    const reports = this.#outbox;
    this.#outbox = [];
    try {
      await this.#h.store.postReports(reports);
    } catch (error) {
      // Not relayed: poll those tasks again (ends are relayed anew).
      for (const r of reports)
        this.#relayed.delete(agentTaskId(this.#h.storeId, r.commandId, r.ordinal));
      this.#h.failed(error, 'relaying task reports');
    }
  }

  /** Re-reads the other nodes' running tasks on the agents this node holds. */
  async refresh(): Promise<void> {
    if (this.#h.stopped() || this.#h.held().length === 0) {
      this.#foreign.clear();
      return;
    }
    try {
      const rows = await this.#h.store.foreignTasks(this.#h.nodeId, [...this.#h.held()]);
      const next = new Map<string, Map<string, { commandId: number; ordinal: number }>>();
      const seen = new Set<string>();
      for (const r of rows) {
        const id = agentTaskId(this.#h.storeId, r.commandId, r.ordinal);
        seen.add(id);
        const relayedAt = this.#relayed.get(id);
        if (relayedAt !== undefined) {
          if (this.#h.clock.now() - relayedAt < RELAY_AGAIN_MS) continue;
          this.#relayed.delete(id); // lost on the way (its owner died?): poll and relay it again
        }
        let tasks = next.get(r.agentId);
        if (!tasks)
          next.set(r.agentId, (tasks = new Map<string, { commandId: number; ordinal: number }>()));
        tasks.set(id, { commandId: r.commandId, ordinal: r.ordinal });
      }
      // A relayed end stays remembered until its task no longer shows as running.
      for (const id of this.#relayed.keys()) if (!seen.has(id)) this.#relayed.delete(id);
      for (const id of this.#unknownSent) if (!seen.has(id)) this.#unknownSent.delete(id);
      this.#foreign = next;
      for (const agentId of next.keys()) this.#h.dispatcher.gateChanged(agentId, true);
    } catch (error) {
      this.#h.failed(error, 'reading the other nodes’ tasks');
    }
  }

  /**
   * Reports of commands this node has not loaded whose tasks have ended in the store — or whose
   * rows cannot be read: such a command is never loaded, its report can never be applied, and
   * kept it would be read again in every batch (the task itself is left alone).
   */
  async #stale(
    reports: readonly TaskReportRecord[],
  ): Promise<{ commandId: number; ordinal: number }[]> {
    const out: { commandId: number; ordinal: number }[] = [];
    for (const r of reports) {
      let tasks: readonly { ordinal: number; endedAt: number | null }[];
      try {
        tasks = await this.#h.store.getTasks(r.commandId);
      } catch (error) {
        if (!(error instanceof CocoError && error.code === ErrorCode.CorruptRow)) throw error;
        out.push({ commandId: r.commandId, ordinal: r.ordinal });
        continue;
      }
      const task = tasks.find((t) => t.ordinal === r.ordinal);
      if (!task || task.endedAt !== null) out.push({ commandId: r.commandId, ordinal: r.ordinal });
    }
    return out;
  }

  /** Reads this node's relayed reports soon (coalesced). */
  reportsSoon(): void {
    if (this.#h.stopped()) return;
    if (this.#readingReports) {
      this.#reportsAgain = true;
      return;
    }
    this.#readingReports = (async () => {
      do {
        this.#reportsAgain = false;
        try {
          const reports = await this.#h.store.takeReports(this.#h.nodeId, REPORT_BATCH);
          const useless: ReportKey[] = [];
          const notLoaded: TaskReportRecord[] = [];
          for (const r of reports) {
            const task = this.#h.liveTask(r.commandId, r.ordinal);
            if (!task) {
              notLoaded.push(r);
              continue;
            }
            // A task the engine ended (deadline, cancel) still waits for its agent's word
            // before it is cleared: only a task its agent is done with has no use for reports.
            if (task.agentDone) {
              useless.push({ commandId: r.commandId, ordinal: r.ordinal });
              continue;
            }
            const report: TaskStatusReport = {
              taskId: task.agentTaskId,
              state: r.status,
              ...(r.result !== null && r.result !== undefined ? { result: r.result } : {}),
              ...(r.error ? { error: r.error } : {}),
            };
            this.#h.dispatcher.applyRelayed(task, report);
            // An `unknown` is kept by nobody: the holder sends it again while it lasts. A
            // `running` (known again) has done its work once applied.
            if (r.status === 'unknown' || r.status === 'running') useless.push(r);
          }
          // A command not in memory may be a tree being claimed right now (its report is kept
          // for after the load), or one that has ended and left memory (the report is stale).
          if (notLoaded.length > 0 && !this.#h.claiming())
            useless.push(...(await this.#stale(notLoaded)));
          if (useless.length > 0) await this.#h.store.dropReports(useless);
          if (reports.length === REPORT_BATCH) this.#reportsAgain = true;
        } catch (error) {
          this.#h.failed(error, 'reading relayed task reports');
          break;
        }
      } while (this.#reportsAgain && !this.#h.stopped());
    })().finally(() => (this.#readingReports = null));
  }
}
