/**
 * Command types: each type the node registers — its name and former names, its parameters'
 * version, whether it can be submitted or runs only as a child, its root limit and its roots
 * running and waiting on this node — and its pause (since when, by whom, why), read every few
 * seconds (`GET /v1/types`). For operators, a pause (with an optional reason) of a type that can
 * be submitted, and a resume of a paused one; pauses the store keeps for names the node no longer
 * registers are listed below, to be resumed.
 *
 * @module
 */
import { html, nothing, type TemplateResult } from 'lit-html';
import { repeat } from 'lit-html/directives/repeat.js';
import { listTypes } from '../api.js';
import type { CommandType, PausedType } from '../schemas.js';
import { app, describe } from '../state.js';
import { badge, liveDot, loading, pauseButton, pauseWords, resumeButton } from '../ui.js';
import type { Route, View } from './view.js';

/**
 * How often the types are read: the running and queued counts move with every root that starts
 * or ends, and a pause made elsewhere (another tab, the CLI, another node) shows within a read;
 * one small read, as the agents page does.
 */
const POLL_MS = 1_500;

/** The types page. */
export class TypesView implements View {
  /** The type the route names (`#/types?type=disk.migrate`): its row is marked. */
  readonly #marked: string | null;
  #types: CommandType[] | null = null;
  #otherPaused: PausedType[] = [];
  #error: string | null = null;
  readonly #timer: ReturnType<typeof setInterval>;
  #reading = false;
  /** A read was asked for while one ran (after a pause or a resume): it runs once that ends. */
  #again = false;

  constructor(route: Route) {
    this.#marked = route.query.get('type');
    void this.#read();
    this.#timer = setInterval(() => void this.#read(), POLL_MS);
  }

  title(): string {
    return 'Types';
  }

  async #read(): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    try {
      const list = await listTypes();
      this.#types = [...list.types];
      this.#otherPaused = [...(list.otherPaused ?? [])];
      this.#error = null;
    } catch (error) {
      this.#error = describe(error);
    } finally {
      this.#reading = false;
    }
    app.update();
    if (this.#again) {
      this.#again = false;
      void this.#read();
    }
  }

  /** Reads the types again now (after a pause or a resume). */
  readonly #reload = (): void => void this.#read();

  dispose(): void {
    clearInterval(this.#timer);
  }

  render(): TemplateResult {
    const types = this.#types;
    const paused = types?.filter((t) => t.paused !== null).length ?? 0;
    return html`<section class="page">
      <header class="page-head">
        <h1>Types</h1>
        ${liveDot(this.#error === null ? 'polling' : 'connecting')}
        <span class="spacer"></span>
        ${
          types
            ? html`<span class="quiet"
                >${types.length} registered · ${paused + this.#otherPaused.length} paused</span
              >`
            : nothing
        }
      </header>
      <p class="quiet">
        A paused type's new commands are accepted and stored, and wait until it is resumed, on every
        node of the store; those already running go on, and children of every type run. Running and
        queued count the roots on this node.
      </p>
      ${
        types === null
          ? loading(this.#error)
          : html`${this.#error !== null ? html`<p class="notice error" role="alert">${this.#error}</p>` : nothing}
            ${this.#table(types)} ${this.#others()}`
      }
    </section>`;
  }

  #table(types: readonly CommandType[]): TemplateResult {
    const now = app.now;
    if (types.length === 0) return html`<p class="empty">This node registers no command type.</p>`;
    return html`<table class="grid" aria-label="command types">
      <thead>
        <tr>
          <th>Type</th>
          <th class="num">Version</th>
          <th class="num" title="its roots running at once on this node, at most">Root limit</th>
          <th class="num">Running</th>
          <th class="num">Queued</th>
          <th>Paused</th>
          <th></th>
        </tr>
      </thead>
      <tbody>
        ${repeat(
          types,
          (t) => t.name,
          (t) =>
            html`<tr
              data-type=${t.name}
              class="${t.paused === null ? '' : 'waiting'} ${t.name === this.#marked ? 'selected' : ''}"
            >
              <td>
                <span class="mono strong">${t.name}</span>
                ${t.submittable ? nothing : html`<span class="tag" title="it runs only as a child of another command">child only</span>`}
                ${
                  t.aliases.length === 0
                    ? nothing
                    : html`<div class="quiet small">
                        formerly <span class="mono">${t.aliases.join(', ')}</span>
                      </div>`
                }
              </td>
              <td class="num">${t.version}</td>
              <td class="num">${t.limit ?? '—'}</td>
              <td class="num" data-running>${t.running ?? '—'}</td>
              <td class="num" data-queued>${t.queued}</td>
              <td class="paused-cell">
                ${t.paused === null ? html`<span class="quiet">—</span>` : html`${badge('paused')} ${pauseWords(t.paused, now)}`}
              </td>
              <td class="actions-cell">
                ${pauseButton(t.name, t.submittable, t.paused !== null, this.#reload)}
                ${t.paused === null ? nothing : resumeButton(t.name, t.queued, this.#reload)}
              </td>
            </tr>`,
        )}
      </tbody>
    </table>`;
  }

  /** Pauses the store keeps for names this node does not register (a type since removed). */
  #others(): TemplateResult | typeof nothing {
    if (this.#otherPaused.length === 0) return nothing;
    const now = app.now;
    return html`<h2>
        Paused, not registered here <span class="count-pill">${this.#otherPaused.length}</span>
      </h2>
      <p class="quiet">
        Pauses kept in the store for names this node does not register (a removed type, or one only
        other nodes run). A resume ends them for every node.
      </p>
      <table class="grid" aria-label="other paused types">
        <thead>
          <tr>
            <th>Type</th>
            <th>Paused</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          ${this.#otherPaused.map(
            (p) =>
              html`<tr data-type=${p.type} class="waiting">
                <td class="mono strong">${p.type}</td>
                <td class="paused-cell">${badge('paused')} ${pauseWords(p, now)}</td>
                <td class="actions-cell">${resumeButton(p.type, 0, this.#reload)}</td>
              </tr>`,
          )}
        </tbody>
      </table>`;
  }
}
