/**
 * The monitor's read side: a job's steps nested as a tree, and the monitor's change
 * notifications.
 *
 * @module
 */
import { Emitter } from '../core/emitter.js';
import type { ErrorInfo } from '../core/errors.js';
import type { Job, Step } from './port.js';

/** A command step with its tasks and children, in creation order. */
export interface StepNode {
  readonly step: Step;
  /** The command's tasks, by ordinal (work and undo tasks). */
  readonly tasks: readonly Step[];
  /** Its child commands, in creation order (by id). */
  readonly children: readonly StepNode[];
}

/** A job with its steps nested. */
export interface JobTree {
  readonly job: Job;
  /** The root command's step; null if it is not stored (yet). */
  readonly root: StepNode | null;
  /** Steps whose parent step is not stored (a reconcile restores them); normally empty. */
  readonly orphans: readonly Step[];
}

/** Nests a job's steps: tasks under their command, children under their parent, in creation order. */
export function buildTree(job: Job, steps: readonly Step[]): JobTree {
  interface Building {
    readonly step: Step;
    readonly tasks: Step[];
    readonly children: Building[];
  }
  const nodes = new Map<string, Building>();
  for (const s of steps)
    if (s.kind === 'command') nodes.set(s.key, { step: s, tasks: [], children: [] });
  const orphans: Step[] = [];
  let root: StepNode | null = null;
  for (const s of steps) {
    if (s.parentKey === null) {
      const node = nodes.get(s.key);
      if (node && s.commandId === job.id) root = node;
      else orphans.push(s);
      continue;
    }
    const parent = nodes.get(s.parentKey);
    if (!parent) orphans.push(s);
    else if (s.kind === 'task') parent.tasks.push(s);
    else parent.children.push(nodes.get(s.key)!);
  }
  for (const node of nodes.values()) {
    node.tasks.sort((a, b) => (a.taskOrdinal ?? 0) - (b.taskOrdinal ?? 0));
    node.children.sort((a, b) => a.step.commandId - b.step.commandId);
  }
  return {
    job,
    root,
    orphans: orphans.sort(
      (a, b) => a.commandId - b.commandId || (a.taskOrdinal ?? -1) - (b.taskOrdinal ?? -1),
    ),
  };
}

/** Notifications of {@link JobMonitor}, sent after the monitor's own commit. */
export interface JobMonitorEventMap {
  /** A job changed (status, progress, end). */
  job: Job;
  /** A step changed. */
  step: Step;
  /** Writing the job tables failed and is being retried, or a reconcile failed. */
  error: { readonly error: ErrorInfo; readonly context: string };
}

/** Name of a monitor notification. */
export type JobMonitorEventName = keyof JobMonitorEventMap;

/** The monitor's emitter; a listener that throws is reported as an `error` notification. */
export class JobMonitorEvents extends Emitter<JobMonitorEventMap> {}
