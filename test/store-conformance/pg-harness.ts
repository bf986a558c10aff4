/**
 * PostgreSQL helpers of the store tests: the conformance harness (a fresh schema per test), raw
 * statements on a test schema, and a TCP proxy that cuts a connection at a chosen moment.
 *
 * @module
 */
import { once } from 'node:events';
import net from 'node:net';
import pg from 'pg';
import { ErrorCode } from '../../src/core/errors.js';
import {
  postgresStore,
  type PostgresStore,
  type PostgresStoreOptions,
} from '../../src/store/postgres/pg-store.js';
import { PG_URL, freshSchema } from '../support/pg.js';
import type { StoreHarness } from './harness.js';

let adminPool: pg.Pool | null = null;

/** A small pool for the tests' own statements (one per test file). */
export function admin(): pg.Pool {
  if (adminPool === null) {
    adminPool = new pg.Pool({ connectionString: PG_URL, max: 2 });
    adminPool.on('error', () => undefined);
  }
  return adminPool;
}

/** Ends the admin pool (afterAll). */
export async function endAdmin(): Promise<void> {
  const pool = adminPool;
  adminPool = null;
  await pool?.end();
}

/** Runs statements on the test schema (search_path set), on one connection. */
export async function raw<T extends pg.QueryResultRow = Record<string, unknown>>(
  schema: string,
  sql: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = await admin().connect();
  try {
    await client.query(`SET search_path TO "${schema}"`);
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.query('RESET search_path').catch(() => undefined);
    client.release();
  }
}

/** Small pools and short leases: tests open many stores, and wait for leases to expire. */
export const TEST_STORE_OPTIONS = { poolSize: 3, leaseMs: 1_000 } as const;

/** Stores on one fresh schema, closed (and the schema dropped) by `cleanup`. */
export function schemaStores(prefix = 'coco_t'): {
  readonly schema: string;
  readonly make: (options?: Partial<PostgresStoreOptions>) => PostgresStore;
  readonly cleanup: () => Promise<void>;
} {
  const fresh = freshSchema(prefix);
  const schema = fresh.schema;
  const stores: PostgresStore[] = [];
  return {
    schema,
    make: (options = {}) => {
      const s = postgresStore({ url: PG_URL, schema, ...TEST_STORE_OPTIONS, ...options });
      stores.push(s);
      return s;
    },
    cleanup: async () => {
      for (const s of stores.splice(0)) await s.close().catch(() => undefined);
      await fresh.drop();
    },
  };
}

/** The conformance harness: a fresh schema per test. */
export async function pgHarness(
  options: Partial<PostgresStoreOptions> = {},
): Promise<StoreHarness & { schema: string }> {
  const { schema, make, cleanup } = schemaStores('coco_c');
  return {
    schema,
    store: make(options),
    stampsOwner: true,
    takenOverCode: ErrorCode.LeaseLost,
    async another() {
      return make(options);
    },
    cleanup,
    async simulateDeadOwner(nodeId) {
      // A takeover: the ghost fenced every node, then died (its lease long expired).
      await raw(
        schema,
        `UPDATE coco_nodes SET fenced = true;
         INSERT INTO coco_nodes (node_id, epoch, lease_until, fenced, last_batch, instance, pid, host, since, heartbeat_at)
         VALUES ('${nodeId.replaceAll("'", "''")}', 1, now() - interval '1 hour', false, 0, 'ghost', 1, 'gone', now(), now())
         ON CONFLICT (node_id) DO UPDATE SET lease_until = EXCLUDED.lease_until, fenced = false`,
      );
    },
    async corruptCommandRow(id, how) {
      await raw(
        schema,
        how === 'json'
          ? `UPDATE commands SET params = '{"broken' WHERE id = ${id}`
          : `ALTER TABLE commands DROP CONSTRAINT commands_status_known;
             ALTER TABLE commands DISABLE TRIGGER USER;
             UPDATE commands SET status = 'exploded' WHERE id = ${id};
             ALTER TABLE commands ENABLE TRIGGER USER`,
      );
    },
    async corruptTaskRow(commandId, ordinal, how) {
      const where = `command_id = ${commandId} AND ordinal = ${ordinal}`;
      await raw(
        schema,
        how === 'json'
          ? `UPDATE tasks SET error = 'nope' WHERE ${where}`
          : `ALTER TABLE tasks DROP CONSTRAINT tasks_status_known;
             ALTER TABLE tasks DISABLE TRIGGER USER;
             UPDATE tasks SET status = 'lost' WHERE ${where};
             ALTER TABLE tasks ENABLE TRIGGER USER`,
      );
    },
  };
}

/** Whether a chunk holds a simple-protocol `COMMIT` query (client to server). */
export function commitQuery(chunk: Buffer): boolean {
  const at = chunk.indexOf('COMMIT\0');
  return at >= 5 && chunk[at - 5] === 0x51; // 'Q', then the message length
}

/** Whether a chunk holds the server's CommandComplete of a `COMMIT` (server to client). */
export function commitComplete(chunk: Buffer): boolean {
  const at = chunk.indexOf('COMMIT\0');
  return at >= 5 && chunk[at - 5] === 0x43; // 'C', then the message length
}

/** The server's ReadyForQuery (idle) message. */
const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);

/** The server's ErrorResponse of a connection it terminates on shutdown (SQLSTATE 57P01). */
const ADMIN_SHUTDOWN = ((): Buffer => {
  const fields = Buffer.from(
    'SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0',
    'latin1',
  );
  const head = Buffer.alloc(5);
  head[0] = 0x45; // 'E'
  head.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([head, fields]);
})();

/**
 * A TCP proxy in front of the test server. Armed with a test on the bytes going one way, it cuts
 * the connection (both sides) on the first chunk that matches, without passing that chunk on —
 * or silences it: from that chunk on, nothing passes either way and nothing is closed, as when
 * a server vanishes behind an address that stays up (a failed-over primary, a dropped route). Or
 * frozen ({@link CuttingProxy.freezeAll}): silenced, and a connection the client ends is not
 * closed from this side either, as by a stopped server process whose kernel still acknowledges.
 */
export class CuttingProxy {
  // Half-open allowed, so that a frozen connection the client ends stays open on this side; any
  // other is closed both ways at either side's end, as without it.
  readonly #server = net.createServer({ allowHalfOpen: true }, (client) => this.#pipe(client));
  readonly #sockets = new Set<net.Socket>();
  readonly #pairs = new Set<{ silent: boolean; frozen: boolean }>();
  #cut: {
    toServer: boolean;
    test: (chunk: Buffer) => boolean;
    silence: boolean;
    done: () => void;
  } | null = null;
  /** Connections cut so far. */
  cuts = 0;
  /** Connections silenced so far. */
  silenced = 0;
  /** Connections open through the proxy now (silenced ones included). */
  get open(): number {
    return this.#pairs.size;
  }
  /** While set, new connections are closed at once (the server looks down). */
  refuse = false;
  /**
   * While above zero, that many new connections get the server's FATAL "terminating connection
   * due to administrator command" (57P01) in the same chunk as their first ReadyForQuery, then
   * close — what a server shutting down does to a connection that has just been accepted.
   */
  fatalAfterReady = 0;

  async start(): Promise<string> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    const url = new URL(PG_URL);
    url.hostname = '127.0.0.1';
    url.port = String((this.#server.address() as net.AddressInfo).port);
    return url.toString();
  }

  /**
   * Cuts (or, with `silence`, silences) the next connection on which a chunk going `toServer`
   * (or back) passes `test`.
   */
  arm(toServer: boolean, test: (chunk: Buffer) => boolean, silence = false): Promise<void> {
    return new Promise((done) => {
      this.#cut = { toServer, test, silence, done };
    });
  }

  /** Silences every open connection (new ones still pass). */
  silenceAll(): void {
    for (const pair of this.#pairs) {
      if (!pair.silent) this.silenced++;
      pair.silent = true;
    }
  }

  /** Silences every open connection, and leaves those the client ends half-open (see above). */
  freezeAll(): void {
    this.silenceAll();
    for (const pair of this.#pairs) pair.frozen = true;
  }

  #pipe(client: net.Socket): void {
    if (this.refuse) {
      client.destroy();
      return;
    }
    const target = new URL(PG_URL);
    const server = net.connect({
      port: Number(target.port || 5432),
      host: target.hostname,
      allowHalfOpen: true,
    });
    this.#sockets.add(client).add(server);
    const pair = { silent: false, frozen: false };
    this.#pairs.add(pair);
    const close = (): void => {
      client.destroy();
      server.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(server);
      this.#pairs.delete(pair);
    };
    let ready = false;
    const forward = (from: net.Socket, to: net.Socket, toServer: boolean): void => {
      from.on('data', (chunk: Buffer) => {
        if (pair.silent) return;
        if (!toServer && !ready && chunk.includes(READY_FOR_QUERY)) {
          ready = true;
          if (this.fatalAfterReady > 0) {
            this.fatalAfterReady--;
            to.end(Buffer.concat([chunk, ADMIN_SHUTDOWN]));
            server.destroy();
            return;
          }
        }
        const cut = this.#cut;
        if (cut !== null && cut.toServer === toServer && cut.test(chunk)) {
          this.#cut = null;
          if (cut.silence) {
            this.silenced++;
            pair.silent = true;
          } else {
            this.cuts++;
            close();
          }
          cut.done();
          return;
        }
        to.write(chunk);
      });
    };
    forward(client, server, true);
    forward(server, client, false);
    client.on('error', close).on('close', close);
    server.on('error', close).on('close', close);
    const ended = (): void => {
      if (!pair.frozen) close();
    };
    client.on('end', ended);
    server.on('end', ended);
  }

  /** Cuts every open connection. */
  cutAll(): void {
    for (const s of this.#sockets) s.destroy();
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.#server.close();
    await once(this.#server, 'close').catch(() => undefined);
  }
}

/** Polls `check` every 20 ms until it holds (or throws after `ms`). */
export async function until(
  what: string,
  check: () => Promise<boolean>,
  ms = 5_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
