/**
 * The API's tokens: the ones configured (`api.tokens`, each with its token from the
 * environment or a file), or, when none is, the node's own admin token, created at first start
 * in a file beside the store (mode 0600) where the CLI on the same machine finds it.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, closeSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CocoError, ErrorCode } from '../core/errors.js';
import { readSecretFile } from './secrets.js';
import { parseStoreUrl } from './store-url.js';

/** The name of the node's own token (created when no token is configured). */
export const LOCAL_TOKEN_NAME = 'local-admin';

/**
 * Where a node without configured tokens keeps its admin token: beside a SQLite store's file
 * (`<file>.token`, a relative path taken from the working folder as the store's is), or, for a
 * PostgreSQL store, in `.coco/api.token` under `baseDir` (the configuration's folder, else the
 * working folder).
 */
export function tokenFilePath(storeUrl: string, baseDir: string): string {
  const parsed = parseStoreUrl(storeUrl);
  return parsed.kind === 'sqlite'
    ? `${resolve(parsed.path)}.token`
    : join(resolve(baseDir), '.coco', 'api.token');
}

/** The local token read from its file, and whether this call created it. */
export interface LocalToken {
  readonly token: string;
  readonly path: string;
  readonly created: boolean;
  /** Set when group or others may read the file. */
  readonly warning: string | null;
}

/**
 * Reads the node's own token from `path`, creating it (32 random bytes, base64url, mode 0600,
 * created exclusively so two nodes starting at once agree on one) when it does not exist.
 *
 * @throws CocoError `INVALID_OPTIONS` when the file cannot be read or written.
 */
export function ensureLocalToken(path: string): LocalToken {
  let created = false;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    const fd = openSync(path, 'wx', 0o600);
    try {
      writeSync(fd, `${randomBytes(32).toString('base64url')}\n`);
    } finally {
      closeSync(fd);
    }
    created = true;
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'EEXIST') {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `cannot create the API token file ${path} (${String((error as { code?: unknown }).code)})`,
      );
    }
  }
  const read = readSecretFile(path);
  return { token: read.secret, path, created, warning: read.warning };
}

/** The local token if its file exists and reads well, else null (the CLI's look-up). */
export function readLocalToken(path: string): string | null {
  try {
    return readSecretFile(path).secret;
  } catch {
    return null;
  }
}

/** Whether an address to bind is a loopback one (only this machine can call it). */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}
