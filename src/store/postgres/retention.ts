/**
 * Retention on the PostgreSQL store ({@link Store.prune}). Many nodes share the schema: they
 * write their trees and claim each other's while any of them prunes, and several may prune at
 * once. One statement does a call's whole work, in one snapshot and one transaction:
 *
 * 1. **Candidates**: the oldest roots that ended before the cutoff, are not active and have no
 *    active descendant (through the partial index commands_ended_roots), locked
 *    `FOR UPDATE SKIP LOCKED`: a root another pruner or a claim holds is passed over, so two
 *    pruners split the trees between them instead of waiting or both half-taking one.
 * 2. **Every command row of those trees**, locked `FOR UPDATE SKIP LOCKED` as well, and the rule
 *    checked again on what was locked — the rows' newest versions: a tree is deleted only if the
 *    lock took as many rows as the tree has and none of them is active. A row a writer holds
 *    (a node's batch, a claim moving the tree's owner) makes the tree wait for a later call; a
 *    tree is never half-deleted, and no batch can change it until the deletes commit.
 * 3. **The deletes**: tasks, undo steps, relayed task reports and cancel requests of those
 *    commands, then the commands; and reports relayed for commands that no longer exist (a
 *    poller's answer posted just after its tree went). Entities and everything else stay.
 *
 * The engine never writes a tree once it has settled (no command of it is active: each one has
 * left memory, and only an active parent could add children or compensate), so in practice the
 * locks only meet trees that are still finishing, which the rule passes over anyway.
 *
 * @module
 */
import { quoteIdent } from '../../db/postgres.js';
import type { PruneBatch, PruneCursor, PruneOptions } from '../port.js';

/**
 * Stray relayed reports (see the `prune` statement) deleted per call at most: they are rare
 * (a poll answered across a prune), and the bound keeps a call's work small whatever happened.
 */
const STRAY_REPORTS = 1_000;

/** Before every tree, in (ended at, root id) order. */
const START: PruneCursor = { endedAt: Number.MIN_SAFE_INTEGER, rootId: 0 };

/**
 * The two statements of retention for one schema. Parameters: $1 the cutoff, $2 and $3 the
 * cursor (ended at, root id), $4 the limit.
 */
export function buildRetentionSql(schema: string) {
  const s = quoteIdent(schema);
  const commands = `${s}.commands`;
  // The oldest prunable roots after the cursor; `lock` takes them FOR UPDATE SKIP LOCKED.
  const candidates = (limit: string, lock: boolean): string =>
    `SELECT r.id, r.ended_at FROM ${commands} r ` +
    'WHERE r.parent_id IS NULL AND NOT r.active AND r.ended_at < $1 ' +
    'AND (r.ended_at, r.id) > ($2::bigint, $3::bigint) ' +
    `AND NOT EXISTS (SELECT 1 FROM ${commands} d WHERE d.root_id = r.id AND d.active) ` +
    `ORDER BY r.ended_at, r.id LIMIT ${limit}${lock ? ' FOR UPDATE OF r SKIP LOCKED' : ''}`;
  // Whether a prunable root remains after the last candidate (the next call's cursor).
  const moreAfter = (last: string): string =>
    `EXISTS (SELECT 1 FROM ${commands} r WHERE r.parent_id IS NULL AND NOT r.active AND r.ended_at < $1 ` +
    `AND (r.ended_at, r.id) > (SELECT ended_at, id FROM ${last}) ` +
    `AND NOT EXISTS (SELECT 1 FROM ${commands} d WHERE d.root_id = r.id AND d.active))`;
  const lastOf = (set: string): string =>
    `(SELECT ended_at, id FROM ${set} ORDER BY ended_at DESC, id DESC LIMIT 1)`;
  return {
    prune:
      `WITH cand AS (${candidates('$4', true)}), ` +
      `locked AS (SELECT c.id, c.root_id, c.active FROM ${commands} c ` +
      'WHERE c.root_id IN (SELECT id FROM cand) ORDER BY c.id FOR UPDATE OF c SKIP LOCKED), ' +
      `counted AS (SELECT c.root_id, count(*) AS n FROM ${commands} c ` +
      'WHERE c.root_id IN (SELECT id FROM cand) GROUP BY c.root_id), ' +
      'trees AS (SELECT l.root_id AS id FROM locked l JOIN counted k ON k.root_id = l.root_id ' +
      'GROUP BY l.root_id, k.n HAVING count(*) = k.n AND NOT bool_or(l.active)), ' +
      'doomed AS (SELECT l.id FROM locked l WHERE l.root_id IN (SELECT id FROM trees)), ' +
      `gone_tasks AS (DELETE FROM ${s}.tasks t WHERE t.command_id IN (SELECT id FROM doomed) RETURNING 1), ` +
      `gone_undo AS (DELETE FROM ${s}.undo_steps u WHERE u.command_id IN (SELECT id FROM doomed) RETURNING 1), ` +
      `gone_reports AS (DELETE FROM ${s}.task_reports p WHERE p.command_id IN (SELECT id FROM doomed)), ` +
      `gone_cancels AS (DELETE FROM ${s}.cancel_requests q WHERE q.command_id IN (SELECT id FROM doomed)), ` +
      `gone_slots AS (DELETE FROM ${s}.admission_slots a WHERE a.command_id IN (SELECT id FROM doomed)), ` +
      `gone_held AS (DELETE FROM ${s}.held_trees h WHERE h.root_id IN (SELECT id FROM trees)), ` +
      `gone_reruns AS (DELETE FROM ${s}.reruns x WHERE x.root_id IN (SELECT id FROM trees)), ` +
      // A report a poller relayed just after its tree was pruned (read before the prune, posted
      // after) names a command that no longer exists: no owner ever takes it, so it goes here.
      `stray_reports AS (DELETE FROM ${s}.task_reports p WHERE (p.command_id, p.ordinal) IN (` +
      `SELECT x.command_id, x.ordinal FROM ${s}.task_reports x WHERE NOT EXISTS ` +
      `(SELECT 1 FROM ${commands} c WHERE c.id = x.command_id) LIMIT ${STRAY_REPORTS})), ` +
      `gone AS (DELETE FROM ${commands} c WHERE c.id IN (SELECT id FROM doomed) RETURNING c.root_id) ` +
      "SELECT coalesce((SELECT array_agg(DISTINCT root_id ORDER BY root_id) FROM gone), '{}') AS roots, " +
      '(SELECT count(*) FROM gone)::int AS commands, (SELECT count(*) FROM gone_tasks)::int AS tasks, ' +
      '(SELECT count(*) FROM gone_undo)::int AS undo, ' +
      `(SELECT ended_at FROM ${lastOf('cand')} l) AS last_ended, (SELECT id FROM ${lastOf('cand')} l) AS last_id, ` +
      `${moreAfter(`${lastOf('cand')} l`)} AS more`,
    dryRun:
      `WITH cand AS (${candidates('$4', false)}), ` +
      `tree AS (SELECT c.id FROM ${commands} c WHERE c.root_id IN (SELECT id FROM cand)) ` +
      "SELECT coalesce((SELECT array_agg(id ORDER BY id) FROM cand), '{}') AS roots, " +
      '(SELECT count(*) FROM tree)::int AS commands, ' +
      `(SELECT count(*) FROM ${s}.tasks t WHERE t.command_id IN (SELECT id FROM tree))::int AS tasks, ` +
      `(SELECT count(*) FROM ${s}.undo_steps u WHERE u.command_id IN (SELECT id FROM tree))::int AS undo, ` +
      `(SELECT ended_at FROM ${lastOf('cand')} l) AS last_ended, (SELECT id FROM ${lastOf('cand')} l) AS last_id, ` +
      `${moreAfter(`${lastOf('cand')} l`)} AS more`,
  };
}

/** The SQL of retention, see {@link buildRetentionSql}. */
export type RetentionSql = ReturnType<typeof buildRetentionSql>;

/** The statement and parameters of one prune call. */
export function pruneQuery(
  sql: RetentionSql,
  o: PruneOptions,
): { text: string; values: unknown[] } {
  const after = o.after ?? START;
  return {
    text: o.dryRun === true ? sql.dryRun : sql.prune,
    values: [o.endedBefore, after.endedAt, after.rootId, o.limit],
  };
}

function int(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}

/** The batch a prune statement's one row describes. */
export function pruneResult(row: Record<string, unknown> | undefined): PruneBatch {
  const roots = Array.isArray(row?.roots) ? row.roots.map(int) : [];
  const lastEnded = row?.last_ended;
  const lastId = row?.last_id;
  return {
    rootIds: roots,
    trees: roots.length,
    commands: int(row?.commands ?? 0),
    tasks: int(row?.tasks ?? 0),
    undo: int(row?.undo ?? 0),
    more: row?.more === true,
    next:
      lastEnded === null || lastEnded === undefined || lastId === null || lastId === undefined
        ? null
        : { endedAt: int(lastEnded), rootId: int(lastId) },
  };
}
