/**
 * Human output of the CLI: job trees with progress bars, command and agent lists, errors.
 *
 * @module
 */
import type { Job, Step } from '../jobs/port.js';
import type { JobTree, StepNode } from '../jobs/view.js';
import type { CommandRecord } from '../core/records.js';
import type { ErrorInfo } from '../core/errors.js';

/** A 20-cell progress bar with the percentage. */
export function bar(percent: number, width = 20): string {
  const p = Math.max(0, Math.min(100, percent));
  const full = Math.round((p / 100) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${p.toFixed(0).padStart(3)}%`;
}

function duration(from: number, to: number | null): string {
  const ms = (to ?? Date.now()) - from;
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * How a status reads: a command `waiting` for the work its stage started is running, as far as
 * a person watching it is concerned.
 */
const LABELS: Readonly<Record<string, string>> = { waiting: 'running' };

function state(s: Pick<Step, 'status' | 'compensation' | 'error'>): string {
  // "compensating, compensating" says nothing twice: the compensation only when it adds to the status.
  const comp =
    s.compensation !== 'none' && s.compensation !== s.status ? `, ${s.compensation}` : '';
  const err = s.error ? ` — ${s.error.code}: ${s.error.message}` : '';
  return `${LABELS[s.status] ?? s.status}${comp}${err}`;
}

/** Options of {@link renderTree}. */
export interface RenderOptions {
  /** Show the job's running time (left out when only changes are printed). @default true */
  readonly durations?: boolean;
}

/** The lines of a job tree: one per command step, tasks under their command. */
export function renderTree(tree: JobTree, options: RenderOptions = {}): string[] {
  const lines: string[] = [];
  const { job } = tree;
  const took = options.durations === false ? '' : `  (${duration(job.startedAt, job.endedAt)})`;
  lines.push(`job ${job.id} ${job.type}  ${bar(job.progress)}  ${jobState(job)}${took}`);
  const walk = (node: StepNode, indent: string): void => {
    const s = node.step;
    lines.push(
      `${indent}${s.name.padEnd(Math.max(8, 36 - indent.length))} ${bar(s.progress)}  ${state(s)}`,
    );
    for (const t of node.tasks) {
      const label = `${t.undo ? 'undo ' : ''}task ${t.name}`;
      lines.push(
        `${indent}  · ${label.padEnd(Math.max(6, 32 - indent.length))} ${bar(t.progress)}  ${state(t)}`,
      );
    }
    for (const child of node.children) walk(child, `${indent}  `);
  };
  if (tree.root) walk(tree.root, '  ');
  return lines;
}

function jobState(job: Job): string {
  return state({ status: job.status, compensation: job.compensation, error: job.error });
}

/** `text` cut to `columns` characters (an ellipsis marks the cut): a redrawn screen never wraps. */
export function fit(text: string, columns: number): string {
  if (columns <= 1 || text.length <= columns) return text;
  return `${text.slice(0, columns - 1)}…`;
}

/** One line per command. */
export function renderCommands(
  commands: readonly Pick<
    CommandRecord,
    'id' | 'parentId' | 'error' | 'createdAt' | 'type' | 'status'
  >[],
): string[] {
  if (commands.length === 0) return ['no commands'];
  return commands.map((c) => {
    const parent = c.parentId === null ? '' : ` (child of ${c.parentId})`;
    const err = c.error ? ` — ${c.error.code}` : '';
    const when = new Date(c.createdAt).toISOString().replace('T', ' ').slice(0, 19);
    return `${String(c.id).padStart(6)}  ${when}  ${c.type.padEnd(24)} ${c.status.padEnd(12)}${err}${parent}`;
  });
}

/** One line per command row that could not be read: its id and why. */
export function renderUnreadable(
  rows: readonly { readonly commandId: number | null; readonly error: ErrorInfo }[],
): string[] {
  return rows.map(
    (r) =>
      `${String(r.commandId ?? '?').padStart(6)}  cannot be read, skipped — ${r.error.code}: ${r.error.message}`,
  );
}

/** An agent as `GET /v1/agents` lists it (the fields shown). */
export interface AgentLine {
  readonly id: string;
  readonly address: string | null;
  readonly state: 'up' | 'down';
  readonly lastSeenAt: number | null;
  readonly lastError: { readonly code: string } | null;
  readonly tasksInFlight: number;
  readonly configured: boolean;
}

/**
 * One line per agent: id, up or down (and retired when the node's configuration no longer names
 * it), this node's tasks in flight there, when it last answered, its address, its last error.
 */
export function renderAgents(agents: readonly AgentLine[], now = Date.now()): string[] {
  if (agents.length === 0) return ['no agents'];
  const width = Math.max(5, ...agents.map((a) => a.id.length));
  return [
    `${'agent'.padEnd(width)}  state          in flight  last seen  address`,
    ...agents.map((a) => {
      const state = `${a.state}${a.configured ? '' : ', retired'}`;
      const seen = a.lastSeenAt === null ? 'never' : `${duration(a.lastSeenAt, now)} ago`;
      const err = a.lastError ? ` — ${a.lastError.code}` : '';
      return `${a.id.padEnd(width)}  ${state.padEnd(13)}  ${String(a.tasksInFlight).padStart(9)}  ${seen.padEnd(9)}  ${a.address ?? '—'}${err}`;
    }),
  ];
}
