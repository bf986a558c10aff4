/**
 * The dashboard's entry: sign-in, the page frame (navigation, who is signed in, the theme, the
 * messages, the confirmation dialog), the routes (`#/jobs`, `#/jobs/:id`, `#/commands/:id`,
 * `#/types`, `#/agents`, `#/problems`) and the keyboard. Built by scripts/build-dashboard.mjs into one
 * module served by the node (src/http/dashboard-route.ts).
 *
 * @module
 */
import { html, nothing, render, type TemplateResult } from 'lit-html';
import { ApiError, forgetToken, getReadiness, getWhoami, keepToken, sessionToken } from './api.js';
import { healthBanner } from './format.js';
import { app, dismiss, describe, type PendingConfirm, type Role } from './state.js';
import { AgentsView } from './views/agents.js';
import { CommandView } from './views/command.js';
import { JobView } from './views/job.js';
import { JobsView } from './views/jobs.js';
import { ProblemsView } from './views/problems.js';
import { TypesView } from './views/types.js';
import type { Route, View } from './views/view.js';

const root = document.getElementById('app')!;
let view: View | null = null;
let signInError: string | null = null;
let signingIn = false;
/** The first key of a two-key shortcut (`g j`), or null. */
let pending: string | null = null;
let help = false;

// ---- theme ----------------------------------------------------------------------------------

type Theme = 'auto' | 'light' | 'dark';
const THEME_KEY = 'coco.theme';

function theme(): Theme {
  const t = localStorage.getItem(THEME_KEY);
  return t === 'light' || t === 'dark' ? t : 'auto';
}

function applyTheme(): void {
  const t = theme();
  if (t === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
}

function cycleTheme(): void {
  const next: Theme = { auto: 'light', light: 'dark', dark: 'auto' }[theme()] as Theme;
  if (next === 'auto') localStorage.removeItem(THEME_KEY);
  else localStorage.setItem(THEME_KEY, next);
  applyTheme();
  app.update();
}

// ---- routes ---------------------------------------------------------------------------------

function route(): { name: string; route: Route } {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path = '', search = ''] = hash.split('?', 2);
  const [name = '', ...parts] = path.split('/').filter((p) => p !== '');
  return { name, route: { parts, query: new URLSearchParams(search) } };
}

function open(): void {
  view?.dispose();
  view = null;
  if (app.role === null) return;
  const { name, route: r } = route();
  if (name === 'jobs' && r.parts.length > 0) view = new JobView(r);
  else if (name === 'commands') view = new CommandView(r);
  else if (name === 'types') view = new TypesView(r);
  else if (name === 'agents') view = new AgentsView();
  else if (name === 'problems') view = new ProblemsView();
  else view = new JobsView(r);
  document.title = `${view.title()} · coco`;
  app.update();
}

// ---- sign-in --------------------------------------------------------------------------------

/** Who the token belongs to (`GET /v1/whoami`). */
function identify(token: string): Promise<{ role: Role; name: string }> {
  return getWhoami(token);
}

async function signIn(token: string): Promise<void> {
  signingIn = true;
  signInError = null;
  app.update();
  try {
    const who = await identify(token);
    keepToken(token);
    app.role = who.role;
    app.name = who.name;
    open();
  } catch (error) {
    forgetToken();
    signInError =
      error instanceof ApiError && error.status === 401
        ? 'This token is not accepted by the node.'
        : `Sign-in failed — ${describe(error)}`;
  } finally {
    signingIn = false;
    app.update();
  }
}

/**
 * A tab that has its token already (a reload) opens its page at once, as a viewer (no cancel
 * buttons), while the node says who the token belongs to: one round trip less before the data.
 */
function resume(token: string): void {
  app.role = 'viewer';
  app.name = '…';
  open();
  identify(token).then(
    (who) => {
      app.role = who.role;
      app.name = who.name;
      app.update();
    },
    (error: unknown) => {
      signOut();
      signInError =
        error instanceof ApiError && error.status === 401
          ? 'This token is no longer accepted by the node: sign in again.'
          : `Sign-in failed — ${describe(error)}`;
      app.update();
    },
  );
}

function signOut(): void {
  forgetToken();
  app.role = null;
  app.name = '';
  view?.dispose();
  view = null;
  app.update();
}

function signInPage(): TemplateResult {
  return html`<main class="signin">
    <form
      class="card"
      @submit=${(e: Event) => {
        e.preventDefault();
        const input = (e.currentTarget as HTMLFormElement).elements.namedItem(
          'token',
        ) as HTMLInputElement;
        if (input.value.trim() !== '') void signIn(input.value.trim());
      }}
    >
      <h1><span class="logo" aria-hidden="true"></span> coco</h1>
      <p class="quiet">
        Sign in with an API token. It is kept for this tab only and forgotten when the tab closes.
      </p>
      <label for="token">Token</label>
      <input
        id="token"
        name="token"
        type="password"
        autocomplete="off"
        spellcheck="false"
        required
        autofocus
      />
      ${signInError === null ? nothing : html`<p class="notice error" role="alert">${signInError}</p>`}
      <button class="primary" type="submit" ?disabled=${signingIn}>
        ${signingIn ? 'Signing in…' : 'Sign in'}
      </button>
      <p class="quiet small">
        The token is in <code>.coco/api-token</code> beside the node's store, or in its
        configuration.
      </p>
    </form>
  </main>`;
}

// ---- frame ----------------------------------------------------------------------------------

function navLink(href: string, label: string, active: boolean, key: string): TemplateResult {
  return html`<a
    href=${href}
    class=${active ? 'active' : ''}
    aria-current=${active ? 'page' : nothing}
    title="g ${key}"
    >${label}</a
  >`;
}

function frame(content: TemplateResult): TemplateResult {
  const { name } = route();
  const t = theme();
  const jobsActive = name === '' || name === 'jobs' || name === 'commands';
  return html`<header class="top">
      <a class="brand" href="#/jobs"><span class="logo" aria-hidden="true"></span>coco</a>
      <nav aria-label="main">
        ${navLink('#/jobs', 'Jobs', jobsActive, 'j')}
        ${navLink('#/types', 'Types', name === 'types', 't')}
        ${navLink('#/agents', 'Agents', name === 'agents', 'a')}
        ${navLink('#/problems', 'Problems', name === 'problems', 'p')}
      </nav>
      <span class="spacer"></span>
      <span class="who" title="signed in"
        >${app.name} · <strong class="role">${app.role}</strong></span
      >
      <button class="quiet" @click=${cycleTheme} title="theme (t)" aria-label="theme: ${t}">
        ${t === 'auto' ? '◐ auto' : t === 'light' ? '☀ light' : '☾ dark'}
      </button>
      <button class="quiet" @click=${signOut}>Sign out</button>
    </header>
    ${healthLine()}
    <div class="notices" aria-live="polite">
      ${app.notices.map(
        (n) =>
          html`<div class="notice ${n.kind}" role=${n.kind === 'error' ? 'alert' : 'status'}>
            <span>${n.text}</span
            ><button class="quiet" aria-label="dismiss" @click=${() => dismiss(n.id)}>×</button>
          </div>`,
      )}
    </div>
    <main>${content}</main>
    ${confirmDialog()} ${help ? helpPanel() : nothing}`;
}

function healthLine(): TemplateResult | typeof nothing {
  const text = healthBanner(app.health);
  return text === null
    ? nothing
    : html`<div class="notice warn health" role="status" data-health=${app.health?.kind ?? ''}>
        <span>${text}</span>
      </div>`;
}

/** What the dialog says to confirm an action, its two buttons, and its text field if it has one. */
function confirmWords(c: PendingConfirm): {
  title: string;
  text: TemplateResult;
  keep: string;
  act: string;
  danger: boolean;
  /** The label of the dialog's text field (a pause's reason), or null: none. */
  field?: string;
} {
  switch (c.action) {
    case 'cancel':
      return {
        title: `Cancel command ${c.id}?`,
        text: html`<span class="mono">${c.type}</span> and everything it started will be stopped,
          and its completed work undone (compensation). This cannot be taken back.`,
        keep: 'Keep it running',
        act: `Cancel command ${c.id}`,
        danger: true,
      };
    case 'rerun':
      return {
        title: `Run command ${c.id} again?`,
        text: html`A new <span class="mono">${c.type}</span> command starts with the same
          parameters; command ${c.id} stays as it ended.`,
        keep: 'Not now',
        act: 'Run it again',
        danger: false,
      };
    case 'release':
      return {
        title: `Release command ${c.id}?`,
        text: html`The store refused the changes of this
          <span class="mono">${c.type}</span> command's tree. Release it once the cause is gone: it
          runs on from what was stored. Refused again, it is held again.`,
        keep: 'Keep it held',
        act: 'Release it',
        danger: false,
      };
    case 'forget':
      return {
        title: `Forget agent ${c.id}?`,
        text: html`Its row (<span class="mono">${c.type || 'no address'}</span>) goes from this
          list, and this node stops following it. Another node that names it writes it again at its
          next change.`,
        keep: 'Keep it',
        act: `Forget ${c.id}`,
        danger: true,
      };
    case 'pause':
      return {
        title: `Pause ${c.type}?`,
        text: html`New <span class="mono">${c.type}</span> commands are accepted and stored, but
          wait until the type is resumed — on every node of the store, across restarts. Those
          running go on, and children of every type run.`,
        keep: 'Not now',
        act: `Pause ${c.type}`,
        danger: false,
        field: 'Reason (optional, shown with the pause)',
      };
    case 'resume':
      return {
        title: `Resume ${c.type}?`,
        text: html`New <span class="mono">${c.type}</span> commands start again as the limits allow,
          ${
            c.waiting === undefined || c.waiting === 0
              ? 'none waits on this node now.'
              : `the ${c.waiting} waiting on this node first.`
          }`,
        keep: 'Keep it paused',
        act: `Resume ${c.type}`,
        danger: false,
      };
  }
}

/** The longest reason a pause keeps (the API refuses a longer one). */
const MAX_REASON = 500;

function confirmDialog(): TemplateResult {
  const c = app.confirming;
  const close = (confirmed: boolean): void => {
    const dialog = document.getElementById('confirm') as HTMLDialogElement | null;
    dialog?.close(confirmed ? 'confirm' : 'keep');
  };
  const answer = (e: Event): void => {
    const field = document.getElementById('confirm-text') as HTMLInputElement | null;
    app.confirming?.resolve(
      (e.target as HTMLDialogElement).returnValue === 'confirm',
      field?.value ?? '',
    );
  };
  return html`<dialog id="confirm" aria-labelledby="confirm-title" @close=${answer}>
    ${
      c
        ? ((w) =>
            html`<h2 id="confirm-title">${w.title}</h2>
              <p>${w.text}</p>
              ${
                w.field === undefined
                  ? nothing
                  : html`<label class="field" for="confirm-text">${w.field}</label>
                      <input
                        id="confirm-text"
                        type="text"
                        maxlength=${MAX_REASON}
                        autocomplete="off"
                        autofocus
                        @keydown=${(e: KeyboardEvent) => {
                          if (e.key === 'Enter') {
                            e.preventDefault();
                            close(true);
                          }
                        }}
                      />`
              }
              <div class="actions">
                <button
                  class="quiet"
                  ?autofocus=${w.field === undefined}
                  @click=${() => close(false)}
                >
                  ${w.keep}
                </button>
                <button
                  class=${w.danger ? 'danger' : ''}
                  id="confirm-${c.action}"
                  @click=${() => close(true)}
                >
                  ${w.act}
                </button>
              </div>`)(confirmWords(c))
        : nothing
    }
  </dialog>`;
}

function helpPanel(): TemplateResult {
  return html`<aside class="help card" aria-label="keyboard shortcuts">
    <h2>Keyboard</h2>
    <dl>
      <dt>g j / g t / g a / g p</dt>
      <dd>jobs, types, agents, problems</dd>
      <dt>j / k, ↓ / ↑</dt>
      <dd>move in the jobs list</dd>
      <dt>Enter</dt>
      <dd>open the selected job</dd>
      <dt>n / p</dt>
      <dd>older / newer page</dd>
      <dt>/</dt>
      <dd>filter by type</dd>
      <dt>t</dt>
      <dd>theme</dd>
      <dt>?</dt>
      <dd>this help (Esc closes)</dd>
    </dl>
  </aside>`;
}

function draw(): void {
  render(app.role === null ? signInPage() : frame(view ? view.render() : html``), root);
  const dialog = document.getElementById('confirm') as HTMLDialogElement | null;
  if (dialog && app.confirming && !dialog.open) {
    // An Escape closes the dialog without a value: the last answer must not stand for it.
    dialog.returnValue = '';
    dialog.showModal();
  }
}

let scheduled = false;
app.update = () => {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    draw();
  });
};

// ---- keyboard -------------------------------------------------------------------------------

function onKey(e: KeyboardEvent): void {
  if (e.ctrlKey || e.metaKey || e.altKey || app.role === null || app.confirming) return;
  const target = e.target as HTMLElement;
  if (e.key === 'Escape') {
    if (help) help = false;
    else if (['INPUT', 'SELECT', 'TEXTAREA'].includes(target.tagName)) target.blur();
    app.update();
    return;
  }
  if (['INPUT', 'SELECT', 'TEXTAREA'].includes(target.tagName)) return;
  if (pending === 'g') {
    pending = null;
    const to = { j: '#/jobs', t: '#/types', a: '#/agents', p: '#/problems' }[e.key];
    if (to) {
      location.hash = to;
      e.preventDefault();
    }
    return;
  }
  if (e.key === 'g') pending = 'g';
  else if (e.key === '?') help = !help;
  else if (e.key === 't') cycleTheme();
  else if (e.key === '/') {
    if (route().name !== '' && route().name !== 'jobs') location.hash = '#/jobs';
    setTimeout(() => document.getElementById('type-filter')?.focus(), 50);
  } else if (!view?.key?.(e)) return;
  e.preventDefault();
  app.update();
}

// ---- the node's health ----------------------------------------------------------------------

/**
 * How often the node's readiness is read while someone is signed in: it reports a store that has
 * taken no write for 5 s (`storeOutageMs`), so a banner within 5 s more comes while the operator
 * still looks; one small public read per tab every 5 s costs the node nothing.
 */
const HEALTH_EVERY_MS = 5_000;

async function readHealth(): Promise<void> {
  if (app.role !== null) {
    try {
      const r = await getReadiness();
      app.health = r.ready
        ? { kind: 'ready' }
        : {
            kind: 'not-ready',
            nodeId: r.nodeId,
            reason: r.reason ?? 'no reason given',
            detail: r.detail ?? null,
          };
    } catch (error) {
      app.health = { kind: 'unreachable', error: describe(error) };
    }
    app.update();
  }
  setTimeout(() => void readHealth(), HEALTH_EVERY_MS);
}

// ---- start ----------------------------------------------------------------------------------

applyTheme();
addEventListener('hashchange', open);
addEventListener('keydown', onKey);
void readHealth();
// Durations of running work tick once a second.
setInterval(() => {
  app.now = Date.now();
  if (app.role !== null) app.update();
}, 1_000);
const token = sessionToken();
if (token === null) app.update();
else resume(token);
