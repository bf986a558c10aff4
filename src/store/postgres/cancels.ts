/**
 * Cancel requests between nodes ({@link SharedStore.requestCancel}): the node a user asked
 * stores the request and signals the command's owner, which cancels it and drops the request.
 *
 * @module
 */
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { SharedDb } from './shared.js';
import { quoteIdent } from '../../db/postgres.js';
import { channelOf } from './listen.js';

/** The cancel requests' SQL for one schema. */
export function buildCancelSql(schema: string) {
  const s = quoteIdent(schema);
  return {
    // Only a command still running (pending or waiting) can be asked to cancel; the owner is
    // signalled in the same statement.
    request:
      `WITH c AS (SELECT id, owner FROM ${s}.commands WHERE id = $2 AND status IN ('pending', 'waiting')), ` +
      `ins AS (INSERT INTO ${s}.cancel_requests (command_id, requested_at) SELECT id, $3 FROM c ` +
      'ON CONFLICT (command_id) DO NOTHING) ' +
      `SELECT c.owner, pg_notify($1, json_build_object('node', c.owner, 'signal', 'cancels')::text) FROM c`,
    // The owner looked up by primary key for each request (a subquery per row, which the planner
    // cannot turn into a join): as a join, a planner without statistics (never analyzed: no
    // autovacuum) read every command of the store each poll to find the few with requests.
    take:
      `SELECT r.command_id FROM ${s}.cancel_requests r ` +
      `WHERE (SELECT c.owner FROM ${s}.commands c WHERE c.id = r.command_id) = $1 ` +
      'ORDER BY r.requested_at, r.command_id LIMIT $2',
    drop: `DELETE FROM ${s}.cancel_requests WHERE command_id = ANY($1::bigint[])`,
  };
}

/** {@link SharedStore.requestCancel}. */
export async function requestCancel(
  db: SharedDb,
  sql: ReturnType<typeof buildCancelSql>,
  commandId: number,
  at: number,
): Promise<{ owner: string | null } | null> {
  const r = await db.query(sql.request, [channelOf(db.schema), commandId, at], true);
  const row = r.rows[0] as { owner: unknown } | undefined;
  if (!row) return null;
  return { owner: typeof row.owner === 'string' ? row.owner : null };
}

/** {@link SharedStore.takeCancels}. */
export async function takeCancels(
  db: SharedDb,
  sql: ReturnType<typeof buildCancelSql>,
  nodeId: string,
  limit: number,
): Promise<number[]> {
  if (!Number.isSafeInteger(limit) || limit < 1)
    throw new CocoError(ErrorCode.InvalidOptions, `takeCancels: limit must be a positive integer`);
  const r = await db.query(sql.take, [nodeId, limit], true);
  return r.rows.map((row: { command_id: unknown }) => {
    const id = Number(row.command_id);
    if (!Number.isSafeInteger(id))
      throw new CocoError(
        ErrorCode.CorruptRow,
        `cancel_requests: bad command_id ${String(row.command_id)}`,
      );
    return id;
  });
}

/** {@link SharedStore.dropCancels}. */
export async function dropCancels(
  db: SharedDb,
  sql: ReturnType<typeof buildCancelSql>,
  ids: readonly number[],
): Promise<void> {
  if (ids.length === 0) return;
  await db.query(sql.drop, [[...ids].sort((a, b) => a - b)], true);
}
