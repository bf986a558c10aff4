/**
 * Human output of the CLI: job trees with progress bars, command, agent and command type lists,
 * errors.
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

/** A time as the CLI prints one: "2026-12-08 00:40:53" (UTC, to the second). */
export function timestamp(at: number): string {
  return new Date(at).toISOString().replace('T', ' ').slice(0, 19);
}

/** How long ago `at` was, in its largest whole unit: "12 s", "5 min", "3 h", "2 d". */
export function ago(at: number, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - at) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
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
    const when = timestamp(c.createdAt);
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

/** A command type's pause as the API gives it (`pausedType`). */
export interface TypePause {
  readonly type: string;
  readonly pausedAt: number;
  readonly by: string | null;
  readonly reason: string | null;
}

/**
 * When a pause began, who made it and why: "since 2026-12-08 00:40:53 UTC, 5 min ago, by
 * ops-alice: disk firmware upgrade" (who and why only when known).
 */
export function describePause(p: TypePause, now = Date.now()): string {
  const by = p.by === null || p.by === '' ? '' : `, by ${p.by}`;
  const why = p.reason === null || p.reason === '' ? '' : `: ${p.reason}`;
  return `since ${timestamp(p.pausedAt)} UTC, ${ago(p.pausedAt, now)} ago${by}${why}`;
}

/** A command type as `GET /v1/types` lists it (the fields shown). */
export interface TypeLine {
  readonly name: string;
  readonly version: number;
  readonly submittable: boolean;
  readonly limit: number | null;
  readonly running: number | null;
  readonly queued: number;
  readonly paused: TypePause | null;
}

/**
 * One line per command type: name, parameters' version, submittable or child only, its root
 * limit on the node, its roots running and queued there, and its pause; then the pauses of
 * names the node does not register (a removed type's, which only a resume ends).
 */
export function renderTypes(
  types: readonly TypeLine[],
  otherPaused: readonly TypePause[],
  now = Date.now(),
): string[] {
  const lines: string[] = [];
  if (types.length === 0) lines.push('no command types registered');
  else {
    const width = Math.max(4, ...types.map((t) => t.name.length));
    lines.push(
      `${'type'.padEnd(width)}  version  roots        limit  running  queued  paused`,
      ...types.map((t) => {
        const roots = t.submittable ? 'submittable' : 'child only';
        const paused = t.paused === null ? '—' : `PAUSED ${describePause(t.paused, now)}`;
        return `${t.name.padEnd(width)}  ${String(t.version).padStart(7)}  ${roots.padEnd(11)}  ${String(t.limit ?? '—').padStart(5)}  ${String(t.running ?? '—').padStart(7)}  ${String(t.queued).padStart(6)}  ${paused}`;
      }),
    );
  }
  if (otherPaused.length > 0) {
    lines.push('paused, and not registered on this node (coco resume <type> ends it):');
    for (const p of otherPaused) lines.push(`  ${p.type}  PAUSED ${describePause(p, now)}`);
  }
  return lines;
}
