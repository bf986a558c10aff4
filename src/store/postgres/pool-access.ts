/**
 * Statements and short transactions on the store's pool, tried again when a connection is lost
 * (when that is safe) — everything but `apply`, which has its own connection (applier.ts).
 *
 * @module
 */
import type pg from 'pg';
import { CocoError } from '../../core/errors.js';
import { READ_RETRY_WINDOW_MS, TYPES, backoff } from './connection.js';
import { sleep, storeFailed } from '../../db/postgres.js';
import { isConnectionError, isRetryableTransaction } from '../../db/postgres.js';

/** Options of one statement. */
export interface QueryOptions {
  readonly rowMode?: 'array';
  /** Try again on connection errors (the statement may have run: it must be safe to repeat). */
  readonly idempotent?: boolean;
}

/** The pool of a store, with retries. */
export class PoolAccess {
  readonly #pool: pg.Pool;
  readonly #isOpen: () => boolean;

  constructor(pool: pg.Pool, isOpen: () => boolean) {
    this.#pool = pool;
    this.#isOpen = isOpen;
  }

  /** One statement on a pooled connection, tried again on connection errors if idempotent. */
  async query(text: string, values: unknown[], o: QueryOptions = {}): Promise<pg.QueryResult> {
    const began = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#pool.query({
          text,
          values,
          types: TYPES,
          ...(o.rowMode ? { rowMode: o.rowMode } : {}),
        });
      } catch (error) {
        const again =
          o.idempotent === true && Date.now() - began < READ_RETRY_WINDOW_MS && this.#isOpen();
        if (!again || !isConnectionError(error)) throw storeFailed('query failed', error);
        await sleep(backoff(attempt - 1));
      }
    }
  }

  /**
   * A transaction on a pooled connection. Connection errors before COMMIT was sent (and, for a
   * read-only one, after too) and deadlocks try it again, for up to READ_RETRY_WINDOW_MS: `fn` must be safe to run
   * again. Errors `fn` throws as `CocoError`s are its verdicts, passed on as they are.
   */
  async transaction<T>(
    what: string,
    fn: (client: pg.PoolClient) => Promise<T>,
    readOnly = false,
  ): Promise<T> {
    const began = Date.now();
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient | null = null;
      let lost = false;
      let commitSent = false;
      const onError = (): void => void (lost = true);
      try {
        client = await this.#pool.connect();
        client.on('error', onError);
        await client.query(readOnly ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN');
        const result = await fn(client);
        commitSent = true;
        await client.query('COMMIT');
        return result;
      } catch (error) {
        lost ||= isConnectionError(error);
        if (client !== null && !lost) await client.query('ROLLBACK').catch(() => (lost = true));
        const again =
          Date.now() - began < READ_RETRY_WINDOW_MS &&
          this.#isOpen() &&
          !(error instanceof CocoError) &&
          ((isConnectionError(error) && (readOnly || !commitSent)) ||
            isRetryableTransaction(error));
        if (!again) throw storeFailed(`${what} failed`, error);
        await sleep(backoff(attempt - 1));
      } finally {
        if (client !== null) {
          client.off('error', onError);
          // A connection that failed is destroyed, and its late socket errors swallowed.
          if (lost) client.on('error', () => undefined);
          client.release(lost);
        }
      }
    }
  }

  /**
   * {@link PoolAccess.withClient}, tried again on connection errors for up to
   * READ_RETRY_WINDOW_MS while the store is open: `fn` must be safe to run again, even after a
   * run whose end was lost (the migration: its ledger and advisory lock make a repeat a no-op).
   */
  async withClientAgain<T>(what: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const began = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.withClient(what, fn);
      } catch (error) {
        const cause = error instanceof CocoError ? error.cause : error;
        if (
          !isConnectionError(cause) ||
          Date.now() - began >= READ_RETRY_WINDOW_MS ||
          !this.#isOpen()
        )
          throw storeFailed(what, error);
        await sleep(backoff(attempt));
      }
    }
  }

  /** Runs `fn` on one pooled connection (destroyed afterwards if it failed). */
  async withClient<T>(what: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw storeFailed(`${what}: cannot connect`, error);
    }
    let lost = false;
    const onError = (): void => void (lost = true);
    client.on('error', onError);
    try {
      return await fn(client);
    } catch (error) {
      // A statement that met the deadline leaves its connection waiting for the answer: gone too.
      lost ||= isConnectionError(error instanceof CocoError ? error.cause : error);
      throw error;
    } finally {
      client.off('error', onError);
      if (lost) client.on('error', () => undefined);
      client.release(lost);
    }
  }
}
