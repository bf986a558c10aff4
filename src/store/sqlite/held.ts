/**
 * The `held_trees` table of the SQLite store: the trees of commands whose changes the store
 * refused (see `Store.holdTrees`). Written off the group-commit path — in the writer thread when
 * the store has one, as agents' rows are — and read at a start.
 *
 * @module
 */
import type Database from 'better-sqlite3';
import type { HoldRequest } from '../port.js';

/** The named write of a hold, run by the writer thread (with the engine's statements) or inline. */
export const HELD_WRITES = {
  holdTree:
    'INSERT INTO held_trees (root_id, error, refusals, held_at) SELECT ?, ?, 1, ? ' +
    'WHERE EXISTS (SELECT 1 FROM commands WHERE id = ? AND parent_id IS NULL) ' +
    'ON CONFLICT (root_id) DO UPDATE SET error = excluded.error, refusals = refusals + 1, ' +
    'held_at = excluded.held_at',
  releaseTree: 'DELETE FROM held_trees WHERE root_id = ?',
} as const;

/** The held trees' rows, by root id (parsed by `store/rows/parse.ts` `heldTrees`). */
export const LIST_HELD =
  'SELECT root_id, error, refusals, held_at FROM held_trees ORDER BY root_id';

/** The values of `holdTree` for each tree. */
export function holdRows(trees: readonly HoldRequest[], at: number): unknown[][] {
  return trees.map((t) => [t.rootId, JSON.stringify(t.error), at, t.rootId]);
}

/** Deletes a tree's mark inline; whether there was one. */
export function releaseInline(db: Database.Database, rootId: number): boolean {
  return db.prepare(HELD_WRITES.releaseTree).run(rootId).changes > 0;
}

/** Runs the holds inline, in one transaction. */
export function holdInline(db: Database.Database, rows: readonly (readonly unknown[])[]): void {
  const hold = db.prepare(HELD_WRITES.holdTree);
  db.transaction(() => {
    for (const values of rows) hold.run(values);
  }).immediate();
}
