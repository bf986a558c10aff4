/**
 * What a root reran and what reran it, as the job and command pages show it ("Rerun of job 40",
 * "Run again as: job 43, job 45"), from the root's details (`rerunOf`, `reruns`). A job's id is
 * its root's, so each links to a job page. Retention may have pruned the job a rerun ran again
 * (a rerun is pruned with its own tree, so the reruns listed are there): that one is read once,
 * and shown without a link when the node no longer has it.
 *
 * @module
 */
import { html, nothing, type TemplateResult } from 'lit-html';
import { ApiError, getCommand } from '../api.js';
import type { CommandDetails } from '../schemas.js';
import { app } from '../state.js';
import { jobLink } from '../ui.js';

/** A root's rerun links, kept by its page. */
export class RerunLinks {
  #of: number | null = null;
  #reruns: readonly number[] = [];
  /** The job it reran, once read: whether the node no longer has it (pruned). */
  #gone: { id: number; pruned: boolean } | null = null;
  #checking = false;
  readonly #signal: AbortSignal;

  /** Links of the page whose leaving aborts `signal`. */
  constructor(signal: AbortSignal) {
    this.#signal = signal;
  }

  /** Takes the links from the root's details (a child's, or an older node's, have none). */
  see(root: CommandDetails): void {
    if (root.parentId !== null) return;
    this.#of = root.rerunOf ?? null;
    this.#reruns = root.reruns ?? [];
    if (this.#of !== null && this.#gone?.id !== this.#of) void this.#check(this.#of);
  }

  /** Reads once whether the job it reran is still there (a 404: pruned since). */
  async #check(id: number): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    let pruned = false;
    try {
      await getCommand(id);
    } catch (error) {
      pruned = error instanceof ApiError && error.status === 404;
    }
    this.#checking = false;
    if (this.#signal.aborted) return;
    this.#gone = { id, pruned };
    app.update();
  }

  /** The line naming them, or nothing for a root that is no rerun and was not run again. */
  render(): TemplateResult | typeof nothing {
    const of = this.#of;
    const reruns = this.#reruns;
    if (of === null && reruns.length === 0) return nothing;
    const pruned = this.#gone?.id === of && this.#gone.pruned;
    return html`<p class="reruns" aria-label="reruns">
      ${
        of === null
          ? nothing
          : html`<span data-rerun-of=${of}
              >Rerun of
              ${
                pruned
                  ? html`job ${of}
                      <span class="quiet" title="retention has deleted it">(pruned)</span>`
                  : jobLink(of, `job ${of}`)
              }</span
            >`
      }
      ${
        reruns.length === 0
          ? nothing
          : html`<span data-reruns
              >Run again as:
              ${reruns.map((id, i) => html`${i === 0 ? '' : ', '}${jobLink(id, `job ${id}`)}`)}</span
            >`
      }
    </p>`;
  }
}
