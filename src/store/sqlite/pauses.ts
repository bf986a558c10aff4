/**
 * The `paused_types` table of the SQLite store: command types paused by an operator (see
 * `Store.pauseType`). Written off the group-commit path — in the writer thread when the store has
 * one, as held marks are — and read at a start and by the API.
 *
 * @module
 */
import type Database from 'better-sqlite3';
import type { PausedType } from '../port.js';

/** The named writes of pauses, run by the writer thread (with the engine's statements) or inline. */
export const PAUSE_WRITES = {
  pauseType:
    'INSERT INTO paused_types (type, paused_at, paused_by, reason) VALUES (?, ?, ?, ?) ' +
    'ON CONFLICT (type) DO NOTHING',
  resumeType: 'DELETE FROM paused_types WHERE type = ?',
} as const;

/** The paused types' rows, by name (parsed by `store/rows/parse.ts` `pausedTypes`). */
export const LIST_PAUSED =
  'SELECT type, paused_at, paused_by, reason FROM paused_types ORDER BY type';

/** One paused type's row, if it is paused. */
export const GET_PAUSED =
  'SELECT type, paused_at, paused_by, reason FROM paused_types WHERE type = ?';

/** The values of `pauseType`. */
export function pauseRow(p: PausedType): unknown[] {
  return [p.type, p.pausedAt, p.by, p.reason];
}

/** Runs a named pause write inline; how many rows it changed. */
export function pauseWriteInline(
  db: Database.Database,
  write: keyof typeof PAUSE_WRITES,
  values: readonly unknown[],
): number {
  return db.prepare(PAUSE_WRITES[write]).run(...values).changes;
}
