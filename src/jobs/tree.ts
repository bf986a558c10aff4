/**
 * The monitor's in-memory view of running jobs: one step tree per job, kept current from the
 * engine's records, with progress rolled up incrementally (running sums per command, in tenths
 * of a percent so that sums stay exact integers).
 *
 * Every write into the cache is monotone: a record replaces a step's state only if it is at
 * least as far along — by status rank (and compensation rank for commands), then by the
 * engine's `updatedAt` — so applying an older snapshot after a newer event never moves a step
 * back. Declared counts only grow, and shown progress never drops while a step runs.
 *
 * @module
 */
import { isTaskEnded, isTerminal, type CommandStatus } from '../core/states.js';
import type { TaskRecord } from '../core/records.js';
import type { CommandUpdate, TaskUpdate } from '../store/port.js';
import {
  CommandNode,
  JobState,
  TASK_RANK,
  TaskNode,
  commandRank,
  type CommandFacts,
} from './nodes.js';
import type { Job, Step } from './port.js';
import { MAX_UNFINISHED, rollUp, taskProgress } from './progress.js';
import { commandStep, jobRecord, sameError, taskStep } from './records.js';

const tenths = (percent: number): number => Math.round(percent * 10);

/** What {@link JobCache.collect} hands to the job store. */
export interface CollectedChanges {
  readonly jobs: Job[];
  readonly steps: Step[];
  /** Jobs that ended and left the cache. */
  readonly ended: number[];
}

/** The running jobs' trees, and what changed since the last {@link JobCache.collect}. */
export class JobCache {
  readonly #jobs = new Map<number, JobState>();
  /** Command id -> its job, for every command of a cached job. */
  readonly #index = new Map<number, JobState>();
  #dirtyCommands = new Set<CommandNode>();
  #dirtyTasks = new Set<TaskNode>();
  #dirtyJobs = new Set<JobState>();
  /** Jobs with children waiting for their parent. */
  readonly #incomplete = new Set<JobState>();

  /** Number of cached (running) jobs. */
  get size(): number {
    return this.#jobs.size;
  }

  /** Whether a job is cached. */
  has(jobId: number): boolean {
    return this.#jobs.has(jobId);
  }

  /** A cached job's tree. */
  job(jobId: number): JobState | undefined {
    return this.#jobs.get(jobId);
  }

  /** Whether a command belongs to a cached job. */
  knows(commandId: number): boolean {
    return this.#index.has(commandId);
  }

  /** Starts caching a job (empty until records are merged into it). */
  open(jobId: number): JobState {
    let job = this.#jobs.get(jobId);
    if (!job) {
      job = new JobState(jobId);
      this.#jobs.set(jobId, job);
    }
    return job;
  }

  /**
   * Merges a command's full state (an insert or a snapshot record). A root opens its job; a
   * command of a job that is not cached is refused (returns false).
   * @param floor - progress already shown for it (a stored step): never shown lower
   */
  mergeCommand(facts: CommandFacts, floor?: number): boolean {
    const job = facts.parentId === null ? this.open(facts.id) : this.#jobs.get(facts.rootId);
    if (!job) return false;
    let node = job.commands.get(facts.id);
    if (!node) {
      node = new CommandNode(job, facts);
      job.commands.set(facts.id, node);
      this.#index.set(facts.id, job);
      this.#touch(node);
      this.#attach(job, node);
      const waiting = job.waiting.get(node.id);
      if (waiting) {
        job.waiting.delete(node.id);
        if (job.waiting.size === 0) this.#incomplete.delete(job);
        for (const child of waiting) this.#attach(job, child);
      }
    }
    if (floor !== undefined)
      this.#raise(node, tenths(Math.min(floor, isSucceeded(facts.status) ? 100 : MAX_UNFINISHED)));
    this.#mergeState(node, facts);
    return true;
  }

  /** Applies a command update; false if the command is not cached. */
  updateCommand(update: CommandUpdate): boolean {
    const job = this.#index.get(update.id);
    const node = job?.commands.get(update.id);
    if (!node) return false;
    this.#mergeState(node, update);
    return true;
  }

  /**
   * Merges a task's full state (an insert or a snapshot record); false if its command is not cached.
   * @param floor - progress already shown for it (a stored step): never shown lower
   */
  mergeTask(record: TaskRecord, floor?: number): boolean {
    const node = this.#index.get(record.commandId)?.commands.get(record.commandId);
    if (!node) return false;
    let task = node.tasks.get(record.ordinal);
    if (!task) {
      task = new TaskNode(
        node,
        record.ordinal,
        `${record.verb}@${record.agentId}`,
        record.origin < 0,
        record.createdAt,
      );
      node.tasks.set(record.ordinal, task);
      if (!task.undo) node.workTasks++;
      this.#dirtyTasks.add(task);
    }
    this.#mergeTask(task, record, floor);
    return true;
  }

  /** Applies a task update; false if the task is not cached. */
  updateTask(update: TaskUpdate): boolean {
    const task = this.#index
      .get(update.commandId)
      ?.commands.get(update.commandId)
      ?.tasks.get(update.ordinal);
    if (!task) return false;
    this.#mergeTask(task, update, undefined);
    return true;
  }

  /** Records an agent's progress report for a running task (ignored if unknown or ended). */
  reportProgress(commandId: number, ordinal: number, percent: number): void {
    const task = this.#index.get(commandId)?.commands.get(commandId)?.tasks.get(ordinal);
    if (!task || isTaskEnded(task.status)) return;
    this.#setTaskProgress(task, tenths(taskProgress(task.status, task.progress / 10, percent)));
  }

  /** Marks every step of a cached job changed (after a reconcile: rewrite it whole). */
  markAll(jobId: number): void {
    const job = this.#jobs.get(jobId);
    if (!job) return;
    this.#dirtyJobs.add(job);
    for (const node of job.commands.values()) {
      this.#dirtyCommands.add(node);
      for (const task of node.tasks.values()) this.#dirtyTasks.add(task);
    }
  }

  /** Drops a job from the cache without writing it. */
  forget(jobId: number): void {
    const job = this.#jobs.get(jobId);
    if (!job) return;
    this.#jobs.delete(jobId);
    this.#incomplete.delete(job);
    for (const id of job.commands.keys()) this.#index.delete(id);
  }

  /** Jobs with children whose parent never arrived (the view missed records: reconcile them). */
  incomplete(): number[] {
    return [...this.#incomplete].map((job) => job.id);
  }

  /**
   * The records of everything changed since the last call. Ended jobs leave the cache, unless
   * `keepEnded` (then the caller forgets them later).
   */
  collect(now: number, keepEnded = false): CollectedChanges {
    const steps: Step[] = [];
    for (const node of this.#dirtyCommands) steps.push(commandStep(node));
    for (const task of this.#dirtyTasks) steps.push(taskStep(task));
    const jobs: Job[] = [];
    const ended: number[] = [];
    for (const job of this.#dirtyJobs) {
      const root = job.root;
      if (!root) continue;
      jobs.push(jobRecord(job, root, now));
      if (isTerminal(root.status) && root.compensation !== 'compensating') ended.push(job.id);
    }
    if (!keepEnded) for (const id of ended) this.forget(id);
    this.#dirtyCommands = new Set();
    this.#dirtyTasks = new Set();
    this.#dirtyJobs = new Set();
    return { jobs, steps, ended };
  }

  #attach(job: JobState, node: CommandNode): void {
    if (node.parentId === null) return;
    const parent = job.commands.get(node.parentId);
    if (!parent) {
      const list = job.waiting.get(node.parentId) ?? [];
      list.push(node);
      job.waiting.set(node.parentId, list);
      this.#incomplete.add(job);
      return;
    }
    node.attached = true;
    parent.children++;
    parent.childSum += node.progress;
    this.#refresh(parent);
  }

  #mergeState(
    node: CommandNode,
    s: Omit<CommandFacts, 'id' | 'type' | 'parentId' | 'rootId' | 'createdAt'>,
  ): void {
    const incoming = commandRank(s.status, s.compensation);
    const current = commandRank(node.status, node.compensation);
    let changed = false;
    if (incoming > current || (incoming === current && s.updatedAt >= node.updatedAt)) {
      changed =
        node.status !== s.status ||
        node.compensation !== s.compensation ||
        node.endedAt !== s.endedAt ||
        !sameError(node.error, s.error);
      node.status = s.status;
      node.compensation = s.compensation;
      node.error = s.error;
      node.endedAt = s.endedAt;
      node.updatedAt = s.updatedAt;
    }
    if (s.expectedTasks > node.expectedTasks || s.expectedChildren > node.expectedChildren) {
      node.expectedTasks = Math.max(node.expectedTasks, s.expectedTasks);
      node.expectedChildren = Math.max(node.expectedChildren, s.expectedChildren);
      changed = true;
    }
    if (changed) this.#touch(node);
    this.#refresh(node);
  }

  #mergeTask(
    task: TaskNode,
    s: Pick<TaskRecord, 'status' | 'error' | 'endedAt'>,
    stored: number | undefined,
  ): void {
    if (TASK_RANK[s.status] >= TASK_RANK[task.status]) {
      if (task.status !== s.status || task.endedAt !== s.endedAt || !sameError(task.error, s.error))
        this.#dirtyTasks.add(task);
      task.status = s.status;
      task.error = s.error;
      task.endedAt = s.endedAt;
    }
    const floor = stored === undefined ? task.progress / 10 : Math.max(task.progress / 10, stored);
    this.#setTaskProgress(task, tenths(taskProgress(task.status, floor)));
  }

  #setTaskProgress(task: TaskNode, value: number): void {
    if (value === task.progress) return;
    const delta = value - task.progress;
    task.progress = value;
    this.#dirtyTasks.add(task);
    if (task.undo) return;
    task.command.workSum += delta;
    this.#refresh(task.command);
  }

  /** Raises a command's shown progress to `value` (tenths), carrying the change up. */
  #raise(node: CommandNode, value: number): void {
    if (value <= node.progress) return;
    const delta = value - node.progress;
    node.progress = value;
    this.#touch(node);
    const parent =
      node.attached && node.parentId !== null ? node.job.commands.get(node.parentId) : undefined;
    if (!parent) return;
    parent.childSum += delta;
    this.#refresh(parent);
  }

  #touch(node: CommandNode): void {
    this.#dirtyCommands.add(node);
    if (node.parentId === null) this.#dirtyJobs.add(node.job);
  }

  /** Recomputes a command's progress and carries a change up to the root. */
  #refresh(start: CommandNode): void {
    let node: CommandNode | undefined = start;
    while (node) {
      const next = tenths(
        rollUp({
          status: node.status,
          previous: node.progress / 10,
          expectedTasks: node.expectedTasks,
          expectedChildren: node.expectedChildren,
          workTasks: node.workTasks,
          workTaskSum: node.workSum / 10,
          children: node.children,
          childSum: node.childSum / 10,
        }),
      );
      if (next === node.progress) return;
      const delta = next - node.progress;
      node.progress = next;
      this.#touch(node);
      if (!node.attached || node.parentId === null) return;
      const parent: CommandNode | undefined = node.job.commands.get(node.parentId);
      if (parent) parent.childSum += delta;
      node = parent;
    }
  }
}

function isSucceeded(status: CommandStatus): boolean {
  return status === 'succeeded';
}
