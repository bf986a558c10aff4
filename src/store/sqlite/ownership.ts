/**
 * Single-writer ownership of a SQLite store file: the owner row (`coco_owner`) that a node takes
 * when it opens the store and that its heartbeats renew, and the files held by the open stores
 * of this process.
 *
 * @module
 */
import type Database from 'better-sqlite3';
import { CocoError, ErrorCode } from '../../core/errors.js';
import { ownerAlive, storeInUse, type OwnerRow } from './connection.js';
import { storeFailed } from '../../db/sqlite.js';
import type { Statements } from './statements.js';

/**
 * Store ids of files held by an open store of this process: a recorded owner with our own pid is
 * alive only if it is listed here (see {@link ownerAlive}).
 */
export const ownedInProcess = new Set<string>();

/** Who takes the owner row of which file, and when. */
export interface OwnershipClaim {
  /** The database file (named in errors). */
  readonly path: string;
  readonly storeId: string;
  readonly nodeId: string;
  /** This process's host name. */
  readonly host: string;
  readonly now: number;
  /** The claiming store instance holds the store already (opened it, and has not lost it). */
  readonly holding: boolean;
}

/**
 * Takes the owner row for `claim.nodeId` in one `BEGIN IMMEDIATE` transaction. Refuses with
 * `STORE_IN_USE` when the claiming instance holds the store for another node, or when another
 * owner is alive; an instance taking it again keeps the time it first took it.
 */
export function takeOwnership(db: Database.Database, q: Statements, claim: OwnershipClaim): void {
  const { path, storeId, nodeId, host, now } = claim;
  const take = db.transaction(() => {
    const owner = q.getOwner.get() as OwnerRow | undefined;
    // Recorded by the claiming instance itself: it holds the store, in this process, on this host.
    const ours =
      owner !== undefined && claim.holding && owner.pid === process.pid && owner.host === host;
    if (ours && owner.nodeId !== nodeId) {
      throw storeInUse(path, owner, 'this store is already open for another node');
    }
    if (owner !== undefined && !ours && ownerAlive(owner, host, now, ownedInProcess.has(storeId))) {
      throw storeInUse(path, owner);
    }
    q.putOwner.run(nodeId, process.pid, host, now, ours ? owner.since : now);
  });
  try {
    take.immediate();
  } catch (error) {
    throw storeFailed('cannot take ownership', error);
  }
}

/**
 * The error of a heartbeat of `nodeId` that renewed nothing (another node took the store over,
 * or it was never opened for `nodeId`): `STORE_IN_USE`, naming the current owner if any.
 */
export function ownershipLost(q: Statements, path: string, nodeId: string): CocoError {
  const owner = q.getOwner.get() as OwnerRow | undefined;
  return owner === undefined
    ? new CocoError(ErrorCode.StoreInUse, `node "${nodeId}" does not own ${path}`)
    : storeInUse(path, owner, `node "${nodeId}" lost ownership`);
}
