/**
 * A job: its step tree — every command and task with status, progress, duration, agent and
 * what it waits for — updated live from the job's event stream (`GET /v1/jobs/:id/events`),
 * what its root waits for before it starts (its type paused, or the root limits: read from the
 * root's details while it has not started),
 * its compensation in the order it ran (which undo steps ran, which failed and why, read from
 * the commands' details), what it reran and what reran it (read from the root's details when the
 * page opens: a rerun made by the page's own button opens the new job's page, which reads anew),
 * and for operators the cancel button (once it has ended, run again).
 *
 * @module
 */
import { html, nothing, type TemplateResult } from 'lit-html';
import { repeat } from 'lit-html/directives/repeat.js';
import { getCommand, getJob } from '../api.js';
import { clock, elapsed, stamp } from '../format.js';
import { jobTree, type CommandDetails, type JobTree, type Queue } from '../schemas.js';
import { follow } from '../sse.js';
import { app, describe } from '../state.js';
import {
  badId,
  badge,
  bar,
  cancelButton,
  rerunButton,
  commandLink,
  errorLine,
  isEnded,
  liveDot,
  loadingPage,
  type StreamState,
  waitNotice,
} from '../ui.js';
import { undoOrder, type UndoEntry } from './compensation.js';
import { RerunLinks } from './reruns.js';
import { commandSteps, met, treeRows, type Count, type TreeRow } from './tree.js';
import type { Route, View } from './view.js';

/**
 * Least time between two reads of the compensating commands' details while the tree changes:
 * undo steps take seconds; a read a second keeps the list current without a read per event.
 */
const DETAILS_EVERY_MS = 1_000;
/**
 * How often the root's details are read while it has not started: a pause or a resume, or a slot
 * freed for it, changes nothing in the job's stream until the root starts, so what it waits for
 * is read again this often (one small read, only while it waits).
 */
const WAIT_EVERY_MS = 2_000;

/** The job page. */
export class JobView implements View {
  readonly #id: number;
  #tree: JobTree | null = null;
  #error: string | null = null;
  #live: StreamState = 'connecting';
  #details = new Map<number, CommandDetails>();
  #detailsAt = 0;
  #detailsTimer: ReturnType<typeof setTimeout> | null = null;
  #detailsReading = false;
  /** The tree changed since the last read of the details began. */
  #detailsDirty = false;
  /** What the root waits for before it starts (its details' `queue`), or null. */
  #wait: Queue = null;
  #waitTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #abort = new AbortController();
  /** What the job reran and what reran it (from its root's details). */
  readonly #reruns = new RerunLinks(this.#abort.signal);

  constructor(route: Route) {
    this.#id = Number(route.parts[0]);
    this.#error = badId(route.parts[0], 'a job');
    if (this.#error !== null) {
      this.#live = 'off';
      return;
    }
    void this.#readReruns();
    follow(
      `/v1/jobs/${this.#id}/events`,
      {
        onOpen: () => {
          this.#live = 'live';
          app.update();
        },
        onEvent: (e) => {
          if (e.event !== 'job') return;
          try {
            this.#show(jobTree.parse(JSON.parse(e.data)));
          } catch (error) {
            this.#error = `an event could not be read: ${describe(error)}`;
            app.update();
          }
        },
        onEnd: () => {
          // The stream ends with the job; read once more so the last state is whole.
          this.#live = 'ended';
          void getJob(this.#id).then(
            (t) => this.#show(t),
            () => undefined,
          );
        },
        onError: (error, retryInMs) => {
          this.#live = retryInMs === null ? 'off' : 'connecting';
          if (retryInMs === null || this.#tree === null) this.#error = describe(error);
          app.update();
        },
      },
      this.#abort.signal,
    );
  }

  title(): string {
    return `Job ${this.#id}`;
  }

  #show(tree: JobTree): void {
    this.#tree = tree;
    this.#error = null;
    if (isEnded(tree.job.status)) this.#live = 'ended';
    this.#scheduleDetails();
    this.#watchWait();
    app.update();
  }

  /** Reads the root's details once for what the job reran and what reran it. */
  async #readReruns(): Promise<void> {
    try {
      const root = await getCommand(this.#id);
      if (this.#abort.signal.aborted) return;
      this.#reruns.see(root);
      app.update();
    } catch {
      // The page shows the job without them (the tree says why it cannot be read, if it cannot).
    }
  }

  /** Whether the root has not started yet (it may wait for its type's resume or the limits). */
  #rootPending(): boolean {
    return this.#tree?.root?.step.status === 'pending' && !isEnded(this.#tree.job.status);
  }

  /**
   * While the root has not started, reads what it waits for now and every {@link WAIT_EVERY_MS};
   * once it has, forgets it.
   */
  #watchWait(): void {
    if (!this.#rootPending()) {
      this.#wait = null;
      return;
    }
    if (this.#waitTimer === null) void this.#readWait();
  }

  async #readWait(): Promise<void> {
    this.#waitTimer = setTimeout(() => {
      this.#waitTimer = null;
      if (!this.#abort.signal.aborted && this.#rootPending()) void this.#readWait();
    }, WAIT_EVERY_MS);
    try {
      const root = await getCommand(this.#id);
      if (this.#abort.signal.aborted) return;
      this.#reruns.see(root);
      this.#wait = this.#rootPending() && root.status === 'pending' ? (root.queue ?? null) : null;
      app.update();
    } catch {
      // The tree shows the job still; what it waits for is read again at the next turn.
    }
  }

  /** Commands whose compensation matters: not `none`, or ended badly with undo steps. */
  #compensating(id: number): boolean {
    const step = this.#tree ? commandSteps(this.#tree).get(id) : undefined;
    if (!step) return false;
    return (
      step.compensation !== 'none' ||
      step.status === 'failed' ||
      step.status === 'cancelled' ||
      step.status === 'compensating'
    );
  }

  /**
   * Reads the details of the commands that compensate (throttled): the commands are chosen when
   * the read starts, and a change of the tree during a read asks for another.
   */
  #scheduleDetails(): void {
    this.#detailsDirty = true;
    if (!this.#tree || this.#detailsTimer !== null || this.#detailsReading) return;
    const wait = Math.max(0, this.#detailsAt + DETAILS_EVERY_MS - Date.now());
    this.#detailsTimer = setTimeout(() => {
      this.#detailsTimer = null;
      void this.#readDetails();
    }, wait);
  }

  async #readDetails(): Promise<void> {
    const tree = this.#tree;
    if (!tree || this.#abort.signal.aborted) return;
    const ids = [...commandSteps(tree).keys()].filter((id) => this.#compensating(id));
    this.#detailsDirty = false;
    if (ids.length === 0) return;
    this.#detailsReading = true;
    this.#detailsAt = Date.now();
    const found = await Promise.all(
      ids.map((id) =>
        getCommand(id).then(
          (d) => [id, d] as const,
          () => null,
        ),
      ),
    );
    this.#detailsReading = false;
    if (this.#abort.signal.aborted) return;
    for (const entry of found) if (entry) this.#details.set(entry[0], entry[1]);
    const root = this.#details.get(this.#id);
    if (root) this.#reruns.see(root);
    app.update();
    if (this.#detailsDirty) this.#scheduleDetails();
  }

  dispose(): void {
    this.#abort.abort();
    if (this.#detailsTimer !== null) clearTimeout(this.#detailsTimer);
    if (this.#waitTimer !== null) clearTimeout(this.#waitTimer);
  }

  render(): TemplateResult {
    const tree = this.#tree;
    if (!tree) return loadingPage(`Job ${this.#id}`, this.#error);
    const { job } = tree;
    const now = app.now;
    return html`<section class="page">
      <header class="page-head">
        <h1>Job ${job.id} <span class="mono type">${job.type}</span></h1>
        ${badge(job.status)}
        ${job.compensation && job.compensation !== 'none' ? badge(job.compensation, 'compensation') : nothing}
        ${liveDot(this.#live)}
        <span class="spacer"></span>
        ${cancelButton(job.id, job.type, job.status, 'Cancel job…')}
        ${rerunButton(job.id, job.type, job.status)}
      </header>
      ${this.#error !== null ? html`<p class="notice error" role="alert">${this.#error}</p>` : nothing}
      <dl class="facts">
        <div>
          <dt>Progress</dt>
          <dd class="wide-bar">${bar(job.progress, job.status)}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd title=${stamp(job.startedAt)}>${clock(job.startedAt, now)}</dd>
        </div>
        <div>
          <dt>Ended</dt>
          <dd title=${stamp(job.endedAt)}>${clock(job.endedAt, now)}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>${elapsed(job.startedAt, job.endedAt, now)}</dd>
        </div>
        <div>
          <dt>Root command</dt>
          <dd>${commandLink(job.id)}</dd>
        </div>
      </dl>
      ${this.#reruns.render()}
      ${job.error ? html`<p class="failure">${errorLine(job.error)}</p>` : nothing}
      ${this.#rootPending() ? waitNotice(this.#wait) : nothing}
      <h2>Steps</h2>
      ${this.#steps(tree)} ${this.#compensation(tree)}
    </section>`;
  }

  #steps(tree: JobTree): TemplateResult {
    const now = app.now;
    const rows = treeRows(tree);
    return html`<table class="grid tree" aria-label="steps">
      <thead>
        <tr>
          <th>Step</th>
          <th>Status</th>
          <th class="progress-col">Progress</th>
          <th class="num">Duration</th>
          <th>Agent</th>
          <th>Waits for</th>
          <th>Error</th>
        </tr>
      </thead>
      <tbody>
        ${repeat(
          rows,
          (r) => r.step.key,
          (r) =>
            html`<tr class="${r.step.kind} ${r.step.undo ? 'undo' : ''}" data-step=${r.step.key}>
              <td class="name">
                <span class="indent indent-${Math.min(r.depth, 8)}"></span>
                ${
                  r.step.kind === 'command'
                    ? html`<span class="glyph" aria-hidden="true">▸</span
                        >${commandLink(r.step.commandId, r.step.name)}
                        <span class="quiet small">#${r.step.commandId}</span>`
                    : html`<span class="glyph" aria-hidden="true">·</span
                        ><span class="mono verb">${r.verb}</span>
                        ${r.step.undo ? html`<span class="tag">undo</span>` : nothing}`
                }
              </td>
              <td>
                ${badge(r.step.status)}
                ${
                  r.step.kind === 'command' && r.step.compensation !== 'none'
                    ? badge(r.step.compensation, 'compensation')
                    : nothing
                }
              </td>
              <td class="progress-col">${bar(r.step.progress, r.step.status)}</td>
              <td class="num">${elapsed(r.step.startedAt, r.step.endedAt, now)}</td>
              <td class="mono">${r.agent}</td>
              <td>${waits(r)}</td>
              <td class="err-cell">${errorLine(r.step.error)}</td>
            </tr>`,
        )}
      </tbody>
    </table>`;
  }

  #compensation(tree: JobTree): TemplateResult | typeof nothing {
    const steps = commandSteps(tree);
    const involved = [...steps.values()].some((s) => s.compensation !== 'none');
    if (!involved) return nothing;
    const entries = undoOrder(tree.job.id, this.#details, (id) => this.#compensating(id));
    const failed = entries.filter((e) => e.status === 'failed');
    return html`<section class="compensation" aria-label="compensation">
      <h2>
        Compensation
        ${badge(tree.job.compensation ?? steps.get(tree.job.id)?.compensation ?? 'none')}
      </h2>
      <p class="quiet">
        Undo steps in the order they run (a command undoes its own work in reverse; a child's steps
        run at the child's place).
        ${failed.length > 0 ? html`<strong class="bad">${failed.length} failed.</strong>` : nothing}
      </p>
      ${
        entries.length === 0
          ? html`<p class="quiet">Reading the undo steps…</p>`
          : html`<ol class="undo-list">
              ${entries.map((e) => undoItem(e))}
            </ol>`
      }
    </section>`;
  }
}

function countText(label: string, c: Count, ended: boolean): TemplateResult | typeof nothing {
  if (c.declared === 0 && c.created === 0) return nothing;
  const total = Math.max(c.declared, c.created);
  const ok = met(c);
  const short = c.created < c.declared;
  return html`<span
    class="count ${ok ? 'met' : ended ? 'closed' : 'open'}"
    title="declared ${c.declared}, created ${c.created}, ended ${c.ended}"
    >${ok ? '✓ ' : ''}${c.ended}/${total}
    ${label}${short ? html` <em>(${c.created} of ${c.declared} created)</em>` : nothing}</span
  >`;
}

function waits(r: TreeRow): TemplateResult | typeof nothing {
  if (!r.waits) return nothing;
  const parts = [
    countText('tasks', r.waits.tasks, isEnded(r.step.status)),
    countText('children', r.waits.children, isEnded(r.step.status)),
  ].filter((p) => p !== nothing);
  if (parts.length === 0) return html`<span class="quiet">—</span>`;
  return html`${parts}`;
}

function undoItem(e: UndoEntry): TemplateResult {
  return html`<li class="undo-${e.status}" data-undo=${`${e.commandId}.${e.name}`}>
    <span class="order">${e.order ?? '–'}</span>
    <span class="mono undo-name">${e.name}</span>
    <span class="quiet">of</span> ${commandLink(e.commandId, e.commandType)}
    ${badge(e.status === 'recorded' ? 'not run' : e.status)}
    ${e.tasks.map(
      (t) =>
        html`<span class="task-chip"
          ><span class="mono">${t.verb}@${t.agentId}</span> ${badge(t.status)}</span
        >`,
    )}
    ${e.error ? html`<div class="why">${errorLine(e.error)}</div>` : nothing}
  </li>`;
}
