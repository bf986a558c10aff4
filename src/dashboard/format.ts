/**
 * Formatting of times, durations and values for the views (pure functions).
 *
 * @module
 */

/** What the dashboard last learnt of the node's readiness (`GET /v1/ready`). */
export type NodeHealth =
  | { readonly kind: 'ready' }
  | {
      readonly kind: 'not-ready';
      readonly nodeId: string;
      readonly reason: string;
      readonly detail: string | null;
    }
  | { readonly kind: 'unreachable'; readonly error: string };

/** The banner shown for the node's health, or null when it is ready (or not known yet). */
export function healthBanner(health: NodeHealth | null): string | null {
  if (health === null || health.kind === 'ready') return null;
  if (health.kind === 'unreachable')
    return `The node does not answer (${health.error}): what is shown may be out of date.`;
  const detail = health.detail === null ? '' : ` (${health.detail})`;
  return `Node ${health.nodeId} is not ready: ${health.reason}${detail}. Submits and cancels may be refused until it is.`;
}

/** Statuses that mean "ended" (of commands, tasks and jobs alike). */
const ENDED = new Set(['succeeded', 'failed', 'cancelled']);

/** Whether a status is an ending. */
export function isEnded(status: string): boolean {
  return ENDED.has(status);
}

/** A duration in ms, short: `850 ms`, `12.4 s`, `3 m 05 s`, `2 h 07 m`, `3 d 4 h`. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  const s = ms / 1_000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${String(m % 60).padStart(2, '0')} m`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** How long something ran: to its end, or to now while it runs. */
export function elapsed(start: number, end: number | null | undefined, now: number): string {
  return duration((end ?? now) - start);
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** A time of day, local: `14:03:27`; with the date when it is not today. */
export function clock(at: number | null | undefined, now = Date.now()): string {
  if (at === null || at === undefined) return '—';
  const d = new Date(at);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return new Date(now).toDateString() === d.toDateString()
    ? time
    : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** A full local timestamp, for tooltips: `2026-12-05 14:03:27.120`. */
export function stamp(at: number | null | undefined): string {
  if (at === null || at === undefined) return '';
  const d = new Date(at);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** How long ago: `4 s ago`, `3 m ago`. */
export function ago(at: number | null | undefined, now: number): string {
  if (at === null || at === undefined) return 'never';
  return `${duration(Math.max(0, now - at)).replace(/\.\d s$/, ' s')} ago`;
}

/** A progress figure: `42.5 %`, `100 %`. */
export function percent(p: number): string {
  return `${Number.isInteger(p) ? p : p.toFixed(1)} %`;
}

/** A JSON value, indented, for a `<pre>` (shown as text, never as markup). */
export function json(value: unknown): string {
  if (value === undefined) return '—';
  try {
    return JSON.stringify(value, null, 2) ?? '—';
  } catch {
    return '(cannot be shown)';
  }
}
