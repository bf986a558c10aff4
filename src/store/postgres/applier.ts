/**
 * `apply` of the PostgreSQL store: every batch in one transaction, in call order, through one
 * connection held for it; a few set-based statements per batch (statements.ts); fencing; and
 * exactly-once application across lost connections.
 *
 * **Fencing.** The first statement of a node's batch updates the node's row in `coco_nodes`
 * (`last_batch`), but only if the row is not fenced and still has this process's epoch. That
 * update locks the row until COMMIT, so a node claiming orphans cannot fence this node halfway
 * through a batch; and a fenced node's batch stops at its first statement (`LEASE_LOST`).
 *
 * **Exactly once.** Each batch of a node gets the next number, which its transaction writes to
 * the node's `last_batch`. When the connection breaks — before COMMIT, or after COMMIT was sent
 * but before its answer arrived, when nobody knows whether it committed — the applier reconnects
 * (with back-off, for as long as the store is open) and runs the batch again: the first statement
 * only matches while `last_batch` is the batch's number minus one, so a batch that did commit is
 * recognised (and not applied twice), one that did not is applied now, and one written behind a
 * batch that failed (batches are pipelined, see `apply`) is refused. If the old transaction
 * is still alive on the server, the new one waits for its row lock and then sees its outcome.
 * The caller only sees a slower `apply`. Without an opened node there is no `last_batch`: a
 * connection lost after COMMIT was sent then fails the batch (`STORE_FAILED`, outcome unknown).
 *
 * @module
 */
import type { Writable } from 'node:stream';
import type pg from 'pg';
import { BatchRefusedError, CocoError, ErrorCode } from '../../core/errors.js';
import type { ChangeBatch } from '../port.js';
import { TYPES, applyError, backoff, leaseLost } from './connection.js';
import { sleep, storeFailed } from '../../db/postgres.js';
import { isConnectionError, isRetryableTransaction } from '../../db/postgres.js';
import { batchSteps, rowCountLabel, type Step } from './batch-steps.js';
import { useExactBind } from './bind.js';
import type { Sql } from './statements.js';

/**
 * How long the server keeps a transaction of the apply connection open while no statement comes.
 * Ours send their statements back to back, so a transaction idle for 10 s has lost its client (a
 * network partition); until the server ends it, its lock on this node's row holds up the retry of
 * the same batch on a new connection. A third of the default statement timeout: the retry,
 * waiting for that lock, sees the lost transaction end before its own statement would time out.
 */
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000;

/**
 * Tries of a batch that the server rolled back for a deadlock or a serialization failure (rare:
 * a report relay and this node's apply touching the same report rows). Such a failure is not
 * the batch's fault and a new try passes; one that keeps failing is reported.
 */
const TRANSACTION_ATTEMPTS = 5;

/** The node a store was opened for, as its batches identify it. */
export interface NodeIdentity {
  readonly nodeId: string;
  readonly epoch: number;
}

/** What the applier needs from its store. */
export interface ApplierHost {
  readonly pool: pg.Pool;
  readonly sql: Sql;
  readonly schema: string;
  readonly statementTimeoutMs: number;
  /** Whether the store is still open (batches called before close are still tried, once). */
  isOpen(): boolean;
}

/** A node's batch written to the connection: its number and the answers to come. */
interface Sent {
  readonly client: pg.PoolClient;
  readonly number: number;
  readonly answers: Promise<PromiseSettledResult<pg.QueryResult>[]>;
}

/** Applies batches in call order on a connection of its own. */
export class Applier {
  readonly #h: ApplierHost;
  #client: pg.PoolClient | null = null;
  /** The held connection reported an error: replace it before the next use. */
  #broken = false;
  readonly #onClientError = (): void => {
    this.#broken = true;
  };
  #tail: Promise<void> = Promise.resolve();
  /** Calls made so far; each call's number. */
  #calls = 0;
  /** Calls up to this number fail without applying (they were made before a failure was reported). */
  #doomedThrough = 0;
  /** A batch failed and its rejection has not been handled yet: calls made meanwhile are doomed. */
  #failureOpen = false;
  #node: NodeIdentity | null = null;
  /** Number given to the last batch sent (the node's `last_batch` when it was registered). */
  #batchNo = 0;
  /** Number of the last batch known committed. */
  #committedNo = 0;
  /** The last call whose batch was written to {@link Applier.#sentOn}, in call order. */
  #sentThrough = 0;
  #sentOn: pg.PoolClient | null = null;

  constructor(host: ApplierHost) {
    this.#h = host;
  }

  /** From now on, batches are this node's: stamped, fenced and numbered from `lastBatch`. */
  setNode(node: NodeIdentity | null, lastBatch = 0): void {
    this.#node = node;
    this.#batchNo = lastBatch;
    this.#committedNo = lastBatch;
  }

  /**
   * Applies a batch after those called before it. Once one fails, those called before its
   * failure was reported fail too, without applying anything (see the port).
   *
   * A node's batch is written to the connection at once when the batches before it already
   * were (**pipelined across batches**): the server goes from one batch's COMMIT to the next
   * batch without waiting for this process to read the answer and send more — a wait that
   * includes a turn of this process's event loop, busy with the engine. Each batch's fencing
   * statement only passes if the node's `last_batch` is the batch's number minus one, so a batch
   * written behind one that failed is refused by the server, whatever it holds.
   */
  apply(batch: ChangeBatch): Promise<void> {
    const call = ++this.#calls;
    if (this.#failureOpen) this.#doomedThrough = call;
    let steps: Step[] | Error;
    try {
      steps = batchSteps(this.#h.sql, batch, this.#node?.nodeId ?? null);
    } catch (error) {
      steps = error instanceof Error ? error : new Error(String(error));
    }
    const early = steps instanceof Error ? null : this.#sendEarly(call, steps);
    const run = this.#tail.then(() => this.#turn(call, batch, steps, early));
    // Registered before the caller's reactions: it runs first when the batch fails, so calls
    // made after the failure was reported are not doomed.
    this.#tail = run.then(
      () => undefined,
      () => {
        this.#failureOpen = false;
      },
    );
    return run;
  }

  /** Waits for the batches called so far, then gives the connection back (destroyed). */
  async close(): Promise<void> {
    await this.#tail;
    this.#drop();
  }

  async #turn(
    call: number,
    batch: ChangeBatch,
    steps: Step[] | Error,
    early: Sent | null,
  ): Promise<void> {
    if (call <= this.#doomedThrough) {
      throw new CocoError(ErrorCode.StoreFailed, 'not applied: an earlier batch failed', {
        retryable: true,
      });
    }
    try {
      if (steps instanceof Error) throw applyError(steps);
      const node = this.#node;
      if (node === null) await this.#runAlone(batch, steps);
      else await this.#run(call, node, steps, early);
    } catch (error) {
      this.#doomedThrough = this.#calls;
      this.#failureOpen = true;
      // Batches called from now on are numbered after the last one that committed.
      this.#batchNo = this.#committedNo;
      throw error;
    }
  }

  /** The held connection, (re)connected and set up if needed. */
  async #connection(): Promise<pg.PoolClient> {
    if (this.#client && !this.#broken) return this.#client;
    this.#drop();
    const client = await openApplyConnection(this.#h, this.#onClientError);
    this.#client = client;
    this.#broken = false;
    return client;
  }

  /** Destroys the held connection (it may be broken, or carry our session settings). */
  #drop(): void {
    const client = this.#client;
    this.#client = null;
    if (client) destroyApplyConnection(client, this.#onClientError);
  }

  /** Writes the batch now if every batch called before it is already written on this connection. */
  #sendEarly(call: number, steps: Step[]): Sent | null {
    const node = this.#node;
    const client = this.#client;
    if (node === null || client === null || this.#broken || this.#failureOpen) return null;
    if (this.#sentOn !== client || this.#sentThrough !== call - 1) return null;
    return this.#send(call, client, node, steps, ++this.#batchNo);
  }

  /**
   * Writes a node's batch, BEGIN to COMMIT, without waiting for any answer (node-postgres
   * pipelining): the server runs the statements back to back instead of waiting a round trip
   * between them (measured: fan-out +29%, chains +19%). Every check is made by the statements
   * themselves (batch-steps.ts): the first that fails aborts the transaction, so the COMMIT
   * behind it rolls back.
   */
  #send(
    call: number,
    client: pg.PoolClient,
    node: NodeIdentity,
    steps: Step[],
    number: number,
  ): Sent {
    const lock: pg.QueryConfig = {
      name: 'coco_lock_node',
      text: this.#h.sql.lockNode,
      values: [node.nodeId, node.epoch, number, 1, 'lockNode'],
    };
    this.#sentThrough = call;
    this.#sentOn = client;
    return { client, number, answers: writeBatch(client, this.#h.sql, [lock], steps, true) };
  }

  /**
   * A node's batch: written (now, or already by {@link Applier.#sendEarly}), then its answers
   * read; tried again on a new connection when the connection is lost — its number tells
   * whether a lost try committed — and when a batch before it committed only on a retry.
   */
  async #run(call: number, node: NodeIdentity, steps: Step[], early: Sent | null): Promise<void> {
    const number = early?.number ?? ++this.#batchNo;
    let sent = early;
    let transactionFailures = 0;
    for (let lost = 0; ;) {
      try {
        sent ??= this.#send(call, await this.#connection(), node, steps, number);
        const answers = await sent.answers;
        // The first failure is the cause; those after it only say the transaction was aborted.
        const failed = answers.find((a) => a.status === 'rejected');
        if (failed === undefined) {
          this.#committedNo = number;
          return;
        }
        throw failed.reason;
      } catch (error) {
        const client = sent?.client ?? null;
        sent = null;
        if (isConnectionError(error) || this.#broken || client === null) {
          this.#drop();
          // A closing store does not wait for the database to come back.
          if (!this.#h.isOpen()) throw storeFailed('apply: connection lost while closing', error);
          // Reconnect and try again: the batch's number tells whether the lost try committed.
          await sleep(backoff(lost++));
          continue;
        }
        await this.#rollback(client);
        const label = rowCountLabel(error);
        if (label === 'lockNode') {
          const { lastBatch, live } = await this.#nodeState(client, node);
          if (lastBatch >= number) {
            // An earlier try of it committed.
            this.#committedNo = number;
            return;
          }
          // Written behind a batch that committed only on its retry: write it again.
          if (live && lastBatch === number - 1 && ++transactionFailures < TRANSACTION_ATTEMPTS)
            continue;
          throw leaseLost(node.nodeId, 'apply refused, nothing of the batch was stored');
        }
        if (label !== null) throw await missingRow(client, steps, label);
        if (isRetryableTransaction(error) && ++transactionFailures < TRANSACTION_ATTEMPTS) continue;
        throw applyError(error);
      }
    }
  }

  /**
   * A batch without a node (no `last_batch` to tell a lost COMMIT's outcome): statements one at a
   * time, so that a connection lost before COMMIT was sent is known not to have committed.
   */
  async #runAlone(batch: ChangeBatch, steps: Step[]): Promise<void> {
    const empty = Object.values(batch).every((part: readonly unknown[]) => part.length === 0);
    if (empty) return;
    const sql = this.#h.sql;
    let transactionFailures = 0;
    for (let lost = 0; ;) {
      let commitSent = false;
      let client: pg.PoolClient | null = null;
      try {
        client = await this.#connection();
        await client.query('BEGIN');
        for (const step of steps) await client.query(stepQuery(sql, step));
        commitSent = true;
        await client.query('COMMIT');
        return;
      } catch (error) {
        if (client === null ? isConnectionError(error) : isConnectionError(error) || this.#broken) {
          this.#drop();
          if (commitSent) {
            throw storeFailed(
              'apply: the connection was lost during COMMIT; outcome unknown',
              error,
            );
          }
          if (!this.#h.isOpen()) throw storeFailed('apply: connection lost while closing', error);
          await sleep(backoff(lost++));
          continue;
        }
        if (client !== null) await this.#rollback(client);
        const label = rowCountLabel(error);
        if (label !== null && client !== null) throw await missingRow(client, steps, label);
        if (isRetryableTransaction(error) && ++transactionFailures < TRANSACTION_ATTEMPTS) continue;
        throw applyError(error);
      }
    }
  }

  async #rollback(client: pg.PoolClient): Promise<void> {
    try {
      await client.query('ROLLBACK');
    } catch {
      this.#drop();
    }
  }

  /** The node's `last_batch` (-1 if the node registered again: another epoch), and whether it is not fenced. */
  async #nodeState(
    client: pg.PoolClient,
    node: NodeIdentity,
  ): Promise<{ lastBatch: number; live: boolean }> {
    const state = await client.query<{ fenced: boolean; epoch: number; last_batch: number }>({
      text: this.#h.sql.nodeState,
      values: [node.nodeId],
      types: TYPES,
    });
    const row = state.rows[0];
    if (row === undefined || row.epoch !== node.epoch) return { lastBatch: -1, live: false };
    return { lastBatch: row.last_batch, live: !row.fenced };
  }
}

/**
 * A new connection for applying batches, with the session settings batches rely on,
 * node-postgres pipelining on, and Bind messages built by bind.ts (the connection is held by
 * one applier and destroyed after).
 */
export async function openApplyConnection(
  host: ApplierHost,
  onError: () => void,
): Promise<pg.PoolClient> {
  const client = await host.pool.connect();
  client.on('error', onError);
  try {
    await client.query(
      `SET statement_timeout = ${host.statementTimeoutMs}; ` +
        `SET idle_in_transaction_session_timeout = ${IDLE_IN_TRANSACTION_TIMEOUT_MS}; ` +
        `SET application_name = 'coco/apply/${host.schema}'; ` +
        // A batch's UPDATE ... FROM unnest(...) touches a few thousand rows by primary key; for
        // large batches the planner prefers hashing the whole table, whose cost grows with the
        // table (measured: 10,000 command updates 372 -> 772 ms from 30k to 300k rows, against
        // 319 -> 374 ms by index). Batch statements are only ever keyed lookups: index them.
        'SET enable_hashjoin = off; SET enable_mergejoin = off; ' +
        // For the same reason the plan of a batch statement never depends on its values (keyed
        // lookups and inserts from unnest, whatever the rows): plan each prepared statement once.
        // With custom plans, planning at every BIND was ~0.2 ms of server time per statement — a
        // third of a command's end at light load (BENCHMARKS.md, latency). A plan made once must
        // not be the sequential scan the planner picks while a table is small or never analyzed
        // (a generic plan is kept until the table's statistics change, which without autovacuum
        // is never): keyed statements go by their index whatever the table's size.
        'SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off',
    );
  } catch (error) {
    destroyApplyConnection(client, onError);
    throw error;
  }
  // node-postgres pipelining (its `pipeline` client option, here on a connection of the pool
  // that this applier holds alone and destroys): queries are written at once, not each after
  // the previous answer.
  (client as pg.PoolClient & { pipeline: boolean }).pipeline = true;
  // Its Bind messages (a batch statement's column buffers) built at their size, copied once.
  useExactBind((client as pg.PoolClient & { connection?: unknown }).connection);
  return client;
}

/** Destroys an apply connection (it may be broken, or carry the session settings). */
export function destroyApplyConnection(client: pg.PoolClient, onError: () => void): void {
  client.off('error', onError);
  // A client that errored keeps emitting 'error' on late socket events: swallow them.
  client.on('error', () => undefined);
  client.release(true);
}

/**
 * Writes a batch on `client` without waiting for any answer (node-postgres pipelining): BEGIN,
 * the fencing statements `head`, the steps, and COMMIT if `commit`; its answers, in order.
 */
export function writeBatch(
  client: pg.PoolClient,
  sql: Sql,
  head: readonly pg.QueryConfig[],
  steps: readonly Step[],
  commit: boolean,
): Promise<PromiseSettledResult<pg.QueryResult>[]> {
  const queries: (string | pg.QueryConfig)[] = ['BEGIN', ...head];
  for (const step of steps) queries.push(stepQuery(sql, step));
  if (commit) queries.push('COMMIT');
  // node-postgres corks the socket around each query's messages; corked around the whole batch,
  // they leave in one write(2) instead of one per statement (and the server reads them at once).
  const stream = (client as pg.PoolClient & { connection?: { stream?: Partial<Writable> } })
    .connection?.stream;
  const corked = typeof stream?.cork === 'function' && typeof stream.uncork === 'function';
  if (corked) stream.cork();
  try {
    return Promise.allSettled(queries.map((q) => client.query(q)));
  } finally {
    if (corked) stream.uncork();
  }
}

/** A step as a prepared statement of the apply connection. */
export function stepQuery(sql: Sql, step: Step): pg.QueryConfig {
  return { name: `coco_${step.name}`, text: sql[step.name] as string, values: step.values };
}

/** The error of a failed row-count check: the statement, and the first row it did not find. */
export async function missingRow(
  client: pg.PoolClient,
  steps: Step[],
  label: string,
): Promise<CocoError> {
  const step = steps.find((st) => st.label === label);
  const row = step?.missing ? await step.missing(client) : '?';
  return new BatchRefusedError(`${step?.name ?? label}: no such row (${row})`);
}
