/**
 * Agents: up or down (or retired from the configuration), last seen, boot id, tasks in flight,
 * the last error — read every few seconds (`GET /v1/agents`) — what changed while the page was
 * open (went down, came back up, restarted: a new boot id, a new error, retired), and admission
 * (`GET /v1/admission`): each limited agent's slots held against its limits and its queue, in all
 * and per verb, and the limits on roots and command types.
 *
 * @module
 */
import { html, nothing, type TemplateResult } from 'lit-html';
import { repeat } from 'lit-html/directives/repeat.js';
import { getAdmission, listAgents } from '../api.js';
import { ago, clock, duration, stamp } from '../format.js';
import type { Admission, Agent, ErrorInfo } from '../schemas.js';
import { app, canAdminister, confirmAndForget, describe } from '../state.js';
import { badge, errorLine, liveDot, loading } from '../ui.js';
import type { View } from './view.js';

/**
 * How often the agents are read: the node itself polls each agent about once a second, so a
 * change shows within two reads; one small read.
 */
const POLL_MS = 1_500;
/** Changes kept in the page's log. */
const LOG_SIZE = 50;

interface Change {
  readonly at: number;
  readonly agent: string;
  readonly what: string;
  readonly error: ErrorInfo | null;
}

/** The agents page. */
export class AgentsView implements View {
  #agents: Agent[] | null = null;
  #admission: Admission | null = null;
  #error: string | null = null;
  #log: Change[] = [];
  readonly #timer: ReturnType<typeof setInterval>;
  #reading = false;

  constructor() {
    void this.#read();
    this.#timer = setInterval(() => void this.#read(), POLL_MS);
  }

  title(): string {
    return 'Agents';
  }

  async #read(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    try {
      const [listed, admission] = await Promise.all([listAgents(), getAdmission()]);
      const agents = [...listed].sort((a, b) => a.id.localeCompare(b.id));
      if (this.#agents) this.#compare(this.#agents, agents);
      this.#agents = agents;
      this.#admission = admission;
      this.#error = null;
    } catch (error) {
      this.#error = describe(error);
    } finally {
      this.#reading = false;
    }
    app.update();
  }

  #compare(before: readonly Agent[], after: readonly Agent[]): void {
    const now = Date.now();
    const add = (agent: string, what: string, error: ErrorInfo | null = null): void => {
      this.#log = [{ at: now, agent, what, error }, ...this.#log].slice(0, LOG_SIZE);
    };
    for (const a of after) {
      const b = before.find((x) => x.id === a.id);
      if (!b) {
        add(a.id, 'appeared');
        continue;
      }
      if (b.state !== a.state)
        add(a.id, a.state === 'up' ? 'came up' : 'went down', a.lastError ?? null);
      else if (a.lastError && a.lastError.message !== b.lastError?.message)
        add(a.id, 'error', a.lastError);
      if (b.bootId && a.bootId && b.bootId !== a.bootId)
        add(a.id, `restarted (boot ${short(b.bootId)} → ${short(a.bootId)})`);
      if (b.configured !== false && a.configured === false)
        add(
          a.id,
          'retired (removed from the configuration): drained, new trees start nothing there',
        );
      else if (b.configured === false && a.configured === true) add(a.id, 'configured again');
    }
  }

  dispose(): void {
    clearInterval(this.#timer);
  }

  render(): TemplateResult {
    const agents = this.#agents;
    const now = app.now;
    return html`<section class="page">
      <header class="page-head">
        <h1>Agents</h1>
        ${liveDot(this.#error === null ? 'live' : 'connecting')}
        <span class="spacer"></span>
        ${
          agents
            ? html`<span class="quiet"
                >${agents.filter((a) => a.state === 'up').length} up ·
                ${agents.filter((a) => a.state !== 'up').length} down</span
              >`
            : nothing
        }
      </header>
      ${
        agents === null
          ? loading(this.#error)
          : html`${this.#error !== null ? html`<p class="notice error" role="alert">${this.#error}</p>` : nothing}
              <table class="grid" aria-label="agents">
                <thead>
                  <tr>
                    <th>Agent</th>
                    <th>State</th>
                    <th>Address</th>
                    <th>Last seen</th>
                    <th>Boot id</th>
                    <th class="num">Tasks in flight</th>
                    <th>Last error</th>
                  </tr>
                </thead>
                <tbody>
                  ${repeat(
                    agents,
                    (a) => a.id,
                    (a) =>
                      html`<tr data-agent=${a.id} class=${a.state === 'up' ? '' : 'down'}>
                        <td class="mono strong">${a.id}</td>
                        <td>
                          ${badge(a.state)}
                          ${
                            a.configured === false
                              ? badge(
                                  'retired',
                                  (a.retiredAt ? `retired at ${stamp(a.retiredAt)}: ` : '') +
                                    'not in this node’s configuration. Drained: the trees submitted before go on there, ' +
                                    'those submitted since start nothing there (AGENT_RETIRED). Once nothing is in flight, ' +
                                    'restart without it or forget it',
                                )
                              : nothing
                          }
                        </td>
                        <td class="mono small">${a.address ?? '—'}</td>
                        <td title=${stamp(a.lastSeenAt)}>${ago(a.lastSeenAt, now)}</td>
                        <td class="mono small" title=${a.bootId ?? ''}>
                          ${a.bootId ? short(a.bootId) : '—'}
                        </td>
                        <td class="num">${a.tasksInFlight ?? '—'}</td>
                        <td class="err-cell">
                          ${errorLine(a.lastError)}
                          ${
                            canAdminister() && a.configured === false && a.tasksInFlight === 0
                              ? html`<button
                                  class="quiet"
                                  data-forget=${a.id}
                                  @click=${async () => {
                                    if (await confirmAndForget(a.id, a.address ?? ''))
                                      void this.#read();
                                  }}
                                >
                                  Forget…
                                </button>`
                              : nothing
                          }
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>
              ${agents.length === 0 ? html`<p class="empty">This node knows no agent.</p>` : nothing}`
      }
      ${this.#admission === null ? nothing : admissionSection(this.#admission)}
      <h2>Changes seen here</h2>
      ${
        this.#log.length === 0
          ? html`<p class="quiet">None since this page opened.</p>`
          : html`<ol class="log" aria-label="agent changes">
              ${this.#log.map(
                (c) =>
                  html`<li>
                    <span class="quiet" title=${stamp(c.at)}>${clock(c.at, now)}</span>
                    <span class="mono strong">${c.agent}</span> ${c.what} ${errorLine(c.error)}
                  </li>`,
              )}
            </ol>`
      }
    </section>`;
  }
}

function short(id: string): string {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

/** Slots held against a limit: `2 / 4`, or the count alone without a limit. */
function held(running: number, limit: number | null): string {
  return limit === null ? String(running) : `${running} / ${limit}`;
}

/** Admission: each limited agent (in all, then per verb), and the limits on roots and types. */
function admissionSection(admission: Admission): TemplateResult {
  const { limits, agents } = admission;
  const types = Object.entries(limits.types ?? {}).flatMap(([type, t]) =>
    t.maxRunning === undefined ? [] : [`${type} ≤ ${t.maxRunning}`],
  );
  const other = [
    ...(limits.maxRunningRoots === undefined ? [] : [`running roots ≤ ${limits.maxRunningRoots}`]),
    ...types,
  ];
  return html`<h2>Admission</h2>
    ${
      agents.length === 0
        ? html`<p class="quiet">No agent has a limit: tasks start as they come.</p>`
        : html`<table class="grid" aria-label="admission">
            <thead>
              <tr>
                <th>Agent</th>
                <th>Verb</th>
                <th class="num">Running / limit</th>
                <th class="num">Queued</th>
                <th>Oldest waiting</th>
              </tr>
            </thead>
            <tbody>
              ${agents.map(
                (a) =>
                  html`<tr data-admission=${a.agentId} class=${a.queued > 0 ? 'waiting' : ''}>
                      <td class="mono strong">${a.agentId}</td>
                      <td class="quiet">all verbs</td>
                      <td class="num">${held(a.running, a.limit)}</td>
                      <td class="num">${a.queued}</td>
                      <td>${a.queued > 0 ? duration(a.oldestWaitMs) : '—'}</td>
                    </tr>
                    ${a.verbs.map(
                      (v) =>
                        html`<tr data-admission=${a.agentId} data-verb=${v.verb}>
                          <td></td>
                          <td class="mono">${v.verb}</td>
                          <td class="num">${held(v.running, v.limit)}</td>
                          <td class="num">${v.queued}</td>
                          <td></td>
                        </tr>`,
                    )}`,
              )}
            </tbody>
          </table>`
    }
    ${other.length === 0 ? nothing : html`<p class="quiet">Also limited: ${other.join(' · ')}.</p>`}`;
}
