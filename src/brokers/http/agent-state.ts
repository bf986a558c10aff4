/**
 * What the HTTP broker knows of one agent — up or down, boot id, last answer — and the
 * {@link AgentInfo} to report when that changes: on every up/down change and every new boot id
 * (a restart, reported with the previous boot id).
 *
 * @module
 */
import { CocoError, ErrorCode, type ErrorInfo } from '../../core/errors.js';
import { MAX_BATCH } from '../../protocol/agent-v2.js';
import type { AgentInfo } from '../port.js';

/**
 * Boot ids remembered per agent, to ignore a late answer of an earlier boot (sent just before
 * a restart, received after an answer of the new boot); four covers restarts in quick
 * succession, which is all a late answer can straddle.
 */
const PAST_BOOTS_KEPT = 4;

/** What an answer of the agent changed. */
export interface Answered {
  /** The info to report, if something changed. */
  readonly info: AgentInfo | null;
  /** The agent was down and answers again. */
  readonly recovered: boolean;
  /** The boot id before this answer, when the agent restarted. */
  readonly restartedFrom: string | null;
}

/** One agent's state as the broker sees it. */
export class AgentState {
  readonly agentId: string;
  readonly address: string;
  /** null until the agent answered or failed once. */
  #up: boolean | null = null;
  #bootId: string | null = null;
  readonly #pastBoots: string[] = [];
  #lastSeenAt: number | null = null;
  #error: ErrorInfo | null = null;
  #info: AgentInfo | null = null;

  constructor(agentId: string, address: string) {
    this.agentId = agentId;
    this.address = address;
  }

  /** The last info reported (null before the first). */
  get info(): AgentInfo | null {
    return this.#info;
  }

  /** The agent answered at `now` from the process with `bootId`. */
  answered(bootId: string, now: number): Answered {
    this.#lastSeenAt = now;
    if (this.#pastBoots.includes(bootId))
      return { info: null, recovered: false, restartedFrom: null };
    const previous = this.#bootId;
    const restarted = previous !== null && previous !== bootId;
    if (this.#up === true && !restarted)
      return { info: null, recovered: false, restartedFrom: null };
    const recovered = this.#up === false;
    if (restarted) {
      this.#pastBoots.push(previous);
      if (this.#pastBoots.length > PAST_BOOTS_KEPT) this.#pastBoots.shift();
    }
    this.#up = true;
    this.#bootId = bootId;
    this.#error = null;
    return {
      info: this.#report(restarted ? previous : undefined),
      recovered,
      restartedFrom: restarted ? previous : null,
    };
  }

  /** A call failed in a way that makes the agent unusable; returns the info to report, if new. */
  failed(error: ErrorInfo): AgentInfo | null {
    const same = this.#up === false && this.#error?.code === error.code;
    this.#up = false;
    this.#error = error;
    return same ? null : this.#report(undefined);
  }

  #report(previousBootId: string | undefined): AgentInfo {
    this.#info = {
      agentId: this.agentId,
      address: this.address,
      up: this.#up === true,
      bootId: this.#bootId,
      ...(previousBootId !== undefined ? { previousBootId } : {}),
      lastSeenAt: this.#lastSeenAt,
      error: this.#error,
    };
    return this.#info;
  }
}

/** Throws `AGENT_PROTOCOL` unless an answer has one item per id asked, in order. */
export function checkIds(
  where: { readonly agentId: string; readonly url: string; readonly op: string },
  ids: readonly string[],
  items: readonly { readonly taskId: string }[],
): void {
  const bad =
    items.length !== ids.length
      ? `${items.length} items for ${ids.length} ids`
      : items.findIndex((item, i) => item.taskId !== ids[i]);
  if (bad === -1) return;
  const what =
    typeof bad === 'string' ? bad : `item ${bad} is about ${items[bad]?.taskId}, not ${ids[bad]}`;
  throw new CocoError(
    ErrorCode.AgentProtocol,
    `agent ${where.agentId} (${where.url}) answered ${where.op} out of order: ${what}`,
    { details: { agentId: where.agentId, op: where.op } },
  );
}

/** An agent's error as the port's {@link ErrorInfo} (absent details left out). */
export function errorInfo(e: { code: string; message: string; details?: unknown }): ErrorInfo {
  return e.details === undefined
    ? { code: e.code, message: e.message }
    : { code: e.code, message: e.message, details: e.details };
}

/** Slices of at most `MAX_BATCH` items (none for an empty list: nothing to send). */
export function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += MAX_BATCH) out.push(items.slice(i, i + MAX_BATCH));
  return out;
}
