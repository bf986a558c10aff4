/**
 * The reference agent's task table: every task it holds, kept on disk (one SQLite file in the
 * agent's data directory) so that a restarted agent still reports every task it accepted.
 *
 * Tasks that were running when the agent process died cannot have finished: at the next start
 * they are marked `failed` with code {@link AGENT_RESTARTED} (naming the old and the new boot id),
 * never forgotten and never reported as a success. The in-memory map mirrors the file and serves
 * every read; writes go to the file first (starts) or at once (ends, stops, clears), progress
 * only now and then (see {@link PROGRESS_FLUSH_MS}).
 *
 * Task ids are single-use (`../protocol/used-ids.ts`): an id stopped before its start arrived,
 * or cleared, is remembered in the file too (bounded in count and age), so a start that arrives
 * late is refused with `TASK_ID_USED`, also after a restart.
 *
 * @module
 */
import type { z } from 'zod';
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { startResponse, taskStatus } from '../protocol/agent-v2.js';
import {
  STOPPED_BEFORE_START,
  usedIdError,
  UsedTaskIds,
  type UsedHow,
  type UsedIdsOptions,
} from '../protocol/used-ids.js';
import { TaskFile, type StoredState } from './task-file.js';
import {
  cancelledError,
  VerbRun,
  type VerbHost,
  type AgentLogger,
  type VerbOutcome,
  type VerbRegistry,
} from './verbs.js';

/** Error code of a task that was running when its agent process died (or was shut down). */
export const AGENT_RESTARTED = ErrorCode.AgentRestarted;

/**
 * How often buffered progress is written. Progress is advisory: a crash loses at most this much
 * of it, and a task that was running at a crash is reported failed anyway. Writing every report
 * of thousands of tasks (a `sleep` reports ten times per run) would turn the agent into a disk
 * writer for data nobody needs durably.
 */
export const PROGRESS_FLUSH_MS = 2_000;

/** One task's status as the protocol reports it. */
export type TaskStatus = z.infer<typeof taskStatus>;
/** One start's answer as the protocol reports it. */
export type StartResult = z.infer<typeof startResponse>['results'][number];
/** A task to start. */
export interface StartItem {
  readonly taskId: string;
  readonly verb: string;
  readonly args: unknown;
}

/** Who hears of task changes: the change feed. */
export interface TaskChangeListener {
  /** A task started, progressed or ended (also called for every task loaded at open). */
  changed(taskId: string): void;
  /** A task was cleared (or a stopped id it reported was forgotten). */
  forgotten(taskId: string): void;
}

/** Options of {@link TaskTable.open}. */
export interface TaskTableOptions {
  /** Directory of the SQLite file; created if missing. */
  readonly dataDir: string;
  /** The agent's id; a data directory belongs to one agent id. */
  readonly agentId: string;
  /** This process's boot id. */
  readonly bootId: string;
  readonly verbs: VerbRegistry;
  readonly log: AgentLogger;
  /** The storage root verbs see (`AgentVerbContext.storageRoot`), if the agent has one. */
  readonly storageRoot?: string;
  readonly listener?: TaskChangeListener;
  /** How long to wait for another process's lock on the file. @default LOCK_WAIT_MS */
  readonly lockWaitMs?: number;
  /**
   * Source of `startedAt` / `endedAt`, and of the time a used id is remembered from.
   * @default Date.now
   */
  readonly now?: () => number;
  /** Bounds of the memory of used task ids. @default MAX_USED_IDS, USED_ID_RETENTION_MS */
  readonly usedIds?: UsedIdsOptions;
}

interface TaskRecord {
  readonly taskId: string;
  state: StoredState;
  progress: number;
  result: unknown;
  error: ErrorInfo | undefined;
  run: VerbRun | undefined;
}

/** The error of a task that was running under boot `from` when the agent restarted as `to`. */
export function restartedError(from: string, to: string): ErrorInfo {
  return {
    code: AGENT_RESTARTED,
    message: `the agent restarted (boot ${from} → ${to}) while the task ran; its outcome is unknown`,
    details: { previousBootId: from, bootId: to },
  };
}

/** The agent's task table (see the module comment). Open it with {@link TaskTable.open}. */
export class TaskTable {
  /** This process's boot id. */
  readonly bootId: string;
  /** The boot id of the agent's previous start on this data directory, if any. */
  readonly previousBootId: string | null;
  /** Tasks marked failed with {@link AGENT_RESTARTED} at this open. */
  readonly restartedTasks: number;
  readonly #file: TaskFile;
  readonly #opts: TaskTableOptions;
  readonly #host: VerbHost;
  readonly #now: () => number;
  readonly #records = new Map<string, TaskRecord>();
  readonly #dirty = new Set<TaskRecord>();
  readonly #used: UsedTaskIds;
  #flushTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(file: TaskFile, options: TaskTableOptions) {
    this.#file = file;
    this.#opts = options;
    this.#host = {
      agentId: options.agentId,
      storageRoot: options.storageRoot,
      log: options.log,
    };
    this.#now = options.now ?? Date.now;
    this.#used = new UsedTaskIds(options.usedIds);
    this.bootId = options.bootId;
    const opened = file.transaction(() => this.#boot());
    this.previousBootId = opened.previousBootId;
    this.restartedTasks = opened.restarted;
  }

  /**
   * Opens (creating if needed) the table in `dataDir`, takes the file's lock for the life of the
   * table, marks tasks left running by the previous boot as failed, and loads every task.
   *
   * @throws CocoError `STORE_IN_USE` when another live agent holds the directory,
   *   `INVALID_OPTIONS` when it belongs to another agent id, `STORE_FAILED` on I/O errors.
   */
  static open(options: TaskTableOptions): TaskTable {
    const file = TaskFile.open(options.dataDir, options.lockWaitMs);
    try {
      return new TaskTable(file, options);
    } catch (error) {
      file.close();
      throw error;
    }
  }

  #boot(): { previousBootId: string | null; restarted: number } {
    const { agentId, bootId } = this.#opts;
    const owner = this.#file.getMeta('agent_id');
    if (owner !== undefined && owner !== agentId) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `data directory ${this.#opts.dataDir} belongs to agent "${owner}", not "${agentId}"`,
      );
    }
    const previousBootId = this.#file.getMeta('boot_id') ?? null;
    this.#file.setMeta('agent_id', agentId);
    this.#file.setMeta('boot_id', bootId);
    const now = this.#now();
    let restarted = 0;
    for (const stored of this.#file.loadAll()) {
      const { bootId: startedBy, ...fields } = stored;
      const record: TaskRecord = { ...fields, run: undefined };
      if (record.state === 'running') {
        record.state = 'failed';
        record.error = restartedError(startedBy, bootId);
        this.#file.end(record.taskId, 'failed', record.progress, undefined, record.error, now);
        restarted++;
      }
      this.#records.set(record.taskId, record);
      this.#opts.listener?.changed(record.taskId);
    }
    // Loaded oldest first: what falls out of the bounds (expired, or too many) goes at once.
    const dropped: string[] = [];
    for (const { taskId, how, at } of this.#file.loadUsed())
      dropped.push(...this.#used.add(taskId, how, at).dropped);
    dropped.push(...this.#used.expire(now));
    this.#file.forgetUsed(dropped);
    for (const [taskId, { how }] of this.#used.entries())
      if (how === 'stopped') this.#opts.listener?.changed(taskId);
    return { previousBootId, restarted };
  }

  /** Number of tasks held (any state). */
  get size(): number {
    return this.#records.size;
  }

  /** Names of the verbs this table runs, sorted. */
  verbNames(): string[] {
    return Object.keys(this.#opts.verbs).sort();
  }

  /**
   * Starts tasks; one result per request, in order. A task id already held (in any state, or
   * earlier in the same batch) is accepted and changes nothing; a used one (stopped before its
   * start arrived, or cleared) is refused with `TASK_ID_USED`. Tasks are on disk before their
   * verbs run, so no verb ever runs for a task a restarted agent would not report.
   */
  start(requests: readonly StartItem[]): StartResult[] {
    this.#assertOpen();
    const results: StartResult[] = [];
    const fresh: { index: number; item: StartItem }[] = [];
    const seen = new Set<string>();
    const now = this.#now();
    for (const item of requests) {
      const { taskId, verb } = item;
      const used = this.#used.get(taskId, now);
      if (this.#records.has(taskId) || seen.has(taskId)) {
        results.push({ taskId, accepted: true });
      } else if (used !== undefined) {
        results.push({ taskId, accepted: false, error: usedIdError(taskId, used) });
      } else if (!Object.hasOwn(this.#opts.verbs, verb)) {
        const knownVerbs = this.verbNames();
        const message = `this agent has no verb "${verb}"; known verbs: ${knownVerbs.join(', ')}`;
        const error = { code: ErrorCode.TaskRejected, message, details: { verb, knownVerbs } };
        results.push({ taskId, accepted: false, error });
      } else {
        seen.add(taskId);
        fresh.push({ index: results.length, item });
        results.push({ taskId, accepted: true });
      }
    }
    if (fresh.length === 0) return results;
    this.#file.transaction(() => {
      for (const { item } of fresh)
        this.#file.insertRunning(item.taskId, item.verb, item.args, this.bootId, now);
    });
    // Sync verbs end here: their ends (and refusals) commit together.
    this.#file.transaction(() => {
      for (const { index, item } of fresh) {
        const result = this.#run(item);
        if (result !== undefined) results[index] = result;
      }
    });
    return results;
  }

  /** Runs one new task's verb; returns a refusal, or undefined when the task was accepted. */
  #run({ taskId, verb, args }: StartItem): StartResult | undefined {
    const record: TaskRecord = {
      taskId,
      state: 'running',
      progress: 0,
      result: undefined,
      error: undefined,
      run: undefined,
    };
    this.#records.set(taskId, record);
    const run = new VerbRun(taskId, verb, this.#host, (p) => this.#progress(record, p));
    record.run = run;
    const call = run.call(this.#opts.verbs[verb]!, args);
    if (call.kind === 'rejected') {
      run.finish();
      this.#records.delete(taskId);
      this.#file.delete(taskId);
      return { taskId, accepted: false, error: call.error };
    }
    this.#opts.listener?.changed(taskId);
    if (call.kind === 'ended') this.#end(record, call.outcome);
    else void call.outcome.then((outcome) => this.#end(record, outcome));
    return undefined;
  }

  /** Ends a running task that is still held; later ends of the same run are ignored. */
  #end(record: TaskRecord, outcome: VerbOutcome): void {
    if (this.#closed || record.state !== 'running' || this.#records.get(record.taskId) !== record)
      return;
    if (outcome.ok) {
      record.state = 'succeeded';
      record.result = outcome.result;
    } else {
      record.state = 'failed';
      record.error = outcome.error;
    }
    this.#ended(record);
  }

  #ended(record: TaskRecord): void {
    record.run?.finish();
    record.run = undefined;
    this.#dirty.delete(record);
    try {
      const { taskId, state, progress, result, error } = record;
      if (state !== 'running') this.#file.end(taskId, state, progress, result, error, this.#now());
    } catch (error) {
      // The file still says "running": a restart reports the task failed, never succeeded.
      this.#opts.log.error(
        { err: error, taskId: record.taskId },
        'cannot record the end of a task',
      );
    }
    this.#opts.listener?.changed(record.taskId);
  }

  #progress(record: TaskRecord, percent: number): void {
    if (this.#closed || record.state !== 'running') return;
    const before = Math.floor(record.progress);
    record.progress = percent;
    this.#dirty.add(record);
    this.#flushTimer ??= setTimeout(() => this.#flush(), PROGRESS_FLUSH_MS).unref();
    // Whole percents only: a verb reporting thousands of times would otherwise wake every
    // long-poll of the change feed as often.
    if (Math.floor(percent) !== before) this.#opts.listener?.changed(record.taskId);
  }

  #flush(): void {
    this.#flushTimer = undefined;
    if (this.#dirty.size === 0) return;
    const dirty = [...this.#dirty];
    this.#dirty.clear();
    try {
      this.#file.transaction(() => {
        for (const r of dirty) if (r.state === 'running') this.#file.progress(r.taskId, r.progress);
      });
    } catch (error) {
      this.#opts.log.warn({ err: error }, 'cannot record task progress');
    }
  }

  /**
   * The status of one task: `cancelled` for an id stopped before its start arrived, `unknown`
   * for other ids not held. Progress is reported while running.
   */
  status(taskId: string): TaskStatus {
    const r = this.#records.get(taskId);
    if (r === undefined) {
      return this.#used.get(taskId, this.#now()) === 'stopped'
        ? { taskId, state: 'cancelled', error: STOPPED_BEFORE_START }
        : { taskId, state: 'unknown' };
    }
    if (r.state === 'running') return { taskId, state: 'running', progress: r.progress };
    if (r.state === 'succeeded') return { taskId, state: 'succeeded', result: r.result };
    return { taskId, state: r.state, error: r.error };
  }

  /**
   * Cancels running tasks at once (their verbs are aborted; their later ends are ignored). An id
   * not held is remembered as used, so its start, should it arrive later, is refused. Ended
   * tasks are left as they are. Returns how many running tasks were cancelled.
   */
  stop(taskIds: readonly string[]): number {
    this.#assertOpen();
    let stopped = 0;
    this.#file.transaction(() => {
      for (const taskId of taskIds) {
        const r = this.#records.get(taskId);
        if (r === undefined) {
          this.#markUsed(taskId, 'stopped');
          continue;
        }
        if (r.state !== 'running') continue;
        r.state = 'cancelled';
        r.error = cancelledError();
        stopped++;
        // Abort first (the record already says cancelled, so the verb's own end is ignored).
        r.run?.stop(r.error);
        this.#ended(r);
      }
    });
    return stopped;
  }

  /**
   * Forgets ended tasks and remembers their ids as used, as it does ids not held (their start
   * may arrive later); running tasks are left as they are. Returns how many tasks were forgotten.
   */
  clear(taskIds: readonly string[]): number {
    this.#assertOpen();
    let cleared = 0;
    this.#file.transaction(() => {
      for (const taskId of taskIds) {
        const r = this.#records.get(taskId);
        if (r?.state === 'running') continue;
        if (r !== undefined) {
          this.#records.delete(taskId);
          this.#file.delete(taskId);
          cleared++;
        }
        this.#markUsed(taskId, 'cleared');
        this.#opts.listener?.forgotten(taskId);
      }
    });
    return cleared;
  }

  /**
   * Remembers a used id, in memory and in the file (the caller's transaction), and forgets the
   * ids that fell out of the bounds. A stopped id's `cancelled` status is a change for the feed.
   */
  #markUsed(taskId: string, how: UsedHow): void {
    const now = this.#now();
    const before = this.#used.get(taskId, now);
    const after = this.#used.add(taskId, how, now);
    this.#file.markUsed(taskId, after.how, now);
    this.#file.forgetUsed(after.dropped);
    for (const id of after.dropped) this.#opts.listener?.forgotten(id);
    if (after.how === 'stopped' && before !== 'stopped') this.#opts.listener?.changed(taskId);
  }

  /** Ids of the held tasks starting with `prefix`, in start order. Costs O(tasks held). */
  list(prefix: string): string[] {
    const ids: string[] = [];
    for (const taskId of this.#records.keys()) if (taskId.startsWith(prefix)) ids.push(taskId);
    return ids;
  }

  /**
   * Closes the file (after writing buffered progress) and aborts running verbs. Their tasks stay
   * `running` on disk, so the next start reports them failed with {@link AGENT_RESTARTED}.
   */
  close(): void {
    if (this.#closed) return;
    clearTimeout(this.#flushTimer);
    this.#flush();
    this.#closed = true;
    const shutdown: ErrorInfo = { code: AGENT_RESTARTED, message: 'the agent is shutting down' };
    for (const r of this.#records.values()) r.run?.stop(shutdown);
    this.#file.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new CocoError(ErrorCode.InvalidOptions, 'the task table is closed');
  }
}
