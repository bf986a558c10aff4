/**
 * Fault injection for the in-process agent: failed calls, lost replies, delays, hangs,
 * refused starts and lost tasks, composable and deterministic.
 *
 * @module
 */
import { CocoError, ErrorCode, type ErrorInfo } from '../../core/errors.js';

/** The agent calls of the broker port, as fault injection names them. */
export type AgentMethod = 'startTasks' | 'getStatuses' | 'stopTasks' | 'clearTasks' | 'listTasks';

interface FaultRule {
  readonly method: AgentMethod | undefined;
  left: number;
}

/** @internal What {@link AgentFaults} needs of its agent. */
export interface FaultHost {
  vanish(taskId: string): boolean;
  forgetAll(): number;
  injected(): void;
}

/**
 * Fault injection for one agent. Faults compose, in a fixed order per call: a hung call waits
 * for {@link AgentFaults.resume}; then an armed failure fails it *before* it is applied;
 * otherwise it is applied, and an armed drop loses its reply *after*; finally a delay holds
 * the answer (value or error). Counted rules are consumed in the order they were armed, by
 * calls in the order they arrive (held calls in the order they were held).
 */
export class AgentFaults {
  readonly #host: FaultHost;
  readonly #fails: FaultRule[] = [];
  readonly #drops: FaultRule[] = [];
  readonly #rejects: { left: number; error: ErrorInfo }[] = [];
  readonly #delays = new Map<AgentMethod | '*', number>();
  #hung: { method: AgentMethod | undefined } | undefined;
  #held: (() => void)[] = [];

  /** @internal Built by the agent it belongs to. */
  constructor(host: FaultHost) {
    this.#host = host;
  }

  /** The next `n` calls (of `method`, or of any method) throw `AGENT_UNAVAILABLE` without being applied. */
  failNextCalls(n: number, method?: AgentMethod): this {
    if (n > 0) this.#fails.push({ method, left: n });
    return this;
  }

  /** The next `n` calls (of `method`, or any) are applied, then throw `AGENT_UNAVAILABLE` (a lost reply). */
  dropNextReplies(n: number, method?: AgentMethod): this {
    if (n > 0) this.#drops.push({ method, left: n });
    return this;
  }

  /** Answers calls (of `method`, or all) `ms` milliseconds after applying them; `0` removes the delay. */
  delayCalls(ms: number, method?: AgentMethod): this {
    if (ms > 0) this.#delays.set(method ?? '*', ms);
    else this.#delays.delete(method ?? '*');
    return this;
  }

  /** Holds calls (of `method`, or all) unapplied and unanswered until {@link AgentFaults.resume}. */
  hang(method?: AgentMethod): this {
    this.#hung = { method };
    return this;
  }

  /** Ends a {@link AgentFaults.hang}: held calls proceed in arrival order. */
  resume(): this {
    this.#hung = undefined;
    const held = this.#held;
    this.#held = [];
    for (const release of held) release();
    return this;
  }

  /** Number of calls held by {@link AgentFaults.hang}. */
  get heldCalls(): number {
    return this.#held.length;
  }

  /** The next `n` new tasks are refused at start (`TASK_REJECTED`, or `error`). */
  rejectNextStarts(n: number, error?: ErrorInfo): this {
    if (n > 0)
      this.#rejects.push({
        left: n,
        error: error ?? { code: ErrorCode.TaskRejected, message: 'start refused (injected)' },
      });
    return this;
  }

  /** Forgets a task silently, as if the host lost it (its verb is aborted). Returns whether it was held. */
  vanish(taskId: string): boolean {
    return this.#host.vanish(taskId);
  }

  /** Forgets every task, as after a host restart. Returns how many were held. */
  forgetAll(): number {
    return this.#host.forgetAll();
  }

  /** Disarms every fault and releases held calls. */
  reset(): this {
    this.#fails.length = 0;
    this.#drops.length = 0;
    this.#rejects.length = 0;
    this.#delays.clear();
    return this.resume();
  }

  /** @internal Consumes one armed start rejection. */
  takeStartRejection(taskId: string): ErrorInfo | undefined {
    const rule = this.#rejects[0];
    if (rule === undefined) return undefined;
    if (--rule.left === 0) this.#rejects.shift();
    return { ...rule.error, details: { taskId } };
  }

  /** @internal Runs one agent call through the armed faults. */
  async run<T>(method: AgentMethod, apply: () => T): Promise<T> {
    if (
      this.#fails.length === 0 &&
      this.#drops.length === 0 &&
      this.#delays.size === 0 &&
      this.#hung === undefined
    ) {
      return apply();
    }
    if (this.#hung !== undefined && (this.#hung.method ?? method) === method) {
      await new Promise<void>((release) => this.#held.push(release));
    }
    let error: CocoError | undefined;
    let value: T | undefined;
    if (take(this.#fails, method)) error = this.#injected(method, 'call failed');
    else {
      value = apply();
      if (take(this.#drops, method)) error = this.#injected(method, 'reply lost');
    }
    const ms = this.#delays.get(method) ?? this.#delays.get('*') ?? 0;
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    if (error !== undefined) throw error;
    return value as T;
  }

  #injected(method: AgentMethod, what: string): CocoError {
    this.#host.injected();
    return new CocoError(ErrorCode.AgentUnavailable, `${method}: ${what} (injected fault)`, {
      retryable: true,
    });
  }
}

/** Consumes one unit of the first rule matching `method`. */
function take(rules: FaultRule[], method: AgentMethod): boolean {
  const i = rules.findIndex((r) => r.method === undefined || r.method === method);
  const rule = rules[i];
  if (rule === undefined) return false;
  if (--rule.left === 0) rules.splice(i, 1);
  return true;
}
