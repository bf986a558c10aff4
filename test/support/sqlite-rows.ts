/**
 * Reaching past the store into a SQLite file, as an operator's hand or a bad migration would:
 * rows rewritten with values the store refuses to write (bad JSON, unknown statuses, unknown
 * command types), to test how the engine and its readers live with them.
 */
import Database from 'better-sqlite3';

/** Runs `fn` on a raw connection to the file (bypassing the store). */
export function raw<T>(path: string, fn: (db: Database.Database) => T): T {
  const db = new Database(path);
  try {
    db.pragma('busy_timeout = 5000');
    return fn(db);
  } finally {
    db.close();
  }
}

/** Replaces a row with a copy whose column `col` is `value`, bypassing CHECKs and triggers. */
export function rewriteRow(
  db: Database.Database,
  table: string,
  where: string,
  args: unknown[],
  col: string,
  value: string | number | null,
): void {
  db.pragma('ignore_check_constraints = ON');
  db.transaction(() => {
    db.prepare(`CREATE TEMP TABLE corrupt_copy AS SELECT * FROM ${table} WHERE ${where}`).run(
      ...args,
    );
    db.prepare(`UPDATE corrupt_copy SET ${col} = ?`).run(value);
    // REPLACE deletes then inserts: no UPDATE trigger fires.
    db.prepare(`INSERT OR REPLACE INTO ${table} SELECT * FROM corrupt_copy`).run();
    db.prepare('DROP TABLE corrupt_copy').run();
  })();
}

/** Sets one column of one command row of the SQLite file at `path` (see {@link rewriteRow}). */
export function setCommandColumn(
  path: string,
  id: number,
  col: string,
  value: string | number | null,
): void {
  raw(path, (db) => rewriteRow(db, 'commands', 'id = ?', [id], col, value));
}
