/**
 * Unloadable rows and stuck work: the command types paused (their new roots wait for a resume,
 * which is easily forgotten: `GET /v1/types`), the rows the node could not read (the `unreadable` lists of
 * `GET /v1/commands`), the commands the node holds untouched because their type or parameters
 * cannot be loaded or the store refused their tree (`unloadable` in their details), and the
 * oldest work still running — each with the operator's way to end it, a cancel (for a pause, a
 * resume).
 *
 * @module
 */
import { html, nothing, type TemplateResult } from 'lit-html';
import { ApiError, getCommand, listCommands, listTypes } from '../api.js';
import { ago, clock, duration, stamp } from '../format.js';
import type { CommandDetails, CommandSummary, PausedType, UnreadableRow } from '../schemas.js';
import { app, describe } from '../state.js';
import {
  badge,
  cancelButton,
  commandLink,
  errorLine,
  jobLink,
  loading,
  pauseWords,
  resumeButton,
} from '../ui.js';
import type { View } from './view.js';

const ACTIVE = ['pending', 'waiting', 'aborting', 'compensating'];
/** Admission's waiting status: asked for too when the node knows it (a 400 says it does not). */
const QUEUED = 'queued';
/** Rows per read: the API's cap. */
const PAGE = 500;
/** At most this many pages are scanned (10,000 active commands) — past that, say so. */
const MAX_PAGES = 20;
/** The oldest active commands whose details are read, to find those held unloaded. */
const DETAILS = 50;
/** Ages that make running work "old", for the filter. */
const AGES: readonly (readonly [string, number])[] = [
  ['1 min', 60_000],
  ['15 min', 15 * 60_000],
  ['1 h', 3_600_000],
  ['24 h', 86_400_000],
];

/** A paused type, and its roots waiting on this node (null: a name this node does not register). */
interface Paused {
  readonly pause: PausedType;
  readonly queued: number | null;
}

/** The paused types (`GET /v1/types`), those holding roots first; none from a node without it. */
async function pausedTypes(): Promise<Paused[]> {
  try {
    const list = await listTypes();
    return [
      ...list.types.flatMap((t) =>
        t.paused === null ? [] : [{ pause: t.paused, queued: t.queued }],
      ),
      ...(list.otherPaused ?? []).map((pause) => ({ pause, queued: null })),
    ].sort((a, b) => (b.queued ?? 0) - (a.queued ?? 0) || a.pause.pausedAt - b.pause.pausedAt);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return [];
    throw error;
  }
}

/** The problems page. */
export class ProblemsView implements View {
  #paused: Paused[] = [];
  #unreadable: UnreadableRow[] = [];
  #active: CommandSummary[] = [];
  #held: CommandDetails[] = [];
  #truncated = false;
  #scanned = false;
  #error: string | null = null;
  #minAge = 15 * 60_000;
  #disposed = false;

  constructor() {
    void this.#scan();
  }

  title(): string {
    return 'Problems';
  }

  async #scan(): Promise<void> {
    this.#scanned = false;
    app.update();
    try {
      const unreadable: UnreadableRow[] = [];
      const active: CommandSummary[] = [];
      let cursor: string | null = null;
      let pages = 0;
      const [paused, status] = await Promise.all([
        pausedTypes(),
        listCommands({ status: [...ACTIVE, QUEUED] }, null, 1).then(
          () => [...ACTIVE, QUEUED],
          (error: unknown) => {
            if (error instanceof ApiError && error.status === 400) return ACTIVE;
            throw error;
          },
        ),
      ]);
      do {
        const page = await listCommands({ status }, cursor, PAGE);
        unreadable.push(...page.unreadable);
        active.push(...page.commands);
        cursor = page.nextCursor;
        pages++;
      } while (cursor !== null && pages < MAX_PAGES && !this.#disposed);
      this.#truncated = cursor !== null;
      active.sort((a, b) => a.createdAt - b.createdAt);
      const details = await Promise.all(
        active.slice(0, DETAILS).map((c) => getCommand(c.id).catch(() => null)),
      );
      this.#paused = paused;
      this.#unreadable = unreadable;
      this.#active = active;
      this.#held = details.filter((d): d is CommandDetails => d !== null && !!d.unloadable);
      this.#error = null;
    } catch (error) {
      this.#error = describe(error);
    }
    this.#scanned = true;
    app.update();
  }

  dispose(): void {
    this.#disposed = true;
  }

  #pausedSection(): TemplateResult {
    const now = app.now;
    return html`<h2>Paused types <span class="count-pill">${this.#paused.length}</span></h2>
      <p class="quiet">
        Their new commands wait, stored, until they are resumed (on the
        <a href="#/types">Types page</a>, or here).
      </p>
      ${
        this.#paused.length === 0
          ? html`<p class="empty">None.</p>`
          : html`<table class="grid" aria-label="paused types">
              <thead>
                <tr>
                  <th>Type</th>
                  <th class="num">Waiting here</th>
                  <th>Paused</th>
                  <th></th>
                </tr>
              </thead>
              <tbody>
                ${this.#paused.map(
                  (p) =>
                    html`<tr
                      data-paused=${p.pause.type}
                      class=${(p.queued ?? 0) > 0 ? 'waiting' : ''}
                    >
                      <td>
                        <a class="mono" href="#/types?type=${encodeURIComponent(p.pause.type)}"
                          >${p.pause.type}</a
                        >
                      </td>
                      <td class="num">${p.queued ?? '—'}</td>
                      <td>${pauseWords(p.pause, now)}</td>
                      <td>${resumeButton(p.pause.type, p.queued ?? 0, () => void this.#scan())}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }`;
  }

  render(): TemplateResult {
    const now = app.now;
    const old = this.#active.filter((c) => now - c.createdAt >= this.#minAge);
    return html`<section class="page">
      <header class="page-head">
        <h1>Problems</h1>
        <span class="spacer"></span>
        <button @click=${() => void this.#scan()} ?disabled=${!this.#scanned}>Scan again</button>
      </header>
      ${!this.#scanned ? loading(null) : nothing}
      ${this.#error !== null ? html`<p class="notice error" role="alert">${this.#error}</p>` : nothing}
      ${
        this.#truncated
          ? html`<p class="notice warn">
              More than ${PAGE * MAX_PAGES} active commands: only the newest were scanned.
            </p>`
          : nothing
      }
      ${this.#pausedSection()}
      <h2>Rows that cannot be read <span class="count-pill">${this.#unreadable.length}</span></h2>
      <p class="quiet">
        Active rows the node skipped: they run nowhere until ended. A cancel ends a command whose
        row can still be written; the refusal says why when it cannot.
      </p>
      ${
        this.#unreadable.length === 0
          ? html`<p class="empty">None.</p>`
          : html`<table class="grid" aria-label="unreadable rows">
              <thead>
                <tr>
                  <th>Table</th>
                  <th class="num">Command</th>
                  <th class="num">Parent</th>
                  <th>Why</th>
                  <th></th>
                </tr>
              </thead>
              <tbody>
                ${this.#unreadable.map(
                  (u) =>
                    html`<tr data-unreadable=${u.commandId ?? ''}>
                      <td class="mono">${u.table ?? '—'}</td>
                      <td class="num">${u.commandId === null ? '?' : commandLink(u.commandId)}</td>
                      <td class="num">${u.parentId == null ? '—' : commandLink(u.parentId)}</td>
                      <td class="err-cell">${errorLine(u.error)}</td>
                      <td>
                        ${u.commandId === null ? nothing : cancelButton(u.commandId, u.table ?? 'row', 'unknown')}
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      <h2>Held <span class="count-pill">${this.#held.length}</span></h2>
      <p class="quiet">
        Commands this node leaves as they are: their type or parameters cannot be loaded, or the
        store refused their tree's changes (<code>TREE_REFUSED</code>: once the cause is gone, a
        release on the command's page runs the tree on). A cancel ends them.
      </p>
      ${
        this.#held.length === 0
          ? html`<p class="empty">
              None among the ${Math.min(DETAILS, this.#active.length)} oldest active commands.
            </p>`
          : html`<table class="grid" aria-label="held commands">
              <thead>
                <tr>
                  <th class="num">Command</th>
                  <th>Type</th>
                  <th>Status</th>
                  <th>Why</th>
                  <th></th>
                </tr>
              </thead>
              <tbody>
                ${this.#held.map(
                  (c) =>
                    html`<tr>
                      <td class="num">${commandLink(c.id)}</td>
                      <td class="mono">${c.type}</td>
                      <td>${badge(c.status)}</td>
                      <td class="err-cell">${errorLine(c.unloadable)}</td>
                      <td>${cancelButton(c.id, c.type, c.status)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      <h2>
        Running for more than
        <select
          aria-label="age"
          @change=${(e: Event) => {
            this.#minAge = Number((e.target as HTMLSelectElement).value);
            app.update();
          }}
        >
          ${AGES.map(([label, ms]) => html`<option value=${ms} ?selected=${ms === this.#minAge}>${label}</option>`)}
        </select>
        <span class="count-pill">${old.length}</span>
      </h2>
      ${
        old.length === 0
          ? html`<p class="empty">None of the ${this.#active.length} active commands.</p>`
          : html`<table class="grid" aria-label="old commands">
              <thead>
                <tr>
                  <th class="num">Command</th>
                  <th>Type</th>
                  <th>Status</th>
                  <th class="num">Job</th>
                  <th>Created</th>
                  <th class="num">Age</th>
                  <th></th>
                </tr>
              </thead>
              <tbody>
                ${old.slice(0, 200).map(
                  (c) =>
                    html`<tr>
                      <td class="num">${commandLink(c.id)}</td>
                      <td class="mono">${c.type}</td>
                      <td>${badge(c.status)}</td>
                      <td class="num">${jobLink(c.rootId)}</td>
                      <td title=${stamp(c.createdAt)}>
                        ${clock(c.createdAt, now)}
                        <span class="quiet small">${ago(c.createdAt, now)}</span>
                      </td>
                      <td class="num">${duration(now - c.createdAt)}</td>
                      <td>${cancelButton(c.id, c.type, c.status)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
    </section>`;
  }
}
