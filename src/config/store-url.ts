/**
 * Stores chosen by URL: `sqlite:<path>` (the default, embedded) — `postgres://…` comes with the
 * PostgreSQL store. Used by the library, the CLI and the server alike.
 *
 * @module
 */
import { CocoError, ErrorCode } from '../core/errors.js';
import type { Store } from '../store/port.js';
import { sqliteStore } from '../store/sqlite/sqlite-store.js';

/** The default store URL: an embedded SQLite file under `.coco/`. */
export const DEFAULT_STORE_URL = 'sqlite:.coco/coco.db';

/** A parsed store URL. */
export type StoreUrl = { readonly kind: 'sqlite'; readonly path: string };

/** Parses a store URL; throws `INVALID_OPTIONS` saying what is wrong and what is accepted. */
export function parseStoreUrl(url: string): StoreUrl {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '' || path === ':memory:') {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `store URL "${url}": give a database file, e.g. sqlite:.coco/coco.db`,
      );
    }
    return { kind: 'sqlite', path };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `store URL "${url}": the PostgreSQL store is not available in this version; use sqlite:<path>`,
    );
  }
  throw new CocoError(
    ErrorCode.InvalidOptions,
    `store URL "${url}" is not understood; use sqlite:<path> (e.g. ${DEFAULT_STORE_URL})`,
  );
}

/** Opens (does not yet connect) the store a URL names. */
export function storeFromUrl(url: string): Store {
  const parsed = parseStoreUrl(url);
  return sqliteStore({ path: parsed.path });
}
