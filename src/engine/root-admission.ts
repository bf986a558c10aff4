/**
 * Root admission: at most `types[T].maxRunning` root commands of type T, and at most
 * `maxRunningRoots` roots in all, run at once on this node; a root submitted past a limit waits
 * with `queuedSince` set (status `pending`: none of its handlers has run) and is admitted, best
 * first, when a running root ends.
 *
 * - **Order**: as tasks (engine/admission.ts): `createdAt − priority × ageStepMs`, then id
 *   (submission order) — ageing included, so nothing starves.
 * - **A slot** is held from admission until the root ends (its status is terminal; its
 *   compensation and its tasks' clears, which follow, hold none).
 * - **Cancel and lifetime** apply while queued: the coordinator takes a cancelled or expired root
 *   out of the queue (it never holds a slot) and lets it end without running anything.
 * - **Restarts**: roots loaded with `queuedSince` wait again in the same order; the others that
 *   have not ended hold their slots again.
 * - **A paused type** (an operator's pause, kept in the store: `Engine.pauseType`) has no room:
 *   its new roots wait as past a limit, whatever the limits, until it is resumed; its roots
 *   already admitted run on, and children (of any type) are never held, as a tree half-run keeps
 *   what it holds.
 *
 * @module
 */
import { DEFAULT_AGE_STEP_MS, type AdmissionLimits } from './admission.js';
import type { PausedType } from '../store/port.js';
import type { LiveCommand } from './live.js';

/** Where a queued root stands. */
export interface RootQueuePosition {
  /** Queued roots admitted before it (by the current order). */
  readonly ahead: number;
  /** Its type's limit, and the node's, when set. */
  readonly typeLimit: number | null;
  readonly nodeLimit: number | null;
  /** Its type's pause, when it is paused. */
  readonly paused: PausedType | null;
  /** "queued: 3 ahead, disk.migrate limit 8", "queued: 0 ahead, disk.migrate paused". */
  readonly text: string;
}

/** Root admission of one command type ({@link RootAdmission.typeStats}). */
export interface RootTypeStats {
  readonly type: string;
  /** `limits.types[type].maxRunning`, or null. */
  readonly limit: number | null;
  /** Roots of the type holding a slot (admitted, not ended). */
  readonly running: number;
  /** Roots of the type waiting for a slot. */
  readonly queued: number;
  /** Its pause, when it is paused. */
  readonly paused: PausedType | null;
}

/** What root admission needs from the coordinator. */
export interface RootAdmissionHost {
  /** A queued root was admitted: store `queuedSince: null`, and wake it. */
  admitted(c: LiveCommand): void;
}

/** The root queue of one engine. */
export class RootAdmission {
  readonly #host: RootAdmissionHost;
  #typeLimits = new Map<string, number>();
  #nodeLimit: number | null = null;
  #paused: ReadonlyMap<string, PausedType> = new Map();
  #ageStepMs = DEFAULT_AGE_STEP_MS;
  readonly #runningByType = new Map<string, number>();
  #running = 0;
  /**
   * Queued roots by type, each best first (kept sorted). By type, so that a type whose roots
   * cannot run (at its limit, or paused with a backlog) costs an admission nothing: only each
   * queue's head is looked at.
   */
  readonly #queues = new Map<string, TypeQueue>();
  /** Each queued root's entry (its place is found by it, not by a walk of its queue). */
  readonly #entries = new Map<LiveCommand, QueueEntry>();
  #queued = 0;

  constructor(host: RootAdmissionHost, limits: AdmissionLimits) {
    this.#host = host;
    this.setLimits(limits);
  }

  /** Whether any root limit or pause is set (else roots are not tracked at all). */
  get limited(): boolean {
    return this.#nodeLimit !== null || this.#typeLimits.size > 0 || this.#paused.size > 0;
  }

  /** A new root: true if it may run now (it takes a slot), false if it was queued. */
  submit(c: LiveCommand, now: number): boolean {
    if (!this.limited) return true;
    if (this.#queued === 0 && this.#room(c.type.name)) {
      this.#hold(c);
      return true;
    }
    c.queuedSince = now;
    this.#enqueue(c);
    this.#pump();
    return c.queuedSince === null;
  }

  /** A root loaded from the store: it waits again, or holds its slot again. */
  restore(c: LiveCommand): void {
    if (c.parentId !== null || c.terminal) return;
    if (c.queuedSince !== null) this.#enqueue(c);
    else if (this.limited) this.#hold(c);
  }

  /** Admits what there is room for (after restores, or a limit raised). */
  pump(): void {
    this.#pump();
  }

  /** Takes a root out of the queue (cancelled, or its lifetime is over): it holds no slot. */
  remove(c: LiveCommand): void {
    const entry = this.#entries.get(c);
    const q = this.#queues.get(c.type.name);
    if (entry && q?.remove(entry)) {
      this.#entries.delete(c);
      this.#queued--;
      if (q.length === 0) this.#queues.delete(c.type.name);
    }
    c.queuedSince = null;
  }

  /** A root ended: its slot frees. */
  ended(c: LiveCommand): void {
    if (!c.rootSlot) return;
    c.rootSlot = false;
    this.#running--;
    const t = c.type.name;
    const n = (this.#runningByType.get(t) ?? 1) - 1;
    if (n > 0) this.#runningByType.set(t, n);
    else this.#runningByType.delete(t);
    this.#pump();
  }

  /**
   * New limits. Roots already running are not counted when limits are first set (they were not
   * tracked): the counts start from the roots admitted from then on.
   */
  setLimits(limits: AdmissionLimits): void {
    this.#ageStepMs = limits.ageStepMs ?? DEFAULT_AGE_STEP_MS;
    this.#nodeLimit = limits.maxRunningRoots ?? null;
    this.#typeLimits = new Map(
      Object.entries(limits.types ?? {}).flatMap(([t, l]) =>
        l.maxRunning === undefined ? [] : [[t, l.maxRunning] as const],
      ),
    );
    this.#pump();
  }

  /**
   * The paused types, by name (all of them: a type left out is resumed). Roots of a type resumed
   * are admitted as the limits allow. As with limits, the roots running when the first pause or
   * limit is set are not counted.
   */
  setPaused(paused: ReadonlyMap<string, PausedType>): void {
    this.#paused = paused;
    this.#pump();
  }

  /** The pauses in force, by type name. */
  get paused(): ReadonlyMap<string, PausedType> {
    return this.#paused;
  }

  /** Where a queued root stands, or null. */
  position(c: LiveCommand): RootQueuePosition | null {
    const entry = this.#entries.get(c);
    if (!entry) return null;
    // Ahead: the queued roots of every type placed before it.
    let i = 0;
    for (const q of this.#queues.values()) i += q.before(entry);
    const typeLimit = this.#typeLimits.get(c.type.name) ?? null;
    const paused = this.#paused.get(c.type.name) ?? null;
    const what = [
      paused === null ? null : `${c.type.name} paused`,
      typeLimit === null ? null : `${c.type.name} limit ${typeLimit}`,
      this.#nodeLimit === null ? null : `node limit ${this.#nodeLimit}`,
    ].filter((x) => x !== null);
    return {
      ahead: i,
      typeLimit,
      nodeLimit: this.#nodeLimit,
      paused,
      text: `queued: ${i} ahead, ${what.join(', ')}`,
    };
  }

  /** Roots holding a slot and waiting, per type with a limit or waiting roots. */
  stats(): { running: number; queued: number; limit: number | null } {
    return { running: this.#running, queued: this.#queued, limit: this.#nodeLimit };
  }

  /**
   * Per command type with a limit, a pause, a running root or a waiting one: its limit, the roots
   * holding a slot, the roots waiting (metrics: queue depth per type) and its pause.
   */
  typeStats(): RootTypeStats[] {
    const types = new Set([
      ...this.#typeLimits.keys(),
      ...this.#paused.keys(),
      ...this.#runningByType.keys(),
      ...this.#queues.keys(),
    ]);
    return [...types].map((type) => ({
      type,
      limit: this.#typeLimits.get(type) ?? null,
      running: this.#runningByType.get(type) ?? 0,
      queued: this.#queues.get(type)?.length ?? 0,
      paused: this.#paused.get(type) ?? null,
    }));
  }

  #room(type: string): boolean {
    if (this.#paused.has(type)) return false;
    if (this.#nodeLimit !== null && this.#running >= this.#nodeLimit) return false;
    const tl = this.#typeLimits.get(type);
    return tl === undefined || (this.#runningByType.get(type) ?? 0) < tl;
  }

  #hold(c: LiveCommand): void {
    c.rootSlot = true;
    this.#running++;
    const t = c.type.name;
    this.#runningByType.set(t, (this.#runningByType.get(t) ?? 0) + 1);
  }

  #enqueue(c: LiveCommand): void {
    const entry = { c, key: (c.queuedSince ?? c.createdAt) - c.priority * this.#ageStepMs };
    const t = c.type.name;
    let q = this.#queues.get(t);
    if (!q) this.#queues.set(t, (q = new TypeQueue()));
    q.insert(entry);
    this.#entries.set(c, entry);
    this.#queued++;
  }

  /** Admits the best queued root that has room, again and again, while there is one. */
  #pump(): void {
    while (this.#queued > 0) {
      if (this.#nodeLimit !== null && this.#running >= this.#nodeLimit) return;
      let best: QueueEntry | null = null;
      for (const [type, q] of this.#queues) {
        const head = q.first();
        if (head && this.#room(type) && (best === null || before(head, best))) best = head;
      }
      if (best === null) return;
      const t = best.c.type.name;
      const q = this.#queues.get(t)!;
      q.take();
      this.#entries.delete(best.c);
      this.#queued--;
      if (q.length === 0) this.#queues.delete(t);
      best.c.queuedSince = null;
      this.#hold(best.c);
      this.#host.admitted(best.c);
    }
  }
}

/** A queued root and its place: `createdAt − priority × ageStepMs` (then its id). */
interface QueueEntry {
  readonly c: LiveCommand;
  readonly key: number;
}

/** Whether `a` is admitted before `b`. */
function before(a: QueueEntry, b: QueueEntry): boolean {
  return a.key < b.key || (a.key === b.key && a.c.id < b.c.id);
}

/**
 * One type's queued roots, best first: an array read from `head`, so that taking the best is
 * O(1) — `Array.shift` copies the whole array once it is large (V8 cannot trim the front of an
 * array in its large-object space): a resume admitting 100,000 waiting roots took 7 s that way.
 * The taken front is dropped once it is half the array.
 */
class TypeQueue {
  #items: QueueEntry[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  first(): QueueEntry | undefined {
    return this.#items[this.#head];
  }

  take(): void {
    this.#head++;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1_024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }

  insert(entry: QueueEntry): void {
    this.#items.splice(this.#head + this.before(entry), 0, entry);
  }

  /** Takes `entry` out; whether it was there. */
  remove(entry: QueueEntry): boolean {
    const i = this.#head + this.before(entry);
    if (this.#items[i] !== entry) return false;
    this.#items.splice(i, 1);
    return true;
  }

  /** How many of its entries are placed before `entry`. */
  before(entry: QueueEntry): number {
    const q = this.#items;
    let lo = this.#head;
    let hi = q.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(q[mid]!, entry)) lo = mid + 1;
      else hi = mid;
    }
    return lo - this.#head;
  }
}
