/**
 * Signals of the PostgreSQL store (LISTEN/NOTIFY). One channel per schema, `coco_<schema>`;
 * each notification carries `{"node": <node id, or null for every node>, "signal": ...}`.
 *
 * A listener holds a connection of its own. When that connection is lost it reconnects (with
 * back-off, until unsubscribed or the store closes), listens again, and then signals
 * `orphans`, `reports`, `cancels`, `admissions` and `pauses`: notifications sent while it was
 * away are lost, and signals are only hints that make a node look now rather than at its next
 * poll.
 *
 * @module
 */
import type pg from 'pg';
import type { StoreSignal } from '../shared-port.js';
import { backoff } from './connection.js';
import { sleep, storeFailed } from '../../db/postgres.js';
import { quoteIdent } from '../../db/postgres.js';

/** The notification channel of a schema (names are at most 58 characters: this fits in 63). */
export function channelOf(schema: string): string {
  return `coco_${schema}`;
}

/** The payload of a signal to one node, or to every node (`null`). */
export function signalPayload(nodeId: string | null, signal: StoreSignal): string {
  return JSON.stringify({ node: nodeId, signal });
}

function parsePayload(
  payload: string | undefined,
): { node: string | null; signal: StoreSignal } | null {
  try {
    const p = JSON.parse(payload ?? '') as { node?: unknown; signal?: unknown };
    const signal = p.signal;
    if (
      signal !== 'orphans' &&
      signal !== 'reports' &&
      signal !== 'cancels' &&
      signal !== 'admissions' &&
      signal !== 'pauses'
    )
      return null;
    if (p.node !== null && typeof p.node !== 'string') return null;
    return { node: p.node, signal };
  } catch {
    return null;
  }
}

/** What a listener needs from its store. */
export interface ListenerHost {
  readonly pool: pg.Pool;
  readonly schema: string;
  /** Whether the store is still open (a closed store stops reconnecting). */
  isOpen(): boolean;
}

/** One `listen` subscription: its connection, and reconnection after a loss. */
export class Listener {
  readonly #h: ListenerHost;
  readonly #nodeId: string;
  readonly #onSignal: (signal: StoreSignal) => void;
  readonly #channel: string;
  #client: pg.PoolClient | null = null;
  #stopped = false;
  #reconnecting: Promise<void> | null = null;

  constructor(host: ListenerHost, nodeId: string, onSignal: (signal: StoreSignal) => void) {
    this.#h = host;
    this.#nodeId = nodeId;
    this.#onSignal = onSignal;
    this.#channel = channelOf(host.schema);
  }

  /** Connects and listens; rejects (`STORE_FAILED`) if the first connection fails. */
  async start(): Promise<void> {
    try {
      await this.#connect();
    } catch (error) {
      throw storeFailed('listen failed', error);
    }
  }

  async #connect(): Promise<void> {
    const client = await this.#h.pool.connect();
    const lost = (): void => this.#lost(client);
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (n: pg.Notification) => {
      if (n.channel !== this.#channel) return;
      const p = parsePayload(n.payload);
      if (p && (p.node === null || p.node === this.#nodeId)) this.#signal(p.signal);
    });
    try {
      await client.query(`SET application_name = 'coco/listen/${this.#h.schema}'`);
      await client.query(`LISTEN ${quoteIdent(this.#channel)}`);
    } catch (error) {
      this.#release(client);
      throw error;
    }
    if (this.#stopped) {
      this.#release(client);
      return;
    }
    this.#client = client;
  }

  #signal(signal: StoreSignal): void {
    if (this.#stopped) return;
    try {
      this.#onSignal(signal);
    } catch {
      // Signals are hints; a failing callback must not stop the listener.
    }
  }

  #release(client: pg.PoolClient): void {
    client.removeAllListeners('notification');
    client.removeAllListeners('end');
    client.removeAllListeners('error');
    // Late socket errors of a dead connection must not crash the process.
    client.on('error', () => undefined);
    client.release(true);
  }

  #lost(client: pg.PoolClient): void {
    if (this.#client !== client) return;
    this.#client = null;
    this.#release(client);
    if (this.#stopped || this.#reconnecting) return;
    this.#reconnecting = this.#reconnect().finally(() => (this.#reconnecting = null));
  }

  async #reconnect(): Promise<void> {
    for (let attempt = 0; !this.#stopped && this.#h.isOpen(); attempt++) {
      await sleep(backoff(attempt));
      if (this.#stopped || !this.#h.isOpen()) return;
      try {
        await this.#connect();
      } catch {
        continue;
      }
      // Whatever was notified while we were away is lost: look now.
      this.#signal('orphans');
      this.#signal('reports');
      this.#signal('cancels');
      this.#signal('admissions');
      this.#signal('pauses');
      return;
    }
  }

  /** Stops listening and gives the connection back. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const client = this.#client;
    this.#client = null;
    if (client) {
      await client.query(`UNLISTEN ${quoteIdent(this.#channel)}`).catch(() => undefined);
      this.#release(client);
    }
    await this.#reconnecting;
  }
}
