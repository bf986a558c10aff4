/**
 * Stores chosen by URL: `sqlite:<path>` (the default, embedded) or
 * `postgres://user@host:5432/db?schema=coco` (many nodes on one PostgreSQL; `schema` defaults to
 * `coco`; `leaseMs` sets the node lease, 30 s by default; `applyConnections` the connections a node
 * applies its batches through, 2 by default; `poolSize` the connections of the node's store, 10
 * by default; `statementTimeoutMs` the statement timeout of both stores, 30 s by default, 0 for
 * none, a statement unanswered half as long again dropping its connection as lost). Used by the
 * library, the CLI and the server alike.
 *
 * @module
 */
import { CocoError, ErrorCode } from '../core/errors.js';
import type { JobStore } from '../jobs/port.js';
import { postgresJobStore } from '../jobs/postgres/job-store.js';
import { sqliteJobStore } from '../jobs/sqlite/job-store.js';
import type { Store } from '../store/port.js';
import { MIN_POOL_SIZE } from '../store/postgres/options.js';
import { postgresStore } from '../store/postgres/pg-store.js';
import { sqliteStore } from '../store/sqlite/sqlite-store.js';

/** The default store URL: an embedded SQLite file under `.coco/`. */
export const DEFAULT_STORE_URL = 'sqlite:.coco/coco.db';

/** A parsed store URL. */
export type StoreUrl =
  | { readonly kind: 'sqlite'; readonly path: string }
  | {
      readonly kind: 'postgres';
      /** The connection string, without coco's own parameters (`schema`, `leaseMs`, `applyConnections`, `poolSize`, `statementTimeoutMs`). */
      readonly url: string;
      readonly schema: string;
      /** The node lease (`leaseMs`), when the URL sets it. */
      readonly leaseMs?: number;
      /** Apply connections per node (`applyConnections`), when the URL sets it. */
      readonly applyConnections?: number;
      /** The engine store's pool size (`poolSize`), when the URL sets it. */
      readonly poolSize?: number;
      /** The stores' statement timeout (`statementTimeoutMs`), when the URL sets it. */
      readonly statementTimeoutMs?: number;
    };

/** Longest `statementTimeoutMs` a URL may set: a day, as the stores' options. */
const MAX_STATEMENT_TIMEOUT_MS = 86_400_000;

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
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `store URL "${redact(url)}" is not a valid URL; e.g. postgres://user@localhost:5432/coco?schema=coco`,
      );
    }
    const schema = parsed.searchParams.get('schema') ?? 'coco';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `store URL "${redact(url)}": schema "${schema}" must be a lower-case SQL identifier`,
      );
    }
    const lease = parsed.searchParams.get('leaseMs');
    if (lease !== null && !/^[1-9][0-9]{0,8}$/.test(lease)) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `store URL "${redact(url)}": leaseMs "${lease}" must be a positive number of milliseconds`,
      );
    }
    const lanes = parsed.searchParams.get('applyConnections');
    if (lanes !== null && !/^[1-8]$/.test(lanes)) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `store URL "${redact(url)}": applyConnections "${lanes}" must be a whole number from 1 to 8`,
      );
    }
    const poolSize = parsed.searchParams.get('poolSize');
    if (
      poolSize !== null &&
      !(
        /^[1-9][0-9]{0,3}$/.test(poolSize) &&
        Number(poolSize) >= MIN_POOL_SIZE &&
        Number(poolSize) <= 1_000
      )
    ) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `store URL "${redact(url)}": poolSize "${poolSize}" must be a whole number of connections from ${MIN_POOL_SIZE} to 1000`,
      );
    }
    const timeout = parsed.searchParams.get('statementTimeoutMs');
    if (
      timeout !== null &&
      !(/^(0|[1-9][0-9]{0,7})$/.test(timeout) && Number(timeout) <= MAX_STATEMENT_TIMEOUT_MS)
    ) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `store URL "${redact(url)}": statementTimeoutMs "${timeout}" must be a whole number of milliseconds from 0 (none) to ${MAX_STATEMENT_TIMEOUT_MS}`,
      );
    }
    parsed.searchParams.delete('schema');
    parsed.searchParams.delete('leaseMs');
    parsed.searchParams.delete('applyConnections');
    parsed.searchParams.delete('poolSize');
    parsed.searchParams.delete('statementTimeoutMs');
    return {
      kind: 'postgres',
      url: parsed.toString(),
      schema,
      ...(lease !== null ? { leaseMs: Number(lease) } : {}),
      ...(lanes !== null ? { applyConnections: Number(lanes) } : {}),
      ...(poolSize !== null ? { poolSize: Number(poolSize) } : {}),
      ...(timeout !== null ? { statementTimeoutMs: Number(timeout) } : {}),
    };
  }
  throw new CocoError(
    ErrorCode.InvalidOptions,
    `store URL "${redact(url)}" is not understood; use sqlite:<path> (e.g. ${DEFAULT_STORE_URL}) or postgres://user@host/db`,
  );
}

/**
 * The URL with any password masked, for messages and logs: the userinfo's password (the
 * userinfo runs to the authority's last `@`, so an unencoded `@` in a password hides nothing)
 * and a `password=` query parameter. When an `@` comes only after the authority (a password
 * holding an unencoded `/`, `?` or `#`, or an `@` in the path), everything from `//` to the last
 * `@` is masked: too much rather than too little.
 */
export function redact(url: string): string {
  const masked = url.replace(/([?&]password=)[^&#]*/gi, '$1***');
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(masked);
  if (!scheme) return masked;
  const start = scheme[0].length;
  const authorityEnd = masked.slice(start).search(/[/?#]/);
  const authority =
    authorityEnd < 0 ? masked.slice(start) : masked.slice(start, start + authorityEnd);
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const colon = authority.indexOf(':');
    if (colon < 0 || colon > at) return masked;
    return `${masked.slice(0, start + colon + 1)}***${masked.slice(start + at)}`;
  }
  const lastAt = masked.lastIndexOf('@');
  return lastAt < start ? masked : `${masked.slice(0, start)}***${masked.slice(lastAt)}`;
}

/** Opens (does not yet connect) the store a URL names. */
export function storeFromUrl(url: string): Store {
  const parsed = parseStoreUrl(url);
  return parsed.kind === 'sqlite'
    ? sqliteStore({ path: parsed.path })
    : postgresStore({
        url: parsed.url,
        schema: parsed.schema,
        ...(parsed.leaseMs !== undefined ? { leaseMs: parsed.leaseMs } : {}),
        ...(parsed.applyConnections !== undefined
          ? { applyConnections: parsed.applyConnections }
          : {}),
        ...(parsed.poolSize !== undefined ? { poolSize: parsed.poolSize } : {}),
        ...(parsed.statementTimeoutMs !== undefined
          ? { statementTimeoutMs: parsed.statementTimeoutMs }
          : {}),
      });
}

/** The job monitor's store beside the store a URL names (same file, or same schema). */
export function jobStoreFromUrl(url: string): JobStore {
  const parsed = parseStoreUrl(url);
  return parsed.kind === 'sqlite'
    ? sqliteJobStore({ path: parsed.path })
    : postgresJobStore({
        url: parsed.url,
        schema: parsed.schema,
        ...(parsed.statementTimeoutMs !== undefined
          ? { statementTimeoutMs: parsed.statementTimeoutMs }
          : {}),
      });
}
