/**
 * A command: its parameters and their version, its status history, its result or error (with
 * the code), what it waits for (its type paused, the root limits, an agent's slot), its tasks
 * (agent, verb, progress), its undo steps, its parent and children, and for a root what it reran
 * and what reran it (their jobs). Read from `GET /v1/commands/:id`; while it runs, read again
 * whenever its job's stream says the tree changed (task progress comes from the job's tree).
 *
 * @module
 */
import { html, nothing, type TemplateResult } from 'lit-html';
import { getCommand } from '../api.js';
import { clock, elapsed, stamp } from '../format.js';
import { jobTree, type CommandDetails, type JobTree, type Step } from '../schemas.js';
import { follow } from '../sse.js';
import { app, describe } from '../state.js';
import {
  badId,
  badge,
  bar,
  cancelButton,
  releaseButton,
  commandLink,
  errorLine,
  isEnded,
  jobLink,
  liveDot,
  loadingPage,
  type StreamState,
  value,
  waitNotice,
} from '../ui.js';
import { RerunLinks } from './reruns.js';
import { commandSteps, taskSteps } from './tree.js';
import type { Route, View } from './view.js';

/**
 * Least time between two reads of the command while its job changes: progress events come many
 * times a second during a copy; the details need not.
 */
const READ_EVERY_MS = 750;
/**
 * How often a root that has not started is read again: a pause or a resume of its type, or a
 * slot freed for it, changes nothing in its job's stream until it starts.
 */
const WAIT_EVERY_MS = 2_000;

/** The command page. */
export class CommandView implements View {
  readonly #id: number;
  #command: CommandDetails | null = null;
  #tree: JobTree | null = null;
  #error: string | null = null;
  #live: StreamState = 'connecting';
  #readAt = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #waitTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #abort = new AbortController();
  /** For a root: what it reran and what reran it (from its details). */
  readonly #reruns = new RerunLinks(this.#abort.signal);

  constructor(route: Route) {
    this.#id = Number(route.parts[0]);
    this.#error = badId(route.parts[0], 'a command');
    if (this.#error !== null) {
      this.#live = 'off';
      return;
    }
    void this.#read().then(() => this.#follow());
  }

  title(): string {
    return `Command ${this.#id}`;
  }

  async #read(): Promise<void> {
    this.#readAt = Date.now();
    try {
      this.#command = await getCommand(this.#id);
      this.#reruns.see(this.#command);
      this.#error = null;
    } catch (error) {
      this.#error = describe(error);
    }
    const c = this.#command;
    if (c && c.parentId === null && c.status === 'pending' && this.#waitTimer === null)
      this.#waitTimer = setTimeout(() => {
        this.#waitTimer = null;
        if (!this.#abort.signal.aborted) void this.#read();
      }, WAIT_EVERY_MS);
    app.update();
  }

  /** Follows the job of the command's tree; each change reads the command again (throttled). */
  #follow(): void {
    const c = this.#command;
    if (!c) {
      this.#live = 'off';
      return;
    }
    follow(
      `/v1/jobs/${c.rootId}/events`,
      {
        onOpen: () => {
          this.#live = 'live';
          app.update();
        },
        onEvent: (e) => {
          if (e.event !== 'job') return;
          try {
            this.#tree = jobTree.parse(JSON.parse(e.data));
          } catch {
            return;
          }
          this.#schedule();
        },
        onEnd: () => {
          this.#live = 'ended';
          this.#schedule();
        },
        onError: (_error, retryInMs) => {
          this.#live = retryInMs === null ? 'off' : 'connecting';
          app.update();
        },
      },
      this.#abort.signal,
    );
  }

  #schedule(): void {
    app.update();
    if (this.#timer !== null) return;
    const wait = Math.max(0, this.#readAt + READ_EVERY_MS - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (!this.#abort.signal.aborted) void this.#read();
    }, wait);
  }

  dispose(): void {
    this.#abort.abort();
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#waitTimer !== null) clearTimeout(this.#waitTimer);
  }

  render(): TemplateResult {
    const c = this.#command;
    if (!c) return loadingPage(`Command ${this.#id}`, this.#error);
    const now = app.now;
    const progress = this.#tree ? taskSteps(this.#tree) : new Map<string, Step>();
    const steps = this.#tree ? commandSteps(this.#tree) : new Map<number, Step>();
    const history = c.statusHistory ?? [];
    return html`<section class="page">
      <header class="page-head">
        <h1>Command ${c.id} <span class="mono type">${c.type}</span></h1>
        ${badge(c.status)}
        ${c.compensation && c.compensation !== 'none' ? badge(c.compensation, 'compensation') : nothing}
        ${liveDot(isEnded(c.status) && this.#live !== 'live' ? 'ended' : this.#live)}
        <span class="spacer"></span>
        ${cancelButton(c.id, c.type, c.status)}
      </header>
      ${this.#error !== null ? html`<p class="notice error" role="alert">${this.#error}</p>` : nothing}
      <dl class="facts">
        <div>
          <dt>Job</dt>
          <dd>${jobLink(c.rootId)}</dd>
        </div>
        <div>
          <dt>Parent</dt>
          <dd>
            ${c.parentId === null ? html`<span class="quiet">none (a root)</span>` : commandLink(c.parentId)}
          </dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd title=${stamp(c.createdAt)}>${clock(c.createdAt, now)}</dd>
        </div>
        <div>
          <dt>Ended</dt>
          <dd title=${stamp(c.endedAt)}>${clock(c.endedAt, now)}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>${elapsed(c.createdAt, c.endedAt, now)}</dd>
        </div>
        <div>
          <dt>Params version</dt>
          <dd>${c.paramsVersion ?? '—'}</dd>
        </div>
      </dl>
      ${this.#reruns.render()} ${isEnded(c.status) ? nothing : waitNotice(c.queue)}
      ${
        c.unloadable
          ? html`<p class="notice warn" role="status">
              This node leaves the command as it is: ${errorLine(c.unloadable)}.
              ${
                c.releasable === true
                  ? html`Once the cause is gone, a release runs its tree on; a cancel ends it.
                    ${releaseButton(c.id, c.type, () => void this.#read())}`
                  : 'A cancel ends it.'
              }
            </p>`
          : nothing
      }
      <div class="two-col">
        <section>
          <h2>Parameters <span class="quiet small">version ${c.paramsVersion ?? '—'}</span></h2>
          <div class="params">${value(c.params)}</div>
        </section>
        <section>
          ${
            c.error
              ? html`<h2>Error</h2>
                  <p class="failure">${errorLine(c.error)}</p>
                  ${c.error.details === undefined ? nothing : value(c.error.details)}`
              : html`<h2>Result</h2>
                  ${c.status === 'succeeded' ? value(c.result) : html`<p class="quiet">not ended yet</p>`}`
          }
          ${
            c.compensationError
              ? html`<h3>Compensation failed</h3>
                  <p class="failure">${errorLine(c.compensationError)}</p>`
              : nothing
          }
          <h2>Status history</h2>
          ${
            history.length === 0
              ? html`<p class="quiet">Not given by this node.</p>`
              : html`<ol class="history">
                  ${history.map(
                    (h, i) =>
                      html`<li>
                        ${badge(h.status)} <span title=${stamp(h.at)}>${clock(h.at, now)}</span>
                        <span class="quiet small"
                          >${i === 0 ? '' : `+${elapsed(history[i - 1]!.at, h.at, now)}`}</span
                        >
                      </li>`,
                  )}
                </ol>`
          }
        </section>
      </div>
      <h2>Tasks</h2>
      ${
        c.tasks.length === 0
          ? html`<p class="quiet">None.</p>`
          : html`<table class="grid" aria-label="tasks">
              <thead>
                <tr>
                  <th class="num">#</th>
                  <th>Verb</th>
                  <th>Agent</th>
                  <th>Status</th>
                  <th class="progress-col">Progress</th>
                  <th class="num">Duration</th>
                  <th>Error</th>
                </tr>
              </thead>
              <tbody>
                ${c.tasks.map((t) => {
                  const p =
                    progress.get(`${c.id}.${t.ordinal}`)?.progress ??
                    t.progress ??
                    (isEnded(t.status) ? 100 : 0);
                  return html`<tr>
                    <td class="num">${t.ordinal}</td>
                    <td class="mono">
                      ${t.verb}${(t.origin ?? 0) < 0 ? html` <span class="tag">undo</span>` : nothing}
                    </td>
                    <td class="mono">${t.agentId}</td>
                    <td>
                      ${badge(t.status)}
                      ${t.queue ? html`<div class="quiet small queue">${t.queue.text}</div>` : nothing}
                    </td>
                    <td class="progress-col">${bar(p, t.status)}</td>
                    <td class="num">
                      ${t.createdAt === undefined ? '—' : elapsed(t.createdAt, t.endedAt, now)}
                    </td>
                    <td class="err-cell">${errorLine(t.error)}</td>
                  </tr>`;
                })}
              </tbody>
            </table>`
      }
      <h2>Undo steps</h2>
      ${
        c.undo.length === 0
          ? html`<p class="quiet">None recorded.</p>`
          : html`<table class="grid" aria-label="undo steps">
              <thead>
                <tr>
                  <th class="num">Seq</th>
                  <th>Name</th>
                  <th>Status</th>
                  <th>Error</th>
                </tr>
              </thead>
              <tbody>
                ${c.undo.map(
                  (u) =>
                    html`<tr>
                      <td class="num">${u.seq}</td>
                      <td class="mono">${u.name}</td>
                      <td>${badge(u.status === 'recorded' ? 'not run' : u.status)}</td>
                      <td class="err-cell">${errorLine(u.error)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      <h2>Children</h2>
      ${
        c.children.length === 0 && (c.unreadableChildren ?? []).length === 0
          ? html`<p class="quiet">None.</p>`
          : html`<table class="grid" aria-label="children">
              <thead>
                <tr>
                  <th class="num" title="place in the journal, shared with the undo steps">Seq</th>
                  <th class="num">Id</th>
                  <th>Type</th>
                  <th>Status</th>
                  <th class="num">Duration</th>
                </tr>
              </thead>
              <tbody>
                ${c.children.map((ch) => {
                  const s = steps.get(ch.id);
                  return html`<tr data-child=${ch.id}>
                    <td class="num seq">${ch.seq ?? '—'}</td>
                    <td class="num">${commandLink(ch.id)}</td>
                    <td class="mono">${s?.name ?? '—'}</td>
                    <td>
                      ${s ? badge(s.status) : nothing}
                      ${s && s.compensation !== 'none' ? badge(s.compensation, 'compensation') : nothing}
                    </td>
                    <td class="num">${s ? elapsed(s.startedAt, s.endedAt, now) : '—'}</td>
                  </tr>`;
                })}
                ${(c.unreadableChildren ?? []).map(
                  (u) =>
                    html`<tr class="unreadable">
                      <td class="num">—</td>
                      <td class="num">${u.commandId ?? '?'}</td>
                      <td colspan="3">cannot be read — ${errorLine(u.error)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
    </section>`;
  }
}
