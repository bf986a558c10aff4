/**
 * Opening a SQLite file the way the store needs it, migrating it, and deciding who owns it.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import type Database from 'better-sqlite3';
import {
  BatchRefusedError,
  CocoError,
  ErrorCode,
  IdempotencyKeyTakenError,
  IllegalTransitionError,
} from '../../core/errors.js';
import { migrations } from '../../generated/sqlite-migrations.js';
import { storeFailed } from '../../db/sqlite.js';
import type { MigrationReport, OwnerInfo } from '../port.js';
import { SQL } from './statements.js';

/**
 * A node on another host owns the store while its heartbeat is younger than this. We cannot
 * probe a remote pid, so the heartbeat is the only sign of life; 30 s is several engine
 * heartbeat periods, so a live engine that misses one beat (GC pause, slow disk) keeps its
 * ownership, while a crashed one is replaced within half a minute.
 */
export const FOREIGN_OWNER_STALE_MS = 30_000;

const TRANSITION_PREFIX = 'ILLEGAL_TRANSITION|';

/**
 * Maps an error raised inside `apply`: the transition triggers' `RAISE` (message
 * `ILLEGAL_TRANSITION|machine|subject|from|to`) becomes an {@link IllegalTransitionError}, anything
 * else `STORE_FAILED`.
 */
export function applyError(error: unknown): CocoError {
  const message = (error as Error | null)?.message;
  if (typeof message === 'string' && message.startsWith(TRANSITION_PREFIX)) {
    const [machine = '?', subject = '?', from = '?', to = '?'] = message
      .slice(TRANSITION_PREFIX.length)
      .split('|');
    return new IllegalTransitionError(machine, from, to, subject);
  }
  // A single node never inserts a key twice (the engine looks for it first); kept apart all the
  // same, as on PostgreSQL (a batch refused for good is not retried).
  if (
    (error as { code?: unknown } | null)?.code === 'SQLITE_CONSTRAINT_UNIQUE' &&
    typeof message === 'string' &&
    message.includes('commands.idempotency_key')
  )
    return new IdempotencyKeyTakenError(error);
  const code = (error as { code?: unknown } | null)?.code;
  // A row to update that was not there, in the writer thread (writer.ts `missingRow`; inline,
  // operations.ts throws a `BATCH_REFUSED` error already, which storeFailed keeps).
  if (code === 'COCO_MISSING_ROW') return new BatchRefusedError(message ?? 'no such row', error);
  if (typeof code === 'string' && REFUSED_CODES.test(code))
    return new BatchRefusedError(message ?? code, error);
  return storeFailed('apply failed, nothing of the batch was stored', error);
}

/**
 * SQLite's codes for a batch refused for what it holds (a constraint, a value too big or of the
 * wrong kind, a parameter out of range): the same batch is refused on every try.
 */
const REFUSED_CODES = /^SQLITE_(CONSTRAINT|TOOBIG|MISMATCH|RANGE)/;

/** A new store id: 'c' and 10 lowercase hex digits (no '-', since it prefixes agent task ids). */
export function newStoreId(): string {
  return `c${randomBytes(5).toString('hex')}`;
}

const LEDGER_DDL =
  'CREATE TABLE IF NOT EXISTS coco_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)';

/**
 * Whose file a migration must not change under: the migrating process's host and the store ids
 * its open stores hold (ownership.ts `ownedInProcess`), to tell a live owner (see
 * {@link ownerAlive}), and the file's path for the error.
 */
export interface MigrationGuard {
  readonly path: string;
  readonly host: string;
  readonly ownedInProcess: ReadonlySet<string>;
}

/**
 * Applies pending migrations in one `BEGIN IMMEDIATE` transaction, so concurrent migrators
 * serialise on the write lock and the later one finds them applied. Creates the store id once.
 *
 * With a `guard`, a file that holds a schema already and has a live owner is not migrated: the
 * owner runs the code of an older release, and would go on writing into a schema it does not
 * know (a node of a newer release started before the older one stopped, or `coco migrate` run
 * beside a running node) — `STORE_IN_USE`, naming the owner, and nothing is changed. A store is
 * migrated before it takes the owner row, so without this the newer node changed the file first
 * and was refused second.
 */
export function migrateDatabase(
  db: Database.Database,
  now: number,
  guard?: MigrationGuard,
): MigrationReport {
  const latest = migrations.at(-1)?.version ?? 0;
  const run = db.transaction((): MigrationReport => {
    db.exec(LEDGER_DDL);
    const rows: unknown[] = db
      .prepare('SELECT version FROM coco_migrations ORDER BY version')
      .all();
    const done = new Set(rows.map((r) => Number((r as { version: unknown }).version)));
    const newest = Math.max(0, ...done);
    if (newest > latest) {
      throw new CocoError(
        ErrorCode.StoreFailed,
        `the database is at schema version ${newest}, newer than this code knows (${latest}); upgrade coco`,
      );
    }
    if (guard !== undefined && newest > 0 && migrations.some((m) => !done.has(m.version))) {
      refuseLiveOwner(db, guard, now, latest);
    }
    const applied: number[] = [];
    const record = db.prepare(
      'INSERT INTO coco_migrations (version, name, applied_at) VALUES (?, ?, ?)',
    );
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      db.exec(m.sql);
      record.run(m.version, m.name, now);
      applied.push(m.version);
    }
    db.prepare("INSERT OR IGNORE INTO coco_meta (key, value) VALUES ('store_id', ?)").run(
      newStoreId(),
    );
    return { applied, current: latest };
  });
  try {
    return run.immediate();
  } catch (error) {
    throw storeFailed('migration failed', error);
  }
}

/** Throws `STORE_IN_USE` if the file has a live owner (see {@link migrateDatabase}'s guard). */
function refuseLiveOwner(
  db: Database.Database,
  guard: MigrationGuard,
  now: number,
  latest: number,
): void {
  const owner = db.prepare(SQL.getOwner).get() as OwnerRow | undefined;
  if (owner === undefined) return;
  const id = db.prepare(SQL.getStoreId).get() as { value: string } | undefined;
  const inProcess = id !== undefined && guard.ownedInProcess.has(id.value);
  if (ownerAlive(owner, guard.host, now, inProcess)) {
    throw storeInUse(
      guard.path,
      owner,
      `cannot migrate to schema version ${latest} while the store is in use (stop that node first)`,
    );
  }
}

/** The owner row, with when it took the store. */
export interface OwnerRow extends OwnerInfo {
  readonly since: number;
}

/** Whether a process with this pid exists on this host. */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as { code?: unknown }).code === 'EPERM';
  }
}

/**
 * Whether a recorded owner (not this store instance) is still alive. Same host: its pid runs —
 * except our own pid, which is alive only if another store of this process holds the file
 * (`ownedInProcess`); a recorded pid equal to ours otherwise comes from a restarted container
 * or an instance that was never closed. Another host: its heartbeat is recent.
 */
export function ownerAlive(
  owner: OwnerInfo,
  host: string,
  now: number,
  ownedInProcess: boolean,
): boolean {
  if (owner.host === host) return owner.pid === process.pid ? ownedInProcess : pidAlive(owner.pid);
  return now - owner.heartbeatAt < FOREIGN_OWNER_STALE_MS;
}

/** The `STORE_IN_USE` error naming the owner. */
export function storeInUse(path: string, owner: OwnerRow, prefix = 'store in use'): CocoError {
  const since = new Date(owner.since).toISOString();
  const beat = new Date(owner.heartbeatAt).toISOString();
  return new CocoError(
    ErrorCode.StoreInUse,
    `${prefix}: ${path} is owned by node "${owner.nodeId}" (pid ${owner.pid} on host ${owner.host}) since ${since}, last heartbeat ${beat}`,
    { details: { owner } },
  );
}
