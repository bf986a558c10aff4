/**
 * Small templates the views share: status badges, progress bars, errors, values, links, the
 * cancel button. Everything interpolated by lit-html is text or an attribute value, never
 * markup; widths are set through the CSSOM ({@link width}), which the page's policy allows.
 *
 * @module
 */
import { html, noChange, nothing, type ElementPart, type TemplateResult } from 'lit-html';
import { Directive, directive, PartType, type PartInfo } from 'lit-html/directive.js';
import { ago, isEnded, json, percent, stamp } from './format.js';
import type { ErrorInfo, PausedType, Queue } from './schemas.js';
import {
  app,
  canCancel,
  confirmAndCancel,
  confirmAndPause,
  confirmAndRelease,
  confirmAndRerun,
  confirmAndResume,
} from './state.js';

export { isEnded } from './format.js';

/** The colour family of a status (see app.css `.s-*`). */
export function tone(status: string): string {
  switch (status) {
    case 'succeeded':
    case 'done':
    case 'up':
    case 'compensated':
      return 'ok';
    case 'failed':
    case 'down':
      return 'bad';
    case 'cancelled':
    case 'not run':
    case 'retired':
      return 'muted';
    case 'aborting':
    case 'compensating':
    case 'queued':
    case 'paused':
      return 'warn';
    case 'none':
      return 'muted';
    default:
      return 'run';
  }
}

/** A status as a small coloured label. */
export function badge(status: string, title?: string): TemplateResult {
  return html`<span class="badge s-${tone(status)}" title=${title ?? nothing}>${status}</span>`;
}

/**
 * Sets an element's width (percent) through the CSSOM. lit-html's `styleMap` writes a `style`
 * attribute on first render, which the page's Content-Security-Policy refuses.
 */
class WidthDirective extends Directive {
  constructor(info: PartInfo) {
    super(info);
    if (info.type !== PartType.ELEMENT) throw new Error('width() goes on an element');
  }
  render(_percent: number): unknown {
    return noChange;
  }
  override update(part: ElementPart, [percent]: [number]): unknown {
    (part.element as HTMLElement).style.width = `${percent}%`;
    return noChange;
  }
}
const width = directive(WidthDirective);

/** A progress bar with its figure. */
export function bar(progress: number, status: string): TemplateResult {
  const p = Math.max(0, Math.min(100, progress));
  return html`<span
    class="bar s-${tone(status)}"
    role="progressbar"
    aria-valuemin="0"
    aria-valuemax="100"
    aria-valuenow=${p}
    ><span class="track"><span class="fill" ${width(p)}></span></span
    ><span class="figure">${percent(p)}</span></span
  >`;
}

/** An error: its code, then its message. */
export function errorLine(error: ErrorInfo | null | undefined): TemplateResult | typeof nothing {
  if (!error) return nothing;
  return html`<span class="error"><code class="code">${error.code}</code> ${error.message}</span>`;
}

/** A JSON value as text in a block. */
export function value(v: unknown): TemplateResult {
  return html`<pre class="json">${json(v)}</pre>`;
}

/** A link to a command's page. */
export function commandLink(id: number, label: string | number = id): TemplateResult {
  return html`<a href="#/commands/${id}">${label}</a>`;
}

/** A link to a job's page. */
export function jobLink(id: number, label: string | number = id): TemplateResult {
  return html`<a href="#/jobs/${id}">${label}</a>`;
}

/** The cancel button of a command: only for roles that may cancel, only while it runs. */
export function cancelButton(
  id: number,
  type: string,
  status: string,
  label = 'Cancel…',
): TemplateResult | typeof nothing {
  if (!canCancel() || isEnded(status)) return nothing;
  return html`<button
    class="danger"
    data-cancel=${id}
    @click=${() => void confirmAndCancel(id, type)}
  >
    ${label}
  </button>`;
}

/**
 * The release button of a command held because the store refused its tree (`TREE_REFUSED`): only
 * for roles that may run commands. On a confirmed release `done` runs (the view reloads).
 */
export function releaseButton(
  id: number,
  type: string,
  done: () => void,
): TemplateResult | typeof nothing {
  if (!canCancel()) return nothing;
  return html`<button
    data-release=${id}
    @click=${async () => {
      if (await confirmAndRelease(id, type)) done();
    }}
  >
    Release…
  </button>`;
}

/**
 * The rerun button of a job: only for roles that may run commands, only once it has ended. On a
 * confirmed rerun the page goes to the new job.
 */
export function rerunButton(
  id: number,
  type: string,
  status: string,
): TemplateResult | typeof nothing {
  if (!canCancel() || !isEnded(status)) return nothing;
  return html`<button
    data-rerun=${id}
    @click=${async () => {
      const next = await confirmAndRerun(id, type);
      if (next !== null) location.hash = `#/jobs/${next}`;
    }}
  >
    Run again…
  </button>`;
}

/**
 * The pause button of a command type: only for roles that may run commands, only for a type that
 * can be submitted and is not paused. On a confirmed pause `done` runs (the view reloads).
 */
export function pauseButton(
  name: string,
  submittable: boolean,
  paused: boolean,
  done: () => void,
): TemplateResult | typeof nothing {
  if (!canCancel() || !submittable || paused) return nothing;
  return html`<button
    data-pause=${name}
    @click=${async () => {
      if (await confirmAndPause(name)) done();
    }}
  >
    Pause…
  </button>`;
}

/**
 * The resume button of a paused command type: only for roles that may run commands. `waiting`:
 * its roots waiting on this node (the dialog says it). On a confirmed resume `done` runs.
 */
export function resumeButton(
  name: string,
  waiting: number,
  done: () => void,
): TemplateResult | typeof nothing {
  if (!canCancel()) return nothing;
  return html`<button
    data-resume=${name}
    @click=${async () => {
      if (await confirmAndResume(name, waiting)) done();
    }}
  >
    Resume…
  </button>`;
}

/** Who paused a type and why, in a few words: `by ops, 3 m ago: disk array maintenance`. */
export function pauseWords(pause: PausedType, now: number): TemplateResult {
  return html`<span class="pause-words" title=${`paused at ${stamp(pause.pausedAt)}`}
    >by ${pause.by ?? 'someone unknown'},
    ${ago(pause.pausedAt, now)}${
      pause.reason === null ? nothing : html`: <q class="reason">${pause.reason}</q>`
    }</span
  >`;
}

/**
 * What a root (a job, a command) waits for before it starts, as a notice: its type's pause — with
 * who paused it and a link to the Types page, where it is resumed — or else its place in the
 * root limits' queue; nothing when it does not wait.
 */
export function waitNotice(queue: Queue | undefined): TemplateResult | typeof nothing {
  if (!queue) return nothing;
  const pause = queue.paused ?? null;
  if (pause === null)
    return html`<p class="notice" role="status" aria-label="waiting for admission">
      Waiting for admission: ${queue.text}
    </p>`;
  return html`<p class="notice warn" role="status" aria-label="waiting for a paused type">
    <span
      >Waiting: <span class="mono">${pause.type}</span> is paused (${pauseWords(pause, app.now)}) —
      resume it on the
      <a href="#/types?type=${encodeURIComponent(pause.type)}" data-types-link>Types page</a>.
      <span class="quiet small">(${queue.text})</span></span
    >
  </p>`;
}

/** A line saying a view is loading, or why it failed. */
export function loading(error: string | null): TemplateResult {
  return error === null
    ? html`<p class="quiet">Loading…</p>`
    : html`<p class="notice error" role="alert">${error}</p>`;
}

/**
 * The page of one record (a job, a command) until it has loaded: its title, and the loading line
 * or why it failed.
 */
export function loadingPage(title: string, error: string | null): TemplateResult {
  return html`<section class="page">
    <header class="page-head"><h1>${title}</h1></header>
    ${loading(error)}
  </section>`;
}

/**
 * Why the id part of a record's route (`#/jobs/12`) names no record — not a positive whole
 * number — as the page says it (`"x" is not a job id`); null for a good id.
 */
export function badId(part: string | undefined, what: string): string | null {
  const id = Number(part);
  return Number.isSafeInteger(id) && id > 0 ? null : `"${part ?? ''}" is not ${what} id`;
}

/** Whether a view's data is updating: its live stream's state, or polling. */
export type LiveState = 'live' | 'connecting' | 'polling' | 'off' | 'ended';
/** The states of a page that follows one record's stream (no polling). */
export type StreamState = Exclude<LiveState, 'polling'>;

/** The dot saying whether a view's live stream is connected. */
export function liveDot(state: LiveState): TemplateResult {
  const title = {
    live: 'updating live',
    polling: 'updating every few seconds',
    connecting: 'reconnecting…',
    off: 'not updating',
    ended: 'ended: nothing more will change',
  }[state];
  return html`<span class="live live-${state}" title=${title}>${title}</span>`;
}

/** Forces a render on the next frame (re-exported for views). */
export function refresh(): void {
  app.update();
}
