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
 *
 * @module
 */
import { DEFAULT_AGE_STEP_MS, type AdmissionLimits } from './admission.js';
import type { LiveCommand } from './live.js';

/** Where a queued root stands. */
export interface RootQueuePosition {
  /** Queued roots admitted before it (by the current order). */
  readonly ahead: number;
  /** Its type's limit, and the node's, when set. */
  readonly typeLimit: number | null;
  readonly nodeLimit: number | null;
  /** "queued: 3 ahead, disk.migrate limit 8". */
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
  #ageStepMs = DEFAULT_AGE_STEP_MS;
  readonly #runningByType = new Map<string, number>();
  #running = 0;
  /** Queued roots, best first (kept sorted: queues of roots are short beside task queues). */
  readonly #queue: { readonly c: LiveCommand; readonly key: number }[] = [];

  constructor(host: RootAdmissionHost, limits: AdmissionLimits) {
    this.#host = host;
    this.setLimits(limits);
  }

  /** Whether any root limit is set (else roots are not tracked at all). */
  get limited(): boolean {
    return this.#nodeLimit !== null || this.#typeLimits.size > 0;
  }

  /** A new root: true if it may run now (it takes a slot), false if it was queued. */
  submit(c: LiveCommand, now: number): boolean {
    if (!this.limited) return true;
    if (this.#queue.length === 0 && this.#room(c.type.name)) {
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
    const i = this.#queue.findIndex((e) => e.c === c);
    if (i >= 0) this.#queue.splice(i, 1);
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

  /** Where a queued root stands, or null. */
  position(c: LiveCommand): RootQueuePosition | null {
    const i = this.#queue.findIndex((e) => e.c === c);
    if (i < 0) return null;
    const typeLimit = this.#typeLimits.get(c.type.name) ?? null;
    const what = [
      typeLimit === null ? null : `${c.type.name} limit ${typeLimit}`,
      this.#nodeLimit === null ? null : `node limit ${this.#nodeLimit}`,
    ].filter((x) => x !== null);
    return {
      ahead: i,
      typeLimit,
      nodeLimit: this.#nodeLimit,
      text: `queued: ${i} ahead, ${what.join(', ')}`,
    };
  }

  /** Roots holding a slot and waiting, per type with a limit or waiting roots. */
  stats(): { running: number; queued: number; limit: number | null } {
    return { running: this.#running, queued: this.#queue.length, limit: this.#nodeLimit };
  }

  /**
   * Per command type with a limit, a running root or a waiting one: its limit, the roots holding
   * a slot and the roots waiting (metrics: queue depth per type).
   */
  typeStats(): RootTypeStats[] {
    const types = new Set([...this.#typeLimits.keys(), ...this.#runningByType.keys()]);
    const queued = new Map<string, number>();
    for (const { c } of this.#queue) {
      types.add(c.type.name);
      queued.set(c.type.name, (queued.get(c.type.name) ?? 0) + 1);
    }
    return [...types].map((type) => ({
      type,
      limit: this.#typeLimits.get(type) ?? null,
      running: this.#runningByType.get(type) ?? 0,
      queued: queued.get(type) ?? 0,
    }));
  }

  #room(type: string): boolean {
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
    const key = (c.queuedSince ?? c.createdAt) - c.priority * this.#ageStepMs;
    const q = this.#queue;
    let lo = 0;
    let hi = q.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const e = q[mid]!;
      if (e.key < key || (e.key === key && e.c.id < c.id)) lo = mid + 1;
      else hi = mid;
    }
    q.splice(lo, 0, { c, key });
  }

  #pump(): void {
    for (let i = 0; i < this.#queue.length;) {
      if (this.#nodeLimit !== null && this.#running >= this.#nodeLimit) return;
      const { c } = this.#queue[i]!;
      if (!this.#room(c.type.name)) {
        i++;
        continue;
      }
      this.#queue.splice(i, 1);
      c.queuedSince = null;
      this.#hold(c);
      this.#host.admitted(c);
    }
  }
}
