/**
 * Retention on the SQLite store ({@link Store.prune}): which trees may go, and deleting them.
 *
 * The store has one writer, the engine's (its writer thread, or the main connection with inline
 * writes). The candidates are read on the main connection (a WAL reader: it never waits), then
 * the deletes run as one counted write in that same writer, queued behind the batches already
 * sent — so a prune never contends with the engine for SQLite's write lock and never blocks the
 * event loop waiting for it. Each delete statement carries the whole rule again (the root ended
 * before the cutoff and is not active, no command of the tree is active), evaluated inside the
 * write transaction: a tree that changed between the read and the write is left whole.
 *
 * @module
 */
import type Database from 'better-sqlite3';
import type { PruneBatch, PruneCursor, PruneOptions } from '../port.js';
import type { WriteOp } from './writer.js';

type Stmt = Database.Statement<unknown[], unknown>;

/** Before every tree, in (ended at, root id) order. */
const START: PruneCursor = { endedAt: Number.MIN_SAFE_INTEGER, rootId: 0 };

/** An active descendant of the tree of root `?` (through the partial index commands_root). */
const ACTIVE_DESCENDANT =
  'SELECT 1 FROM commands d WHERE d.parent_id IS NOT NULL AND d.root_id = ? AND d.active = 1';
/** Every command id of the tree of root `?` (bound twice): the root, then its descendants. */
const TREE_IDS =
  'SELECT ? UNION ALL SELECT d.id FROM commands d WHERE d.parent_id IS NOT NULL AND d.root_id = ?';
/** The rule, for root `?`, cutoff `?`, root `?`: the tree is prunable now. */
const PRUNABLE =
  'EXISTS (SELECT 1 FROM commands r WHERE r.id = ? AND r.parent_id IS NULL AND r.active = 0 AND r.ended_at < ?) ' +
  `AND NOT EXISTS (${ACTIVE_DESCENDANT})`;

/**
 * The deletes, run by the store's writer (the writer thread knows them by name). One row of
 * values per tree, see {@link pruneOps}; tasks and undo steps first, the root last, so that
 * every statement still finds the root its rule checks.
 */
export const PRUNE_WRITES = {
  pruneHeld: `DELETE FROM held_trees WHERE root_id = ? AND ${PRUNABLE}`,
  pruneReruns: `DELETE FROM reruns WHERE root_id = ? AND ${PRUNABLE}`,
  pruneTasks: `DELETE FROM tasks WHERE command_id IN (${TREE_IDS}) AND ${PRUNABLE}`,
  pruneUndo: `DELETE FROM undo_steps WHERE command_id IN (${TREE_IDS}) AND ${PRUNABLE}`,
  pruneChildren: `DELETE FROM commands WHERE parent_id IS NOT NULL AND root_id = ? AND ${PRUNABLE}`,
  pruneRoot:
    'DELETE FROM commands WHERE id = ? AND parent_id IS NULL AND active = 0 AND ended_at < ? ' +
    `AND NOT EXISTS (${ACTIVE_DESCENDANT})`,
} as const;

/**
 * The reads: the oldest prunable roots after a cursor (through commands_ended_roots, so a call
 * reads what it deletes rather than the commands kept), and a tree's row counts (dry runs).
 */
export const PRUNE_READS = {
  pruneCandidates:
    'SELECT r.id, r.ended_at FROM commands r INDEXED BY commands_ended_roots ' +
    'WHERE r.parent_id IS NULL AND r.active = 0 AND r.ended_at < ? AND (r.ended_at, r.id) > (?, ?) ' +
    'AND NOT EXISTS (SELECT 1 FROM commands d WHERE d.parent_id IS NOT NULL AND d.root_id = r.id AND d.active = 1) ' +
    'ORDER BY r.ended_at, r.id LIMIT ?',
  pruneCount:
    'SELECT 1 + (SELECT count(*) FROM commands d WHERE d.parent_id IS NOT NULL AND d.root_id = ?), ' +
    `(SELECT count(*) FROM tasks t WHERE t.command_id IN (${TREE_IDS})), ` +
    `(SELECT count(*) FROM undo_steps u WHERE u.command_id IN (${TREE_IDS}))`,
} as const;

/** The prepared statements of retention, on one connection. */
export type RetentionStatements = {
  readonly [K in keyof typeof PRUNE_WRITES | keyof typeof PRUNE_READS]: Stmt;
};

/** Prepares the reads (and, for inline writes, the deletes) on the main connection. */
export function prepareRetention(db: Database.Database): RetentionStatements {
  const out: Partial<Record<keyof RetentionStatements, Stmt>> = {};
  for (const [name, sql] of Object.entries({ ...PRUNE_WRITES, ...PRUNE_READS })) {
    const stmt = db.prepare<unknown[], unknown>(sql);
    if (name in PRUNE_READS) stmt.raw(true);
    out[name as keyof RetentionStatements] = stmt;
  }
  return out as RetentionStatements;
}

/** A root the prune may delete. */
export interface Candidate {
  readonly id: number;
  readonly endedAt: number;
}

/** The candidates of one call, and what comes after them. */
export interface Candidates {
  readonly roots: readonly Candidate[];
  readonly more: boolean;
  readonly next: PruneCursor | null;
}

/** Reads up to `limit` candidates (one more, to know whether others remain). */
export function readCandidates(q: RetentionStatements, o: PruneOptions): Candidates {
  const after = o.after ?? START;
  const rows = q.pruneCandidates.all(o.endedBefore, after.endedAt, after.rootId, o.limit + 1) as [
    number,
    number,
  ][];
  const roots = rows.slice(0, o.limit).map(([id, endedAt]) => ({ id, endedAt }));
  const last = roots.at(-1);
  return {
    roots,
    more: rows.length > o.limit,
    next: last === undefined ? null : { endedAt: last.endedAt, rootId: last.id },
  };
}

/** A dry run: the row counts of the candidates' trees. */
export function countTrees(q: RetentionStatements, c: Candidates): PruneBatch {
  let commands = 0;
  let tasks = 0;
  let undo = 0;
  for (const { id } of c.roots) {
    const [n, t, u] = q.pruneCount.get(id, id, id, id, id) as [number, number, number];
    commands += n;
    tasks += t;
    undo += u;
  }
  const rootIds = c.roots.map((r) => r.id).sort((a, b) => a - b);
  return { rootIds, trees: rootIds.length, commands, tasks, undo, more: c.more, next: c.next };
}

/** The deletes of the candidates' trees, as writer operations (see {@link PRUNE_WRITES}). */
export function pruneOps(c: Candidates, endedBefore: number): WriteOp[] {
  const ids = c.roots.map((r) => r.id);
  const guard = (id: number): unknown[] => [id, endedBefore, id];
  return [
    ['pruneHeld', ids.map((id) => [id, ...guard(id)]), false],
    ['pruneReruns', ids.map((id) => [id, ...guard(id)]), false],
    ['pruneTasks', ids.map((id) => [id, id, ...guard(id)]), false],
    ['pruneUndo', ids.map((id) => [id, id, ...guard(id)]), false],
    ['pruneChildren', ids.map((id) => [id, ...guard(id)]), false],
    ['pruneRoot', ids.map((id) => [id, endedBefore, id]), false],
  ];
}

/** Runs {@link pruneOps} inline (no writer thread): the caller runs it in a write transaction. */
export function runInline(q: RetentionStatements, ops: readonly WriteOp[]): number[][] {
  return ops.map(([name, rows]) =>
    rows.map((values) => q[name as keyof typeof PRUNE_WRITES].run(values).changes),
  );
}

/** What the deletes did, from the rows each changed (in the order of {@link pruneOps}). */
export function deleted(c: Candidates, changes: readonly (readonly number[])[]): PruneBatch {
  // (The first lists: the held marks and the rerun links deleted with their trees.)
  const [, , tasks = [], undo = [], children = [], roots = []] = changes;
  const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
  const rootIds = c.roots
    .filter((_, i) => roots[i] === 1)
    .map((r) => r.id)
    .sort((a, b) => a - b);
  return {
    rootIds,
    trees: rootIds.length,
    commands: sum(children) + sum(roots),
    tasks: sum(tasks),
    undo: sum(undo),
    more: c.more,
    next: c.next,
  };
}
