/**
 * The jobs list: one row per job (root command), newest first, with live progress, status,
 * type and duration; filters by status, type and creation time (kept in the address, so a
 * filtered list can be bookmarked); server-side cursor paging. Rows change live from the node's
 * event stream (`GET /v1/events`): a job on the page is replaced, a new job matching the filters
 * is added on top of the first page.
 *
 * @module
 */
import { html, nothing, type TemplateResult } from 'lit-html';
import { repeat } from 'lit-html/directives/repeat.js';
import { listJobs, type JobFilter } from '../api.js';
import { clock, elapsed, stamp } from '../format.js';
import { job as jobSchema, type Job } from '../schemas.js';
import { follow } from '../sse.js';
import { app, describe } from '../state.js';
import { badge, bar, liveDot } from '../ui.js';
import type { Route, View } from './view.js';

/** Rows per page: a laptop screen's worth, one indexed read on the server. */
const PAGE = 50;
/**
 * How often the page is re-read when the node offers no event stream: often enough for a
 * progress bar to move, one small indexed read.
 */
const POLL_MS = 2_000;

const STATUSES = ['running', 'succeeded', 'failed', 'cancelled'] as const;
/** Time presets of the filter: label and age in ms. */
const SINCE: readonly (readonly [string, string, number])[] = [
  ['', 'any time', 0],
  ['15m', 'last 15 min', 15 * 60_000],
  ['1h', 'last hour', 3_600_000],
  ['24h', 'last 24 h', 86_400_000],
  ['7d', 'last 7 days', 7 * 86_400_000],
];

/** The filters of the address (`#/jobs?status=running&type=disk.migrate&since=1h`). */
interface Filters {
  readonly status: readonly string[];
  readonly type: string;
  readonly since: string;
}

function filtersOf(query: URLSearchParams): Filters {
  const status = (query.get('status') ?? '')
    .split(',')
    .filter((s) => (STATUSES as readonly string[]).includes(s));
  const since = query.get('since') ?? '';
  return {
    status,
    type: query.get('type') ?? '',
    since: SINCE.some(([k]) => k === since) ? since : '',
  };
}

function addressOf(f: Filters): string {
  const q = new URLSearchParams();
  if (f.status.length > 0) q.set('status', f.status.join(','));
  if (f.type !== '') q.set('type', f.type);
  if (f.since !== '') q.set('since', f.since);
  const s = q.toString();
  return `#/jobs${s === '' ? '' : `?${s}`}`;
}

/** The jobs page. */
export class JobsView implements View {
  readonly #filters: Filters;
  /** The cursors of the pages before this one (the first page's is null). */
  #cursors: (string | null)[] = [];
  #cursor: string | null = null;
  #next: string | null = null;
  #jobs: Job[] = [];
  #loaded = false;
  #error: string | null = null;
  #selected = 0;
  #live: 'live' | 'connecting' | 'polling' = 'connecting';
  #loadMs: number | null = null;
  readonly #abort = new AbortController();
  #poll: ReturnType<typeof setInterval> | null = null;

  constructor(route: Route) {
    this.#filters = filtersOf(route.query);
    void this.#load();
    follow(
      '/v1/events',
      {
        onOpen: () => {
          const reopened = this.#live !== 'connecting' || this.#poll !== null;
          this.#live = 'live';
          this.#stopPolling();
          // Whatever changed while the stream was away (the first page read is already on its way).
          if (reopened) void this.#load();
        },
        onEvent: (e) => {
          if (e.event === 'job') this.#apply(e.data);
        },
        onError: (_error, retryInMs) => {
          this.#live = retryInMs === null ? 'polling' : 'connecting';
          // No stream here (an older node, or refused), or not now: the page is re-read instead.
          this.#startPolling();
          app.update();
        },
      },
      this.#abort.signal,
      true,
    );
  }

  title(): string {
    return 'Jobs';
  }

  #query(): JobFilter {
    const age = SINCE.find(([k]) => k === this.#filters.since)?.[2] ?? 0;
    return {
      ...(this.#filters.status.length > 0 ? { status: this.#filters.status } : {}),
      ...(this.#filters.type !== '' ? { type: this.#filters.type } : {}),
      ...(age > 0 ? { createdAfter: Date.now() - age } : {}),
    };
  }

  async #load(): Promise<void> {
    const started = performance.now();
    try {
      const page = await listJobs(this.#query(), this.#cursor, PAGE);
      this.#jobs = [...page.jobs];
      this.#next = page.nextCursor;
      this.#error = null;
      this.#loadMs = performance.now() - started;
    } catch (error) {
      this.#error = describe(error);
    }
    this.#loaded = true;
    this.#selected = Math.min(this.#selected, Math.max(0, this.#jobs.length - 1));
    app.update();
  }

  #startPolling(): void {
    this.#poll ??= setInterval(() => void this.#load(), POLL_MS);
  }

  #stopPolling(): void {
    if (this.#poll !== null) clearInterval(this.#poll);
    this.#poll = null;
  }

  /** A job changed: replace its row, or add it on top of the first page if it belongs there. */
  #apply(data: string): void {
    let job: Job;
    try {
      job = jobSchema.parse(JSON.parse(data));
    } catch {
      return;
    }
    const at = this.#jobs.findIndex((j) => j.id === job.id);
    if (at >= 0) {
      this.#jobs[at] = job;
    } else if (this.#cursor === null && this.#matches(job) && job.id > (this.#jobs[0]?.id ?? 0)) {
      // Added on top; the page grows rather than drop its last row, whose place the next
      // page's cursor keeps.
      this.#jobs = [job, ...this.#jobs];
    } else return;
    app.update();
  }

  #matches(job: Job): boolean {
    const q = this.#query();
    return (
      (q.status === undefined || q.status.includes(job.status)) &&
      (q.type === undefined || q.type === job.type) &&
      (q.createdAfter === undefined || job.startedAt >= q.createdAfter)
    );
  }

  #go(filters: Filters): void {
    location.hash = addressOf(filters);
  }

  #page(direction: 1 | -1): void {
    if (direction === 1) {
      if (this.#next === null) return;
      this.#cursors.push(this.#cursor);
      this.#cursor = this.#next;
    } else {
      if (this.#cursors.length === 0) return;
      this.#cursor = this.#cursors.pop() ?? null;
    }
    this.#selected = 0;
    void this.#load();
  }

  key(event: KeyboardEvent): boolean {
    const n = this.#jobs.length;
    if (event.key === 'j' || event.key === 'ArrowDown')
      this.#selected = Math.min(n - 1, this.#selected + 1);
    else if (event.key === 'k' || event.key === 'ArrowUp')
      this.#selected = Math.max(0, this.#selected - 1);
    else if (event.key === 'Enter' && n > 0)
      location.hash = `#/jobs/${this.#jobs[this.#selected]!.id}`;
    else if (event.key === 'n') this.#page(1);
    else if (event.key === 'p') this.#page(-1);
    else return false;
    app.update();
    document.querySelector<HTMLElement>('tr.selected a')?.focus({ preventScroll: false });
    return true;
  }

  dispose(): void {
    this.#abort.abort();
    this.#stopPolling();
  }

  #filterBar(): TemplateResult {
    const f = this.#filters;
    const toggle = (s: string): void => {
      const status = f.status.includes(s) ? f.status.filter((x) => x !== s) : [...f.status, s];
      this.#go({ ...f, status });
    };
    return html`<form
      class="filters"
      role="search"
      @submit=${(e: Event) => {
        e.preventDefault();
        const input = (e.currentTarget as HTMLFormElement).elements.namedItem('type');
        this.#go({ ...f, type: (input as HTMLInputElement).value.trim() });
      }}
    >
      <fieldset class="chips">
        <legend>Status</legend>
        ${STATUSES.map(
          (s) =>
            html`<label class="chip ${f.status.includes(s) ? 'on' : ''}"
              ><input
                type="checkbox"
                name="status"
                value=${s}
                .checked=${f.status.includes(s)}
                @change=${() => toggle(s)}
              />${s}</label
            >`,
        )}
      </fieldset>
      <label
        >Type
        <input
          name="type"
          id="type-filter"
          placeholder="e.g. disk.migrate  (/)"
          autocomplete="off"
          spellcheck="false"
          .value=${f.type}
      /></label>
      <label
        >Created
        <select
          name="since"
          @change=${(e: Event) => this.#go({ ...f, since: (e.target as HTMLSelectElement).value })}
        >
          ${SINCE.map(([k, label]) => html`<option value=${k} ?selected=${k === f.since}>${label}</option>`)}
        </select></label
      >
      <button type="submit">Apply</button>
      ${
        f.status.length > 0 || f.type !== '' || f.since !== ''
          ? html`<a class="button quiet" href="#/jobs">Clear</a>`
          : nothing
      }
    </form>`;
  }

  render(): TemplateResult {
    const now = app.now;
    const rows = this.#jobs;
    return html`<section class="page">
      <header class="page-head">
        <h1>Jobs</h1>
        ${liveDot(this.#live)}
        <span class="spacer"></span>
        <span class="quiet small" title="time of the last page read"
          >${this.#loadMs === null ? '' : `page read in ${Math.round(this.#loadMs)} ms`}</span
        >
      </header>
      ${this.#filterBar()}
      ${this.#error !== null ? html`<p class="notice error" role="alert">${this.#error}</p>` : nothing}
      <table class="grid jobs" aria-label="jobs">
        <thead>
          <tr>
            <th class="num">Job</th>
            <th>Type</th>
            <th>Status</th>
            <th class="progress-col">Progress</th>
            <th>Created</th>
            <th class="num">Duration</th>
            <th>Error</th>
          </tr>
        </thead>
        <tbody>
          ${repeat(
            rows,
            (j) => j.id,
            (j, i) =>
              html`<tr class=${i === this.#selected ? 'selected' : ''} data-job=${j.id}>
                <td class="num"><a href="#/jobs/${j.id}">${j.id}</a></td>
                <td class="mono">${j.type}</td>
                <td>
                  ${badge(j.status)}
                  ${
                    j.compensation && j.compensation !== 'none'
                      ? badge(
                          j.compensation === 'failed' ? 'failed' : j.compensation,
                          'compensation',
                        )
                      : nothing
                  }
                </td>
                <td class="progress-col">${bar(j.progress, j.status)}</td>
                <td title=${stamp(j.startedAt)}>${clock(j.startedAt, now)}</td>
                <td class="num">${elapsed(j.startedAt, j.endedAt, now)}</td>
                <td class="err-cell" title=${j.error?.message ?? ''}>
                  ${j.error ? html`<code class="code">${j.error.code}</code>` : nothing}
                </td>
              </tr>`,
          )}
        </tbody>
      </table>
      ${
        this.#loaded && rows.length === 0 && this.#error === null
          ? html`<p class="empty">No job matches these filters.</p>`
          : nothing
      }
      ${!this.#loaded ? html`<p class="quiet">Loading…</p>` : nothing}
      <nav class="pager" aria-label="pages">
        <button ?disabled=${this.#cursors.length === 0} @click=${() => this.#page(-1)}>
          ← Newer
        </button>
        <span class="quiet">page ${this.#cursors.length + 1}</span>
        <button ?disabled=${this.#next === null} @click=${() => this.#page(1)}>Older →</button>
      </nav>
    </section>`;
  }
}
