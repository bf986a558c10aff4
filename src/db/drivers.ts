/**
 * The database drivers, loaded when a store first connects rather than when its module is
 * imported: a user of the SQLite store never loads `pg`, a user of PostgreSQL never loads the
 * native `better-sqlite3`, and `coco --version` loads neither. A driver that is not installed
 * (or whose native part failed to build) is a `DRIVER_MISSING` error naming the package to
 * install.
 *
 * @module
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import type Pg from 'pg';
import { CocoError, ErrorCode } from '../core/errors.js';

const requireFromHere = createRequire(import.meta.url);

/** The drivers coco can load, by package name, with the store that needs each. */
export const DRIVERS = {
  'better-sqlite3': 'the SQLite store',
  pg: 'the PostgreSQL store',
} as const;

/** A driver's package name. */
export type DriverName = keyof typeof DRIVERS;

/**
 * Loads a driver package (CommonJS `require`, which keeps it: both drivers are CommonJS).
 * Throws `DRIVER_MISSING` when it cannot be loaded; `load` is replaceable by tests.
 */
export function loadDriver(
  name: DriverName,
  load: (name: string) => unknown = requireFromHere,
): unknown {
  try {
    return load(name);
  } catch (error) {
    throw new CocoError(
      ErrorCode.DriverMissing,
      `${DRIVERS[name]} needs the "${name}" package, which could not be loaded ` +
        `(${(error as Error | null)?.message?.split('\n')[0] ?? String(error)}); install it: npm install ${name}`,
      { cause: error, details: { driver: name } },
    );
  }
}

/** `better-sqlite3`'s `Database` class, loaded on first use. */
export function sqliteDriver(): typeof BetterSqlite3 {
  return loadDriver('better-sqlite3') as typeof BetterSqlite3;
}

/** The `pg` module, loaded on first use. */
export function pgDriver(): typeof Pg {
  return loadDriver('pg') as typeof Pg;
}
