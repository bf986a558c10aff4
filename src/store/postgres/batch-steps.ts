/**
 * The statements of one batch, in the port's order, as the applier sends them (applier.ts).
 *
 * Each table's rows go in one set-based statement (statements.ts); rows whose key appears twice
 * in a batch go in later *rounds* (an `UPDATE ... FROM unnest` sees each row once). Every
 * statement that must change a given number of rows carries that number and a label: the server
 * checks the count itself (`coco_expect`, migration 0004) and raises SQLSTATE CO002 naming the
 * label, because the statements are sent without waiting for each other's answers. The label
 * leads back to the step, whose `missing` query then names the row that was not there.
 *
 * @module
 */
import type pg from 'pg';
import type { EntityWrite } from '../../core/records.js';
import type { ChangeBatch } from '../port.js';
import { bigintArray } from './binary-arrays.js';
import {
  commandInsertParams,
  commandUpdateParams,
  entityPutParams,
  paramsUpgradeParams,
  taskInsertParams,
  taskUpdateParams,
  undoInsertParams,
  undoUpdateParams,
  type Sql,
} from './statements.js';

/** SQLSTATE of a row-count check that failed (`coco_expect`). */
export const ROW_COUNT_SQLSTATE = 'CO002';
const ROW_COUNT_PREFIX = 'ROW_COUNT|';

/** One statement of a batch. */
export interface Step {
  readonly name: keyof Sql;
  readonly values: unknown[];
  /** Set on statements that check their row count: the label their CO002 error names. */
  readonly label?: string;
  /** Names the first row the statement expected and did not find (read after the rollback). */
  missing?(client: pg.PoolClient): Promise<string>;
}

/** The label of a failed row-count check, or null if `error` is not one. */
export function rowCountLabel(error: unknown): string | null {
  const e = error as { code?: unknown; message?: unknown } | null;
  if (e?.code !== ROW_COUNT_SQLSTATE || typeof e.message !== 'string') return null;
  if (!e.message.startsWith(ROW_COUNT_PREFIX)) return null;
  return e.message.slice(ROW_COUNT_PREFIX.length).split('|')[0] ?? null;
}

/**
 * The rows, split so that no key appears twice in a round (later rounds run later). Nearly
 * always one round: the rows themselves, once a pass over their keys found no key twice.
 */
function rounds<T>(rows: readonly T[], key: (r: T) => string | number): (readonly T[])[] {
  if (rows.length === 0) return [];
  SEEN.clear(rows.length);
  for (const r of rows) {
    const k = key(r);
    if (typeof k === 'number' ? !SEEN.add(k) : !SEEN.addName(k)) return splitRounds(rows, key);
  }
  return [rows];
}

/**
 * Most slots {@link SeenKeys} keeps between statements: 2^17 (1.5 MB), for statements of up to
 * 65,536 rows — twenty times a busy node's batch (`maxBatchRows`). A bigger statement (a batch
 * that takes everything queued behind a stalled store) gets a table sized for it, given back at
 * the next statement that fits, rather than one kept for the life of the process.
 */
const SEEN_KEPT_SLOTS = 2 ** 17;

/**
 * The keys {@link rounds} has seen in its current pass: numbers in an open-addressing table kept
 * from call to call (a slot counts as taken only if stamped with the pass's number, so a new pass
 * clears nothing), names — rare — in a set. A fresh `Set` per statement, grown key by key, was
 * ~2 % of a PostgreSQL fan-out node's allocation; without it `batchSteps` takes 3–7 % less CPU
 * over a captured run's batches (BENCHMARKS.md, issue 15 at stop 29).
 */
class SeenKeys {
  #keys = new Float64Array(0);
  #stamps = new Uint32Array(0);
  #pass = 0;
  #shift = 32;
  #names: Set<string> | null = null;

  /** Starts a pass that will see at most `n` keys. */
  clear(n: number): void {
    // At most half full: probes stay short.
    const size = 2 ** Math.max(4, Math.ceil(Math.log2(2 * n)));
    if (this.#keys.length < size || this.#keys.length > Math.max(size, SEEN_KEPT_SLOTS)) {
      this.#keys = new Float64Array(size);
      this.#stamps = new Uint32Array(size);
      this.#shift = 32 - Math.log2(size);
      this.#pass = 0;
    }
    if (++this.#pass === 0xffffffff) {
      this.#stamps.fill(0);
      this.#pass = 1;
    }
    this.#names?.clear();
  }

  /** Adds a number key; false if this pass had seen it. */
  add(k: number): boolean {
    const keys = this.#keys;
    const stamps = this.#stamps;
    const mask = keys.length - 1;
    // Fibonacci hashing of both 32-bit halves (task keys are id × 2^16 + ordinal).
    let h = Math.imul((k | 0) ^ ((k / 4294967296) | 0), 0x9e3779b1) >>> this.#shift;
    while (stamps[h] === this.#pass) {
      if (keys[h] === k) return false;
      h = (h + 1) & mask;
    }
    stamps[h] = this.#pass;
    keys[h] = k;
    return true;
  }

  /** Adds a name key; false if this pass had seen it. */
  addName(k: string): boolean {
    const names = (this.#names ??= new Set());
    const size = names.size;
    return names.add(k).size !== size;
  }
}

const SEEN = new SeenKeys();

function splitRounds<T>(rows: readonly T[], key: (r: T) => string | number): T[][] {
  const seen = new Map<string | number, number>();
  const out: T[][] = [];
  for (const r of rows) {
    const k = key(r);
    const i = seen.get(k) ?? 0;
    seen.set(k, i + 1);
    (out[i] ??= []).push(r);
  }
  return out;
}

/** Ordinals below this make a task's key a number (no string built per row). */
const ORDINALS = 2 ** 16;
/** Command ids below this too: id × ORDINALS + ordinal stays a safe integer. */
const NUMERIC_KEY_IDS = Number.MAX_SAFE_INTEGER / ORDINALS;

/** A task's or undo step's key: a number when it fits one, else a string (the two never equal). */
function taskKey(r: { commandId: number; ordinal: number }): string | number {
  const { commandId: id, ordinal } = r;
  return Number.isInteger(id) &&
    id >= 0 &&
    id < NUMERIC_KEY_IDS &&
    Number.isInteger(ordinal) &&
    ordinal >= 0 &&
    ordinal < ORDINALS
    ? id * ORDINALS + ordinal
    : `${id}/${ordinal}`;
}

/** Entity writes reduced to the last one of each record (the outcome of applying them in order). */
function lastWrites(writes: readonly EntityWrite[]): {
  puts: EntityWrite[];
  deletes: EntityWrite[];
} {
  const last = new Map<string, EntityWrite>();
  for (const w of writes) {
    const key = JSON.stringify([w.kind, w.id]);
    last.delete(key);
    last.set(key, w);
  }
  const puts: EntityWrite[] = [];
  const deletes: EntityWrite[] = [];
  for (const w of last.values()) (w.value === null ? deletes : puts).push(w);
  return { puts, deletes };
}

/** The batch's statements, in the port's order (the fencing statement is the applier's). */
export function batchSteps(sql: Sql, b: ChangeBatch, owner: string | null): Step[] {
  const steps: Step[] = [];
  const plain = (name: keyof Sql, values: unknown[]): void => void steps.push({ name, values });
  const checked = (
    name: keyof Sql,
    values: unknown[],
    expected: number,
    missing: Step['missing'],
  ): void => {
    const label = `${name}#${steps.length}`;
    steps.push({ name, values: [...values, expected, label], label, missing });
  };
  const firstRow = async (
    client: pg.PoolClient,
    text: string,
    values: unknown[],
  ): Promise<string> => {
    const r = await client.query({ text, values, rowMode: 'array' });
    const row = r.rows[0] as unknown[] | undefined;
    return row ? row.map(String).join('/') : '?';
  };
  const missingCommand =
    (ids: readonly number[]) =>
    (client: pg.PoolClient): Promise<string> =>
      firstRow(client, sql.missingCommand, [ids]);
  const missingKey =
    (text: string, rows: readonly { commandId: number; ordinal: number }[]) =>
    (client: pg.PoolClient): Promise<string> =>
      firstRow(client, text, [rows.map((r) => r.commandId), rows.map((r) => r.ordinal)]);

  if (b.commandInserts.length > 0)
    plain('insertCommands', commandInsertParams(b.commandInserts, owner));
  if (b.taskInserts.length > 0) plain('insertTasks', taskInsertParams(b.taskInserts));
  if (b.undoInserts.length > 0) plain('insertUndo', undoInsertParams(b.undoInserts));
  for (const round of rounds(b.commandUpdates, (u) => u.id)) {
    const ids = round.map((u) => u.id);
    checked('updateCommands', commandUpdateParams(round, owner), round.length, missingCommand(ids));
  }
  for (const round of rounds(b.taskUpdates, taskKey)) {
    const missing = missingKey(sql.missingTask, round);
    checked('updateTasks', taskUpdateParams(round), round.length, missing);
  }
  for (const round of rounds(b.undoUpdates, taskKey)) {
    const missing = missingKey(sql.missingUndo, round);
    checked('updateUndo', undoUpdateParams(round), round.length, missing);
  }
  if (b.commandsSettled.length > 0) {
    const ids = [...new Set(b.commandsSettled)];
    checked('settleCommands', [bigintArray(ids)], ids.length, missingCommand(ids));
  }
  for (const round of rounds(b.paramsUpgrades, (p) => p.id)) {
    const ids = round.map((p) => p.id);
    checked('upgradeParams', paramsUpgradeParams(round), round.length, missingCommand(ids));
  }
  if (b.entityWrites.length > 0) {
    const { puts, deletes } = lastWrites(b.entityWrites);
    if (puts.length > 0) plain('putEntities', entityPutParams(puts));
    if (deletes.length > 0)
      plain('deleteEntities', [deletes.map((w) => w.kind), deletes.map((w) => w.id)]);
  }
  return steps;
}
