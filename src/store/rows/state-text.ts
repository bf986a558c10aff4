/**
 * The `state` column's text of a command row (`commandState`, columns.ts), from a small cache of
 * the texts made last — for both stores' batch statements. A command's bookkeeping goes through
 * the same few states as every other command of its type (a chain's children are inserted with
 * one state and end with another; its parents pass stage 1, 2, … alike), so most rows of a batch
 * repeat a text made for an earlier row: `JSON.stringify` of the 18-value array was 9 % of the
 * main thread's busy time in the SQLite chain benchmark, and 5.6 KB of its allocation per chain
 * (the array, the stringifier's buffer, the text), for ~16 texts per chain nearly all of them
 * repeats; on PostgreSQL 4 % of a fan-out node's main thread (BENCHMARKS.md).
 *
 * Only states whose every field is a number, a flag or null-by-default are cached (no error, no
 * data, no timestamps: those vary from command to command); the others are made every time. A hit
 * compares every cached field, so the text is always the one `commandState` makes. The SQLite
 * writer thread's columns send a cached text once per operation ({@link addStateText}).
 *
 * @module
 */
import type { CommandUpdate } from '../port.js';
import { commandState } from './columns.js';

/**
 * Where {@link addStateText} puts a text: the next parameter of a statement, as any text or as
 * one many rows repeat (the SQLite store's `ValueSink`).
 */
export interface StateTextSink {
  /** The next parameter. */
  add(value: unknown): void;
  /** The next parameter, a text many rows repeat. */
  addShared(text: string): void;
}

/**
 * How the cache treats each field of the state (`COMMAND_STATE_FIELDS`): the fields a cached
 * text is keyed by (`cached` compares each), and those whose presence keeps a state out of the
 * cache (`cacheable`). Together they must be every field of the state — a field added to the
 * state but to neither list would be left out of the key, and a cached text could be another
 * state's (test/unit/store/state-text.test.ts checks the two lists cover the state).
 */
export const STATE_FIELDS_KEYED = [
  'expectedTasks', 'expectedChildren', 'taskCount', 'childCount', 'undoCount', 'journalSeq',
  'stage', 'stageDone', 'chainDone', 'cancelRequested', 'attempts', 'priority',
] as const; // prettier-ignore
/** See {@link STATE_FIELDS_KEYED}. */
export const STATE_FIELDS_UNCACHED = [
  'compensationError', 'data', 'lastError', 'nextAttemptAt', 'deadlineAt', 'queuedSince',
] as const; // prettier-ignore

/** The numbers a cached state is keyed by (see `cached`; the three flags share one). */
const KEY_WIDTH = 10;
/** Entries of the cache: a power of two (the hash is masked). */
const SLOTS = 256;

/**
 * The cache, direct-mapped: slot `h` holds the key of the text at `TEXTS[h]` (a slot's newest
 * occupant wins). One typed array, no object per entry.
 */
const KEYS = new Float64Array(SLOTS * KEY_WIDTH);
const TEXTS: (string | null)[] = new Array<string | null>(SLOTS).fill(null);

/** Hits and misses since the start (tests, measurements). */
export const stateTextStats = { hits: 0, misses: 0, uncached: 0 };

/** Whether `u`'s state may be cached: no error, no data, no time (see the module's note). */
function cacheable(u: CommandUpdate): boolean {
  return (
    u.compensationError === null &&
    (u.data === null || u.data === undefined) &&
    u.lastError === null &&
    u.nextAttemptAt === null &&
    u.deadlineAt === null &&
    u.queuedSince === null
  );
}

/**
 * `commandState(u)`: the same text, taken from the cache when `u`'s state was made before (see
 * the module's note).
 */
export function stateText(u: CommandUpdate): string {
  if (cacheable(u)) return cached(u);
  stateTextStats.uncached++;
  return commandState(u);
}

/**
 * Adds `u`'s state text to `out`: as a text many rows repeat (sent once per operation) when it
 * is one the cache holds, else as any other text (one made for this command alone, with an error,
 * data or a time, would be looked up for nothing).
 */
export function addStateText(u: CommandUpdate, out: StateTextSink): void {
  if (cacheable(u)) out.addShared(cached(u));
  else {
    stateTextStats.uncached++;
    out.add(commandState(u));
  }
}

/** The text of a cacheable state, from the cache or made now and kept there. */
function cached(u: CommandUpdate): string {
  const k0 = u.expectedTasks;
  const k1 = u.expectedChildren;
  const k2 = u.taskCount;
  const k3 = u.childCount;
  const k4 = u.undoCount;
  const k5 = u.journalSeq;
  const k6 = u.stage;
  const k7 = (u.stageDone ? 1 : 0) | (u.chainDone ? 2 : 0) | (u.cancelRequested ? 4 : 0);
  const k8 = u.attempts;
  const k9 = u.priority;
  let h = Math.imul(k0 | 0, 0x9e3779b1);
  h = Math.imul(h ^ (k1 | 0), 0x85ebca6b);
  h = Math.imul(h ^ (k2 | 0), 0xc2b2ae35);
  h = Math.imul(h ^ (k3 | 0), 0x27d4eb2f);
  h = Math.imul(h ^ (k4 | 0), 0x165667b1);
  h = Math.imul(h ^ (k5 | 0), 0x9e3779b1);
  h = Math.imul(h ^ (k6 | 0), 0x85ebca6b);
  h = Math.imul(h ^ k7, 0xc2b2ae35);
  h = Math.imul(h ^ (k8 | 0), 0x27d4eb2f);
  h = Math.imul(h ^ (k9 | 0), 0x165667b1);
  const slot = (h ^ (h >>> 15)) & (SLOTS - 1);
  const at = slot * KEY_WIDTH;
  const text = TEXTS[slot];
  if (
    text != null &&
    KEYS[at] === k0 &&
    KEYS[at + 1] === k1 &&
    KEYS[at + 2] === k2 &&
    KEYS[at + 3] === k3 &&
    KEYS[at + 4] === k4 &&
    KEYS[at + 5] === k5 &&
    KEYS[at + 6] === k6 &&
    KEYS[at + 7] === k7 &&
    KEYS[at + 8] === k8 &&
    KEYS[at + 9] === k9
  ) {
    stateTextStats.hits++;
    return text;
  }
  stateTextStats.misses++;
  const made = commandState(u);
  KEYS[at] = k0;
  KEYS[at + 1] = k1;
  KEYS[at + 2] = k2;
  KEYS[at + 3] = k3;
  KEYS[at + 4] = k4;
  KEYS[at + 5] = k5;
  KEYS[at + 6] = k6;
  KEYS[at + 7] = k7;
  KEYS[at + 8] = k8;
  KEYS[at + 9] = k9;
  TEXTS[slot] = made;
  return made;
}
