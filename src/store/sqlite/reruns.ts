/**
 * The `reruns` table of the SQLite store: which ended root a rerun ran again (see
 * `Store.linkRerun`). Written off the group-commit path — in the writer thread when the store has
 * one, as held marks are — and read by a command's detail.
 *
 * @module
 */
import type Database from 'better-sqlite3';
import type { RerunLinks } from '../port.js';

/** The named write of a link, run by the writer thread (with the engine's statements) or inline. */
export const RERUN_WRITES = {
  linkRerun:
    'INSERT INTO reruns (root_id, rerun_of, linked_at) SELECT ?, ?, ? ' +
    'WHERE EXISTS (SELECT 1 FROM commands WHERE id = ? AND parent_id IS NULL) ' +
    'ON CONFLICT (root_id) DO NOTHING',
} as const;

/** The values of `linkRerun`. */
export function linkRow(rootId: number, rerunOf: number, at: number): unknown[] {
  return [rootId, rerunOf, at, rootId];
}

/** Runs `linkRerun` inline. */
export function linkInline(db: Database.Database, values: readonly unknown[]): void {
  db.prepare(RERUN_WRITES.linkRerun).run(...values);
}

/** Reads a root's links (both ways). */
export function readLinks(db: Database.Database, id: number): RerunLinks {
  const of = db.prepare('SELECT rerun_of FROM reruns WHERE root_id = ?').pluck().get(id);
  const reruns = db
    .prepare('SELECT root_id FROM reruns WHERE rerun_of = ? ORDER BY root_id')
    .pluck()
    .all(id);
  return {
    rerunOf: typeof of === 'number' ? of : null,
    reruns: reruns.filter((r): r is number => typeof r === 'number'),
  };
}
