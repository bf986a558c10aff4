/**
 * The page's shared state: who is signed in (and so whether cancel, rerun, pause and resume
 * buttons show), the clock the durations tick with, messages for the user, and the render
 * scheduler every view calls after a change.
 *
 * @module
 */
import {
  ApiError,
  cancelCommand,
  forgetAgent,
  pauseType,
  releaseCommand,
  rerunCommand,
  resumeType,
} from './api.js';
import type { NodeHealth } from './format.js';

/** A role of the API's tokens. */
export type Role = 'viewer' | 'operator' | 'admin';

/** A message shown at the top of the page for a while. */
export interface Notice {
  readonly id: number;
  readonly kind: 'info' | 'error';
  readonly text: string;
}

/** An action being confirmed in the page's dialog (main.ts), if any. */
export interface PendingConfirm {
  /**
   * `cancel` (a danger), `rerun` or `release` of a command, `forget` of an agent, `pause` or
   * `resume` of a command type: names the dialog's confirm button (`#confirm-<action>`).
   */
  readonly action: 'cancel' | 'rerun' | 'release' | 'forget' | 'pause' | 'resume';
  /** The command's id, the agent's, or the command type's name. */
  readonly id: number | string;
  /** The command's type, the agent's address, or the command type's name. */
  readonly type: string;
  /** For a resume: how many of the type's roots wait on this node. */
  readonly waiting?: number;
  /**
   * Called once with the answer: confirmed or not, and what was typed in the dialog's text field
   * (a pause's reason; empty for the other actions).
   */
  readonly resolve: (confirmed: boolean, text: string) => void;
}

/**
 * How long a notice stays: long enough to read two lines, short enough not to pile up. Errors
 * stay until dismissed.
 */
const NOTICE_MS = 6_000;

/** The page's state. */
export const app = {
  role: null as Role | null,
  name: '',
  /** The time durations are drawn with; ticks every second (main.ts). */
  now: Date.now(),
  notices: [] as Notice[],
  confirming: null as PendingConfirm | null,
  /** The node's readiness as last read (main.ts polls it), or null before the first read. */
  health: null as NodeHealth | null,
  /** Set by main.ts: schedules one render of the page. */
  update: (): void => undefined,
};

let noticeIds = 0;

/** Shows a message; errors stay until dismissed, others go after a few seconds. */
export function notify(kind: Notice['kind'], text: string): void {
  const notice = { id: ++noticeIds, kind, text };
  app.notices = [...app.notices.slice(-3), notice];
  if (kind === 'info')
    setTimeout(() => {
      dismiss(notice.id);
    }, NOTICE_MS);
  app.update();
}

/** Removes a message. */
export function dismiss(id: number): void {
  app.notices = app.notices.filter((n) => n.id !== id);
  app.update();
}

/**
 * Whether the signed-in role may run commands: cancel, rerun, release, pause and resume a type
 * (operators and admins).
 */
export function canCancel(): boolean {
  return app.role === 'operator' || app.role === 'admin';
}

/** Whether the signed-in role may administer the node (forget an agent): admins. */
export function canAdminister(): boolean {
  return app.role === 'admin';
}

/** An error as one line for the user. */
export function describe(error: unknown): string {
  if (error instanceof ApiError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Asks for confirmation of `action` in the dialog of main.ts: null when refused, else what was
 * typed in the dialog's text field (empty when it has none).
 */
async function ask(
  action: PendingConfirm['action'],
  id: PendingConfirm['id'],
  type: string,
  waiting?: number,
): Promise<string | null> {
  const answer = await new Promise<string | null>((resolve) => {
    app.confirming = {
      action,
      id,
      type,
      ...(waiting === undefined ? {} : { waiting }),
      resolve: (yes, text) => resolve(yes ? text : null),
    };
    app.update();
  });
  app.confirming = null;
  app.update();
  return answer;
}

/** Asks for confirmation of `action` on a command (or an agent) in the dialog of main.ts. */
async function confirmed(
  action: PendingConfirm['action'],
  id: PendingConfirm['id'],
  type: string,
): Promise<boolean> {
  return (await ask(action, id, type)) !== null;
}

/**
 * Asks for confirmation, then cancels the command; tells the user the outcome. Resolves true when
 * the cancel was accepted.
 */
export async function confirmAndCancel(id: number, type: string): Promise<boolean> {
  if (!(await confirmed('cancel', id, type))) return false;
  try {
    await cancelCommand(id);
    notify('info', `Cancel of command ${id} requested.`);
    return true;
  } catch (error) {
    notify('error', `Cancel of command ${id} refused — ${describe(error)}`);
    return false;
  }
}

/**
 * Asks for confirmation, then releases the tree of a command held because the store refused its
 * changes (it runs on from what was stored); tells the user the outcome. Resolves true when it
 * was released.
 */
export async function confirmAndRelease(id: number, type: string): Promise<boolean> {
  if (!(await confirmed('release', id, type))) return false;
  try {
    const released = await releaseCommand(id);
    notify('info', `The tree of command ${id} runs on (${released} command(s) released).`);
    return true;
  } catch (error) {
    notify('error', `Release of command ${id} refused — ${describe(error)}`);
    return false;
  }
}

/**
 * Asks for confirmation, then runs the ended root command again; tells the user the outcome.
 * Resolves with the new command's id, or null.
 */
export async function confirmAndRerun(id: number, type: string): Promise<number | null> {
  if (!(await confirmed('rerun', id, type))) return null;
  try {
    const next = await rerunCommand(id);
    notify('info', `Command ${id} runs again as command ${next}.`);
    return next;
  } catch (error) {
    notify('error', `Rerun of command ${id} refused — ${describe(error)}`);
    return null;
  }
}

/**
 * Asks for confirmation, then forgets the agent (its row goes); tells the user the outcome.
 * Resolves true when it was forgotten.
 */
export async function confirmAndForget(id: string, address: string): Promise<boolean> {
  if (!(await confirmed('forget', id, address))) return false;
  try {
    await forgetAgent(id);
    notify('info', `Agent ${id} forgotten.`);
    return true;
  } catch (error) {
    notify('error', `Agent ${id} not forgotten — ${describe(error)}`);
    return false;
  }
}

/**
 * Asks for confirmation and an optional reason, then pauses the command type (its new roots wait
 * until it is resumed); tells the user the outcome. Resolves true when it is paused.
 */
export async function confirmAndPause(name: string): Promise<boolean> {
  const reason = await ask('pause', name, name);
  if (reason === null) return false;
  try {
    const type = await pauseType(name, reason.trim());
    const first = type.paused;
    notify(
      'info',
      first !== null && reason.trim() !== '' && first.reason !== reason.trim()
        ? `${name} was paused already (${first.reason ?? 'no reason given'}): that pause holds.`
        : `${name} paused: its new roots wait until it is resumed.`,
    );
    return true;
  } catch (error) {
    notify('error', `Pause of ${name} refused — ${describe(error)}`);
    return false;
  }
}

/**
 * Asks for confirmation, then resumes the paused command type (its waiting roots run as the
 * limits allow); tells the user the outcome. Resolves true when the node answered.
 */
export async function confirmAndResume(name: string, waiting: number): Promise<boolean> {
  if ((await ask('resume', name, name, waiting)) === null) return false;
  try {
    const ended = await resumeType(name);
    notify(
      'info',
      ended === null ? `${name} was not paused.` : `${name} resumed: its waiting roots run.`,
    );
    return true;
  } catch (error) {
    notify('error', `Resume of ${name} refused — ${describe(error)}`);
    return false;
  }
}
