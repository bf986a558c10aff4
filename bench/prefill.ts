/**
 * Fills a SQLite store with ended commands, for "cost as the store grows" (issue 15): the
 * ended trees already in the file (a warm-up run's) are copied again and again under new ids
 * until `n` ended commands are stored — the same rows the engine writes (state JSON, tasks,
 * status history through the store's own triggers), not hand-made ones. Run it on a store no
 * engine has open; the next engine allocates its ids above the copies.
 */
import Database from 'better-sqlite3';

/**
 * A column of a copied row, as a SELECT expression: ids (own, root, parent, command) moved by
 * `offset` (an SQL expression), idempotency keys dropped (they are unique), the rest as stored.
 */
export function copiedColumn(column: string, offset: string): string {
  if (['id', 'root_id', 'parent_id', 'command_id'].includes(column)) return `${column} + ${offset}`;
  return column === 'idempotency_key' ? 'NULL' : column;
}

/** Rows copied per statement: large enough to be fast, small enough to bound the journal. */
const STEP = 50_000;

/**
 * Copies the ended commands of `path` (and their tasks) until it holds `n` ended commands.
 * Returns the number added and the seconds it took.
 */
export function prefillEnded(path: string, n: number): { added: number; seconds: number } {
  const t0 = performance.now();
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL'); // a fill, not the measured workload
    const cols = (table: string): string[] =>
      (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
    const shift = (c: string): string => copiedColumn(c, '@off');
    const copy = (table: string, where: string): Database.Statement => {
      const names = cols(table);
      return db.prepare(
        `INSERT INTO ${table} (${names.join(', ')}) SELECT ${names.map(shift).join(', ')} ` +
          `FROM ${table} WHERE ${where}`,
      );
    };
    // Ended commands only, and the tasks of those.
    const commands = copy('commands', 'id BETWEEN @lo AND @hi AND active = 0');
    const tasks = copy(
      'tasks',
      'command_id IN (SELECT id FROM commands WHERE id BETWEEN @lo AND @hi AND active = 0)',
    );
    const template = db
      .prepare('SELECT min(id) AS lo, max(id) AS hi, count(*) AS n FROM commands WHERE active = 0')
      .get() as { lo: number | null; hi: number | null; n: number };
    if (template.lo === null || template.hi === null || template.n === 0)
      throw new Error('prefill: no ended command to copy (run a workload first)');
    const span = template.hi - template.lo + 1;
    let stored = (db.prepare('SELECT count(*) AS n FROM commands').get() as { n: number }).n;
    const start = stored;
    let top = (db.prepare('SELECT max(id) AS m FROM commands').get() as { m: number }).m;
    while (stored < n) {
      // Whole templates only: a partial one would cut a tree in two.
      const off = top + 1 - template.lo;
      db.transaction(() => {
        for (let lo = template.lo!; lo <= template.hi!; lo += STEP) {
          const range = { lo, hi: Math.min(lo + STEP - 1, template.hi!), off };
          commands.run(range);
          tasks.run(range);
        }
      })();
      stored += template.n;
      top += span;
    }
    db.pragma('wal_checkpoint(TRUNCATE)');
    return { added: stored - start, seconds: (performance.now() - t0) / 1000 };
  } finally {
    db.close();
  }
}
