/**
 * Admission control: at most `maxRunning` tasks at once on an agent (and at most
 * `maxRunningByVerb[verb]` of one verb), the rest waiting in the engine as `queued` tasks and
 * admitted, best first, as slots free.
 *
 * - **A slot is held from admission until the agent is done with the task** (`LiveTask.agentDone`:
 *   it reported the task ended, refused it, or no longer knows it) — not merely until the engine
 *   ended it: a task cancelled or past its deadline holds its slot until its agent confirms it
 *   stopped, so the agent never runs more than its limit.
 * - **Order.** Best first by `createdAt − priority × ageStepMs`, then root id, command id and task
 *   ordinal (submission order). A task's priority is its command's. The ordering key is fixed
 *   when the task is queued, so the queue is a plain heap, and it is rebuilt the same from the
 *   store after a restart. It is also the ageing rule: a task ranks as if queued `priority` age
 *   steps earlier, so a task of lower priority waits behind one of higher priority only for tasks
 *   queued less than the difference in age steps after it; nothing starves.
 * - **Agents without a limit** are not tracked at all (the fast path of every task). A limit set
 *   at run time ({@link Admission.setLimits}) counts the agent's tasks from the live commands.
 * - **On a shared store** (a {@link SlotLedger}, engine/shared-admission.ts) this node admits
 *   nothing by itself: every task of a limited agent is stored `queued`, the agent's lease
 *   holder grants slots cluster-wide through the store, and {@link Admission.grant} admits the
 *   task granted. The queues here then only say where this node's tasks stand, and the slots
 *   held here are reported to the store (held, released) so the holder counts them.
 *
 * @module
 */
import type { SlotLimits } from '../store/shared-port.js';
import type { LiveTask } from './live.js';

/** The limits of one agent. */
export interface AgentLimit {
  /** Tasks running at once on the agent, at most (absent: no limit but the per-verb ones). */
  readonly maxRunning?: number;
  /** Tasks of one verb running at once on the agent, at most. */
  readonly maxRunningByVerb?: Readonly<Record<string, number>>;
}

/** Admission limits of an engine (`EngineOptions.limits`, `Engine.setLimits`). */
export interface AdmissionLimits {
  /** Per agent id. */
  readonly agents?: Readonly<Record<string, AgentLimit>>;
  /** Root commands of a type running at once on a node, at most (engine/root-admission.ts). */
  readonly types?: Readonly<Record<string, { readonly maxRunning?: number }>>;
  /** Root commands running at once on a node, at most, whatever their type. */
  readonly maxRunningRoots?: number;
  /**
   * Ageing: a queued task ranks as if it had been queued this much earlier per priority level,
   * so a lower priority waits behind a higher one only for work queued up to (difference in
   * priority × this) after it, and nothing starves. A minute lets a priority mean "before the
   * next minutes of work" without letting a stream of urgent work hold the rest back for long.
   * @default 60000
   */
  readonly ageStepMs?: number;
}

/** The default of {@link AdmissionLimits.ageStepMs} (see there why). */
export const DEFAULT_AGE_STEP_MS = 60_000;

/** Where a queued task stands. */
export interface QueuePosition {
  readonly agentId: string;
  /** The task's verb. */
  readonly verb: string;
  /** Queued tasks on the agent admitted before it (by the current order). */
  readonly ahead: number;
  /** The agent's limit (null: only a per-verb limit). */
  readonly limit: number | null;
  /** The limit of its verb on that agent, if one is set. */
  readonly verbLimit: number | null;
  /** Tasks holding a slot on the agent now. */
  readonly running: number;
  /** "queued for host-1: 12 ahead, limit 4". */
  readonly text: string;
}

/**
 * A {@link QueuePosition} with its text: "queued for host-1: 12 ahead, limit 4" (and the verb's
 * limit when it has one there).
 */
export function queuePosition(
  agentId: string,
  verb: string,
  ahead: number,
  limit: number | null,
  verbLimit: number | null,
  running: number,
): QueuePosition {
  const limits = [
    limit === null ? null : `limit ${limit}`,
    verbLimit === null ? null : `${verb} limit ${verbLimit}`,
  ].filter((x) => x !== null);
  return {
    agentId,
    verb,
    ahead,
    limit,
    verbLimit,
    running,
    text: `queued for ${agentId}: ${ahead} ahead${limits.length > 0 ? `, ${limits.join(', ')}` : ''}`,
  };
}

/** Queue depth and occupancy of one limited agent (engine stats, metrics). */
export interface AgentAdmissionStats {
  readonly agentId: string;
  readonly limit: number | null;
  readonly running: number;
  readonly queued: number;
  /** How long the oldest queued task has waited (0 when none waits). */
  readonly oldestWaitMs: number;
  /** Per verb with a limit or with queued tasks. */
  readonly verbs: readonly {
    readonly verb: string;
    readonly limit: number | null;
    readonly running: number;
    readonly queued: number;
  }[];
}

/** What a queued task waits with: its fixed ordering key, and its place in its heap. */
interface Entry {
  readonly task: LiveTask;
  readonly key: number;
  /** Its index in its heap's array (kept by the heap as entries move). */
  i: number;
}

function before(a: Entry, b: Entry): boolean {
  if (a.key !== b.key) return a.key < b.key;
  const ta = a.task;
  const tb = b.task;
  if (ta.command.rootId !== tb.command.rootId) return ta.command.rootId < tb.command.rootId;
  if (ta.command.id !== tb.command.id) return ta.command.id < tb.command.id;
  return ta.ordinal < tb.ordinal;
}

/**
 * A binary min-heap of entries (best first), with removal by task: each entry keeps its index
 * and each task its entry, so that a removal (a cancel, a grant) is O(log n) — found by a walk
 * of the array it was O(n), and a cancel of 25,000 of 50,000 tasks queued on an agent held the
 * event loop 3.4 s.
 */
class Heap {
  readonly items: Entry[] = [];
  readonly #of = new Map<LiveTask, Entry>();
  get size(): number {
    return this.items.length;
  }
  peek(): Entry | undefined {
    return this.items[0];
  }
  push(e: Entry): void {
    this.#of.set(e.task, e);
    e.i = this.items.push(e) - 1;
    this.#up(e.i);
  }
  pop(): Entry | undefined {
    const top = this.items[0];
    if (top) this.#take(top);
    return top;
  }
  /** The entry of a queued task, if it is in this heap. */
  entryOf(task: LiveTask): Entry | undefined {
    return this.#of.get(task);
  }
  remove(task: LiveTask): boolean {
    const e = this.#of.get(task);
    if (e === undefined) return false;
    this.#take(e);
    return true;
  }
  /** Takes `e` out: the last entry fills its place and moves down or up to where it belongs. */
  #take(e: Entry): void {
    const a = this.items;
    this.#of.delete(e.task);
    const last = a.pop()!;
    if (last === e) return;
    a[e.i] = last;
    last.i = e.i;
    this.#down(last.i);
    this.#up(last.i);
  }
  #up(i: number): void {
    const a = this.items;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i]!, a[p]!)) return;
      this.#swap(i, p);
      i = p;
    }
  }
  #down(i: number): void {
    const a = this.items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && before(a[l]!, a[m]!)) m = l;
      if (r < a.length && before(a[r]!, a[m]!)) m = r;
      if (m === i) return;
      this.#swap(i, m);
      i = m;
    }
  }
  #swap(i: number, j: number): void {
    const a = this.items;
    const x = a[i]!;
    const y = a[j]!;
    a[i] = y;
    a[j] = x;
    y.i = i;
    x.i = j;
  }
}

/** One limited agent: its limits, the tasks holding its slots, its queue per verb. */
class AgentGate {
  limit: number | null = null;
  verbLimits = new Map<string, number>();
  running = 0;
  readonly runningByVerb = new Map<string, number>();
  readonly queues = new Map<string, Heap>();
  queued = 0;
  readonly id: string;
  constructor(id: string) {
    this.id = id;
  }

  roomFor(verb: string): boolean {
    if (this.limit !== null && this.running >= this.limit) return false;
    const vl = this.verbLimits.get(verb);
    return vl === undefined || (this.runningByVerb.get(verb) ?? 0) < vl;
  }

  /** The best queued task that has room now. */
  next(): Entry | null {
    if (this.limit !== null && this.running >= this.limit) return null;
    let best: Entry | null = null;
    for (const [verb, heap] of this.queues) {
      const head = heap.peek();
      if (head === undefined || !this.roomFor(verb)) continue;
      if (best === null || before(head, best)) best = head;
    }
    return best;
  }
}

/**
 * Admission across nodes (engine/shared-admission.ts): the store's ledger of slots, kept by the
 * agents' lease holders and the tasks' owners. Null alone on a store.
 */
export interface SlotLedger {
  /** A task was queued (or loaded queued): the agent's lease holder hears of it after the commit. */
  queued(t: LiveTask): void;
  /** The task holds a slot (loaded admitted, or counted when a limit is set): recorded. */
  hold(t: LiveTask): void;
  /** The task's slot is free (its agent is done with it, or it was cancelled queued): after the commit. */
  release(t: LiveTask): void;
}

/** What admission needs from the engine. */
export interface AdmissionHost {
  now(): number;
  /** A queued task was admitted (now `created`): store it, then start it after the commit. */
  admitted(t: LiveTask): void;
  /** Every live task (to count the running tasks of an agent that gets a limit at run time). */
  liveTasks(): Iterable<LiveTask>;
  /** On a shared store, the slot ledger: the agents' lease holders admit, not this node. */
  readonly ledger: SlotLedger | null;
}

/** The admission queues of one engine. */
export class Admission {
  readonly #gates = new Map<string, AgentGate>();
  readonly #host: AdmissionHost;
  #ageStepMs = DEFAULT_AGE_STEP_MS;

  constructor(host: AdmissionHost, limits: AdmissionLimits | undefined) {
    this.#host = host;
    this.setLimits(limits ?? {});
  }

  /** Whether the agent has a limit (its tasks go through {@link submit}). */
  limited(agentId: string): boolean {
    return this.#gates.size > 0 && this.#gates.has(agentId);
  }

  /**
   * A new task of a limited agent, stored `queued`: it is admitted at once (becoming `created`,
   * {@link AdmissionHost.admitted}) if a slot is free and nothing better waits.
   */
  submit(t: LiveTask): void {
    const g = this.#gates.get(t.agentId);
    if (g === undefined) {
      this.#host.admitted(t);
      return;
    }
    const ledger = this.#host.ledger;
    if (ledger !== null) {
      // The agent's lease holder grants the slot, once the task is stored queued.
      this.#enqueue(g, t);
      ledger.queued(t);
      return;
    }
    if (g.queued === 0 && g.roomFor(t.verb)) {
      // Nothing waits and there is room: the common case of a limit not reached.
      this.#hold(g, t);
      this.#host.admitted(t);
      return;
    }
    this.#enqueue(g, t);
    this.#pump(g);
  }

  /**
   * A task loaded from the store (restart, takeover): a queued one waits again in the same order;
   * one admitted before (created or running, or ended but not confirmed done by its agent)
   * holds its slot again.
   */
  restore(t: LiveTask): void {
    const g = this.#gates.get(t.agentId);
    if (g === undefined) return;
    const ledger = this.#host.ledger;
    if (t.status === 'queued') {
      this.#enqueue(g, t);
      ledger?.queued(t);
    } else if (!t.agentDone && !t.cleared) {
      this.#hold(g, t);
      ledger?.hold(t);
    } else ledger?.release(t); // its node may have died before releasing it
  }

  /**
   * On a shared store: the agent's lease holder granted this queued task a slot; it is admitted
   * (stored `created`, then started). False if it is no longer queued here (admitted already,
   * cancelled): nothing changes.
   */
  grant(t: LiveTask): boolean {
    const g = this.#gates.get(t.agentId);
    if (t.status !== 'queued') return false;
    if (g === undefined) {
      // No limit here any more: it was admitted when the limit went; a grant changes nothing.
      return false;
    }
    const heap = g.queues.get(t.verb);
    if (!heap?.remove(t)) return false;
    g.queued--;
    this.#hold(g, t);
    this.#host.admitted(t);
    return true;
  }

  /**
   * A queued task was cancelled (after {@link remove}, its end marked): on a shared store, a
   * slot the holder may have granted it meanwhile is given back once the cancel is stored.
   */
  cancelled(t: LiveTask): void {
    this.#host.ledger?.release(t);
  }

  /** The limits of an agent as its lease holder admits by them, or null without a limit. */
  limitOf(agentId: string): SlotLimits | null {
    const g = this.#gates.get(agentId);
    if (!g) return null;
    return {
      maxRunning: g.limit,
      byVerb: Object.fromEntries(g.verbLimits),
      ageStepMs: this.#ageStepMs,
    };
  }

  /** The ageing step in force ({@link AdmissionLimits.ageStepMs}). */
  get ageStepMs(): number {
    return this.#ageStepMs;
  }

  /** The limited agents. */
  limitedAgents(): string[] {
    return [...this.#gates.keys()];
  }

  /** The agents with tasks of this node waiting (their lease is wanted: its holder admits). */
  queuedAgents(): string[] {
    return [...this.#gates.values()].filter((g) => g.queued > 0).map((g) => g.id);
  }

  /** Admits what the restored slots leave room for (after {@link restore}). */
  pumpAll(): void {
    for (const g of this.#gates.values()) this.#pump(g);
  }

  /** Takes a queued task out of its queue (it is cancelled); false if it was not queued. */
  remove(t: LiveTask): boolean {
    const g = this.#gates.get(t.agentId);
    const heap = g?.queues.get(t.verb);
    if (!g || !heap?.remove(t)) return false;
    g.queued--;
    return true;
  }

  /**
   * Replaces the limits (run-time changes: a configuration reload, the admin API). A lower limit
   * stops admissions until enough running tasks end (running ones are never stopped for it); a
   * higher or removed one admits queued tasks at once.
   */
  setLimits(limits: AdmissionLimits): void {
    this.#ageStepMs = limits.ageStepMs ?? DEFAULT_AGE_STEP_MS;
    const wanted = limits.agents ?? {};
    const fresh: AgentGate[] = [];
    for (const [agentId, l] of Object.entries(wanted)) {
      let g = this.#gates.get(agentId);
      if (!g) {
        g = new AgentGate(agentId);
        this.#gates.set(agentId, g);
        fresh.push(g);
      }
      g.limit = l.maxRunning ?? null;
      g.verbLimits = new Map(Object.entries(l.maxRunningByVerb ?? {}));
    }
    if (fresh.length > 0) {
      for (const t of this.#host.liveTasks()) {
        const g = this.#gates.get(t.agentId);
        if (g && fresh.includes(g) && t.status !== 'queued' && !t.agentDone && !t.cleared) {
          this.#hold(g, t);
          this.#host.ledger?.hold(t);
        }
      }
    }
    for (const g of [...this.#gates.values()]) {
      if (wanted[g.id] === undefined) {
        // No limit any more: everything queued goes; running tasks are simply let go.
        g.limit = null;
        g.verbLimits.clear();
        this.#pump(g, true);
        this.#gates.delete(g.id);
      } else this.#pump(g);
    }
  }

  /** Where a queued task stands, or null if it is not queued. */
  position(t: LiveTask): QueuePosition | null {
    if (t.status !== 'queued') return null;
    const g = this.#gates.get(t.agentId);
    if (!g) return null;
    const mine = g.queues.get(t.verb)?.entryOf(t);
    if (!mine) return null;
    let ahead = 0;
    for (const heap of g.queues.values())
      for (const e of heap.items) if (e !== mine && before(e, mine)) ahead++;
    return queuePosition(g.id, t.verb, ahead, g.limit, g.verbLimits.get(t.verb) ?? null, g.running);
  }

  /** Queue depth and occupancy per limited agent. */
  stats(): AgentAdmissionStats[] {
    const now = this.#host.now();
    return [...this.#gates.values()].map((g) => {
      let oldest = now;
      const verbs = new Set([...g.verbLimits.keys(), ...g.queues.keys()]);
      for (const heap of g.queues.values())
        for (const e of heap.items) oldest = Math.min(oldest, e.task.createdAt);
      return {
        agentId: g.id,
        limit: g.limit,
        running: g.running,
        queued: g.queued,
        oldestWaitMs: now - oldest,
        verbs: [...verbs].map((verb) => ({
          verb,
          limit: g.verbLimits.get(verb) ?? null,
          running: g.runningByVerb.get(verb) ?? 0,
          queued: g.queues.get(verb)?.size ?? 0,
        })),
      };
    });
  }

  #enqueue(g: AgentGate, t: LiveTask): void {
    let heap = g.queues.get(t.verb);
    if (!heap) {
      heap = new Heap();
      g.queues.set(t.verb, heap);
    }
    heap.push({ task: t, key: t.createdAt - t.command.priority * this.#ageStepMs, i: 0 });
    g.queued++;
  }

  /** The task takes a slot until its agent is done with it. */
  #hold(g: AgentGate, t: LiveTask): void {
    g.running++;
    g.runningByVerb.set(t.verb, (g.runningByVerb.get(t.verb) ?? 0) + 1);
    t.onAgentDone = (done) => this.#release(g, done);
  }

  #release(g: AgentGate, t: LiveTask): void {
    g.running--;
    const n = (g.runningByVerb.get(t.verb) ?? 1) - 1;
    if (n > 0) g.runningByVerb.set(t.verb, n);
    else g.runningByVerb.delete(t.verb);
    this.#host.ledger?.release(t);
    if (g.queued > 0 && this.#gates.get(g.id) === g) this.#pump(g);
  }

  /**
   * Admits the best queued tasks while there is room — here alone on a store; on a shared one
   * only when the agent's limit went (`unlimited`): else the agent's lease holder admits.
   */
  #pump(g: AgentGate, unlimited = false): void {
    if (this.#host.ledger !== null && !unlimited) return;
    for (let e = g.next(); e !== null; e = g.next()) {
      g.queues.get(e.task.verb)!.pop();
      g.queued--;
      this.#hold(g, e.task);
      this.#host.admitted(e.task);
    }
  }
}
