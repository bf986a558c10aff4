/**
 * `apply` of the PostgreSQL store through several connections of one node — its **lanes** (the
 * store option `applyConnections`, migration 0012) — so that a node's batches are not bound to
 * the speed of one server backend. The port's promise is kept: batches take effect in call
 * order, each exactly once, and once one fails, those called before its failure was reported
 * fail too without applying anything. How (BENCHMARKS.md, "Several apply connections per node"):
 *
 * - **Routing.** A batch's keys are the command ids of all its rows, its entity keys and its
 *   idempotency keys. A batch whose keys meet those of unsettled batches of exactly one lane goes
 *   behind them on that lane (same connection, so in order); of no lane, to the least loaded
 *   lane; of several, it waits until every batch before it has settled. So two lanes never wait
 *   on each other's row locks: no batch can block on a lock a later batch holds.
 * - **Commit order.** A batch's statements are written at once on its lane; its COMMIT only once
 *   the batch called just before it, if that one is on another lane, has committed (a lane's own
 *   batches commit in the connection's order). So what is durable is always a prefix of the call
 *   order — which the engine needs: a parent's update and its next stage's inserts may touch
 *   different rows and still depend on each other. If the batch before it failed, it is rolled
 *   back instead.
 * - **Exactly once.** Each lane numbers its batches in its own ledger row (`coco_apply_lanes`),
 *   as the one-connection applier does in the node's row: a batch's first statement after the
 *   lock passes only if the lane's last committed batch is the one before it. A lost connection
 *   or a refused try is resolved by the batch itself once every earlier batch of its lane has
 *   settled, on a connection of its own (the lane's connection may already carry a later batch
 *   waiting for its COMMIT); the lane's ledger tells whether a lost COMMIT took effect.
 * - **Fencing.** A lane's batch holds the node's advisory apply lock shared, then checks the node
 *   row (epoch, not fenced) without locking it — heartbeats keep updating that row. Whatever
 *   fences or replaces a node only tries that lock exclusively (shared-sql.ts), never waits, so a
 *   batch waiting in the client for an earlier one can never hold up a fencer that holds up it.
 *
 * A store not opened for a node has no ledger: its batches go through one connection
 * ({@link Applier}).
 *
 * @module
 */
import type pg from 'pg';
import { CocoError, ErrorCode } from '../../core/errors.js';
import {
  isConnectionError,
  isRetryableTransaction,
  sleep,
  storeFailed,
} from '../../db/postgres.js';
import type { ChangeBatch } from '../port.js';
import {
  Applier,
  destroyApplyConnection,
  missingRow,
  openApplyConnection,
  writeBatch,
  type ApplierHost,
  type NodeIdentity,
} from './applier.js';
import { batchSteps, rowCountLabel, type Step } from './batch-steps.js';
import { TYPES, applyError, backoff, leaseLost } from './connection.js';

/**
 * Tries of a batch that the server rolled back for a deadlock or a serialization failure, or that
 * was written behind a batch of its lane that committed only on a retry (as in applier.ts).
 */
const TRANSACTION_ATTEMPTS = 5;

/** What a batch touches, for routing: a command id, or a prefixed entity or idempotency key. */
type BatchKey = number | string;

/** One apply connection of the node and what runs on it. */
interface Lane {
  readonly index: number;
  client: pg.PoolClient | null;
  /** The lane's connection reported an error: the next batch to use it waits for a new one. */
  broken: boolean;
  readonly onError: () => void;
  /** Number given to the lane's last batch written. */
  batchNo: number;
  /** Number of the lane's last batch known committed. */
  committedNo: number;
  /** Settles once the lane's latest batch has written its COMMIT or ROLLBACK: the next may write. */
  writeTail: Promise<void>;
  /** Settles once the lane's latest batch has settled: batches read their answers in lane order. */
  doneTail: Promise<void>;
  /** Batches routed to the lane and not settled. */
  inFlight: number;
  /** The keys of each of those batches (a set per batch: released whole when it settles). */
  readonly held: BatchKeys[];
}

/** A call, as the call after it sees it. */
interface Call {
  readonly lane: Lane | Promise<Lane>;
  /** True once the batch committed; false once it cannot. */
  readonly committed: Promise<boolean>;
}

/** Statements written for a batch, and their answers to come. */
interface Sent {
  readonly client: pg.PoolClient;
  /** Written on a connection of the batch's own (a retry), not on its lane's. */
  readonly own: boolean;
  readonly answers: Promise<PromiseSettledResult<pg.QueryResult>[]>;
}

/** Errors of batches not applied because one called before them failed (see {@link doomed}). */
const DOOMED = new WeakSet<object>();

/** A batch that was not applied because one called before it failed. */
function doomed(): CocoError {
  const error = new CocoError(ErrorCode.StoreFailed, 'not applied: an earlier batch failed', {
    retryable: true,
  });
  DOOMED.add(error);
  return error;
}

/**
 * The rows a batch touches, by command id, entity key and idempotency key (see the module), each
 * once (a command's id comes with its own row and again with each of its tasks' rows), and the
 * range of its command ids: most batches of a busy node touch ids far from those of the batches
 * in flight (new commands, or older ones ending), which the ranges tell without a lookup per key.
 */
export class BatchKeys {
  /** Every key, once. */
  readonly keys = new Set<BatchKey>();
  /** Lowest and highest command id among the keys (an empty range when there is none). */
  lo = Infinity;
  hi = -Infinity;
  /** Whether any key is an entity or idempotency key. */
  named = false;

  /** Adds a command id. */
  id(id: number): void {
    this.keys.add(id);
    if (id < this.lo) this.lo = id;
    if (id > this.hi) this.hi = id;
  }

  /** Adds an entity or idempotency key. */
  name(key: string): void {
    this.keys.add(key);
    this.named = true;
  }

  /** Whether the two share a key. */
  meets(other: BatchKeys): boolean {
    // Command ids can meet only where the ranges overlap; names only if both have some.
    if ((this.hi < other.lo || other.hi < this.lo) && !(this.named && other.named)) return false;
    const [small, large] =
      this.keys.size <= other.keys.size ? [this.keys, other.keys] : [other.keys, this.keys];
    for (const k of small) if (large.has(k)) return true;
    return false;
  }
}

/** The keys of a batch (see {@link BatchKeys}). */
export function batchKeys(b: ChangeBatch): BatchKeys {
  const keys = new BatchKeys();
  for (const c of b.commandInserts) {
    keys.id(c.id);
    if (c.idempotencyKey !== null) keys.name(`i:${c.idempotencyKey}`);
  }
  for (const u of b.commandUpdates) keys.id(u.id);
  for (const p of b.paramsUpgrades) keys.id(p.id);
  for (const t of b.taskInserts) keys.id(t.commandId);
  for (const t of b.taskUpdates) keys.id(t.commandId);
  for (const u of b.undoInserts) keys.id(u.commandId);
  for (const u of b.undoUpdates) keys.id(u.commandId);
  for (const id of b.commandsSettled) keys.id(id);
  for (const w of b.entityWrites) keys.name(`e:${w.kind.length}:${w.kind}${w.id}`);
  return keys;
}

/** No keys: a batch that fails before it is written holds nothing. */
const NO_KEYS = new BatchKeys();

/** Applies a node's batches through several connections (see the module). */
export class LaneApplier {
  readonly #h: ApplierHost;
  readonly #lanes: Lane[];
  /** Batches of a store not opened for a node. */
  readonly #single: Applier;
  #node: NodeIdentity | null = null;
  #calls = 0;
  /** Calls in (after, through] of each pair fail without applying: made after `after` failed. */
  readonly #dooms: [after: number, through: number][] = [];
  /** A batch failed and its rejection has not been handled yet: calls made meanwhile are doomed. */
  #failureOpen = false;
  /** A batch failed: lanes number again from their last committed batch once all before settled. */
  #renumber = false;
  /** Calls waiting for every earlier call to settle before they pick a lane. */
  #barriers = 0;
  #prev: Call | null = null;
  /** Settles once every call so far has settled. */
  #settled: Promise<void> = Promise.resolve();

  constructor(host: ApplierHost, lanes: number) {
    this.#h = host;
    this.#single = new Applier(host);
    this.#lanes = Array.from({ length: lanes }, (_, index) => {
      const lane: Lane = {
        index,
        client: null,
        broken: false,
        onError: () => {
          lane.broken = true;
        },
        batchNo: 0,
        committedNo: 0,
        writeTail: Promise.resolve(),
        doneTail: Promise.resolve(),
        inFlight: 0,
        held: [],
      };
      return lane;
    });
  }

  /** How many lanes. */
  get size(): number {
    return this.#lanes.length;
  }

  /** From now on, batches are this node's, each lane numbered from its `lastBatches` entry. */
  setNode(node: NodeIdentity | null, lastBatches: readonly number[] = []): void {
    this.#node = node;
    for (const lane of this.#lanes) {
      lane.batchNo = lastBatches[lane.index] ?? 0;
      lane.committedNo = lane.batchNo;
    }
    this.#single.setNode(null);
  }

  /** Applies a batch after those called before it (see the module and the port). */
  apply(batch: ChangeBatch): Promise<void> {
    const node = this.#node;
    if (node === null) return this.#single.apply(batch);
    const call = ++this.#calls;
    // A batch failed and its rejection was not handled yet: this call is doomed with the others.
    if (this.#failureOpen) this.#dooms.at(-1)![1] = call;
    let steps: Step[] | Error;
    try {
      steps = batchSteps(this.#h.sql, batch, node.nodeId);
    } catch (error) {
      steps = error instanceof Error ? error : new Error(String(error));
    }
    const keys = steps instanceof Error ? NO_KEYS : batchKeys(batch);
    const prev = this.#prev;
    const prevSettled = this.#settled;
    let committed!: (ok: boolean) => void;
    const done = new Promise<boolean>((resolve) => (committed = resolve));
    const start = (lane: Lane): Promise<void> =>
      this.#start(lane, keys, committed, (turns) =>
        this.#run(call, lane, node, steps, prev, prevSettled, turns),
      );
    let run: Promise<void>;
    let routed: Lane | Promise<Lane>;
    const holding = this.#barriers === 0 ? this.#lanesHolding(keys) : null;
    if (holding !== null && holding.length <= 1) {
      const lane = holding[0] ?? this.#leastLoaded();
      routed = lane;
      run = start(lane);
    } else {
      // Its rows are in unsettled batches of several lanes: once all before it have settled,
      // no lane holds any of them.
      this.#barriers++;
      let chosen!: (lane: Lane) => void;
      routed = new Promise<Lane>((resolve) => (chosen = resolve));
      run = prevSettled.then(() => {
        this.#barriers--;
        const lane = this.#leastLoaded();
        chosen(lane);
        return start(lane);
      });
    }
    this.#prev = { lane: routed, committed: done };
    // Registered before the caller's reactions: it runs first when the batch fails, so calls
    // made after the failure was reported are not doomed.
    const settled = run.then(
      () => undefined,
      () => {
        this.#failureOpen = false;
      },
    );
    this.#settled = Promise.all([prevSettled, settled]).then(() => undefined);
    return run;
  }

  /** Waits for the batches called so far, then gives the connections back (destroyed). */
  async close(): Promise<void> {
    await this.#settled;
    await this.#single.close();
    for (const lane of this.#lanes) this.#dropLane(lane);
  }

  #doom(after: number, through: number): void {
    const last = this.#dooms.at(-1);
    if (last !== undefined && last[0] <= after && after <= last[1])
      last[1] = Math.max(last[1], through);
    else this.#dooms.push([after, through]);
    // Pairs whose calls have all settled long ago are of no more use.
    if (this.#dooms.length > 64) this.#dooms.shift();
  }

  #isDoomed(call: number): boolean {
    for (const [after, through] of this.#dooms) if (call > after && call <= through) return true;
    return false;
  }

  /** Lanes with an unsettled batch holding one of `keys`. */
  #lanesHolding(keys: BatchKeys): Lane[] {
    const out: Lane[] = [];
    for (const lane of this.#lanes) {
      for (const held of lane.held) {
        if (keys.meets(held)) {
          out.push(lane);
          break;
        }
      }
    }
    return out;
  }

  #leastLoaded(): Lane {
    let best = this.#lanes[0]!;
    for (const lane of this.#lanes) if (lane.inFlight < best.inFlight) best = lane;
    return best;
  }

  /** Routes a call to `lane`: its keys held, its turns taken, released when it settles. */
  #start(
    lane: Lane,
    keys: BatchKeys,
    committed: (ok: boolean) => void,
    body: (turns: Turns) => Promise<void>,
  ): Promise<void> {
    lane.held.push(keys);
    lane.inFlight++;
    const writeTurn = lane.writeTail;
    const doneTurn = lane.doneTail;
    let releaseWrite!: () => void;
    lane.writeTail = new Promise<void>((resolve) => (releaseWrite = resolve));
    const run = body({ writeTurn, doneTurn, releaseWrite }).then(
      () => committed(true),
      (error: unknown) => {
        committed(false);
        throw error;
      },
    );
    const done = run.finally(() => {
      releaseWrite();
      lane.inFlight--;
      lane.held.splice(lane.held.indexOf(keys), 1);
    });
    lane.doneTail = done.then(
      () => undefined,
      () => undefined,
    );
    return done;
  }

  /** A call's batch on its lane: written, gated, committed, its answers read and resolved. */
  async #run(
    call: number,
    lane: Lane,
    node: NodeIdentity,
    steps: Step[] | Error,
    prev: Call | null,
    prevSettled: Promise<void>,
    { writeTurn, doneTurn, releaseWrite }: Turns,
  ): Promise<void> {
    try {
      await writeTurn;
      if (this.#isDoomed(call)) throw doomed();
      if (steps instanceof Error) throw applyError(steps);
      let gate = prev;
      if (this.#renumber) {
        // Numbers given to batches that did not commit are void: once every batch before this
        // one has settled, each lane goes on from its last committed batch — and there is no
        // earlier batch left to wait for.
        await prevSettled;
        if (this.#isDoomed(call)) throw doomed();
        if (this.#renumber) {
          for (const l of this.#lanes) l.batchNo = l.committedNo;
          this.#renumber = false;
        }
        gate = null;
      }
      const number = ++lane.batchNo;
      // Only the lane's oldest unsettled batch replaces its connection: those before it may
      // still be resolving on connections of their own.
      if (lane.client === null || lane.broken) await doneTurn;
      let sent: Sent | null = null;
      try {
        const client = await this.#laneConnection(lane);
        sent = this.#write(client, lane, node, steps, number);
      } catch (error) {
        // No connection now: written on one of its own below, after its turn.
        if (!isConnectionError(error)) throw error;
      }
      // The batch before it, on another lane, must have committed before this one may (a
      // lane's own batches commit in its connection's order).
      const go = gate === null || (await gate.lane) === lane ? true : await gate.committed;
      if (!go) {
        if (sent !== null) void sent.client.query('ROLLBACK').catch(noop);
        releaseWrite();
        await sent?.answers;
        throw doomed();
      }
      const first: Sent | null =
        sent === null
          ? null
          : { ...sent, answers: withCommit(sent.answers, sent.client.query('COMMIT')) };
      releaseWrite();
      await doneTurn;
      if (this.#isDoomed(call)) {
        // Behind a batch that failed: its lane's ledger refuses it, whatever came back.
        await first?.answers;
        throw doomed();
      }
      await this.#settle(
        lane,
        node,
        steps,
        number,
        first ?? (await this.#resend(lane, node, steps, number)),
      );
    } catch (error) {
      // Its number (if it took one) is void. A batch that only followed a failure does not
      // doom the calls made since that failure was reported (as with one connection).
      this.#renumber = true;
      if (!DOOMED.has(error as object)) {
        this.#doom(call, this.#calls);
        this.#failureOpen = true;
      }
      throw error;
    }
  }

  /** The lane's connection, (re)connected if needed. */
  async #laneConnection(lane: Lane): Promise<pg.PoolClient> {
    if (lane.client !== null && !lane.broken) return lane.client;
    this.#dropLane(lane);
    const client = await openApplyConnection(this.#h, lane.onError);
    lane.client = client;
    lane.broken = false;
    return client;
  }

  #dropLane(lane: Lane): void {
    const client = lane.client;
    lane.client = null;
    if (client !== null) destroyApplyConnection(client, lane.onError);
  }

  /** Writes a batch's statements, BEGIN to its last step (no COMMIT), without waiting for answers. */
  #write(
    client: pg.PoolClient,
    lane: Lane,
    node: NodeIdentity,
    steps: Step[],
    number: number,
  ): Sent {
    const sql = this.#h.sql;
    const head: pg.QueryConfig[] = [
      { name: 'coco_enter_lane', text: sql.enterLane, values: [node.nodeId] },
      {
        name: 'coco_lock_lane',
        text: sql.lockLane,
        values: [node.nodeId, node.epoch, lane.index, number, 1, 'lockNode'],
      },
    ];
    return { client, own: false, answers: writeBatch(client, sql, head, steps, false) };
  }

  /**
   * Reads a written batch's answers and resolves what went wrong: a lost connection or a refused
   * try is written again, whole, on a connection of its own (the lane's may already carry a
   * later batch's open transaction), until the lane's ledger says it committed or it fails.
   */
  async #settle(
    lane: Lane,
    node: NodeIdentity,
    steps: Step[],
    number: number,
    first: Sent,
  ): Promise<void> {
    let sent: Sent = first;
    let transactionFailures = 0;
    for (let lost = 0; ;) {
      const answers = await sent.answers;
      const failed = answers.find((a) => a.status === 'rejected');
      if (failed === undefined) {
        lane.committedNo = number;
        if (sent.own) this.#adopt(lane, sent.client);
        return;
      }
      const error: unknown = failed.reason;
      const onLane = !sent.own && sent.client === lane.client;
      if (sent.own) destroyApplyConnection(sent.client, noop);
      if (isConnectionError(error) || (onLane && lane.broken)) {
        if (onLane) this.#dropLane(lane);
        // A closing store does not wait for the database to come back.
        if (!this.#h.isOpen()) throw storeFailed('apply: connection lost while closing', error);
        await sleep(backoff(lost++));
        sent = await this.#resend(lane, node, steps, number);
        continue;
      }
      // The server refused a statement: the transaction ended (rolled back) with its COMMIT.
      const label = rowCountLabel(error);
      if (label === 'lockNode') {
        const { lastBatch, live } = await this.#laneState(lane, node);
        if (lastBatch >= number) {
          // An earlier try of it committed.
          lane.committedNo = number;
          return;
        }
        // Written behind a batch of its lane that committed only on its retry: write it again.
        if (live && lastBatch === number - 1 && ++transactionFailures < TRANSACTION_ATTEMPTS) {
          sent = await this.#resend(lane, node, steps, number);
          continue;
        }
        throw leaseLost(node.nodeId, 'apply refused, nothing of the batch was stored');
      }
      if (label !== null) throw await this.#missing(steps, label);
      if (isRetryableTransaction(error) && ++transactionFailures < TRANSACTION_ATTEMPTS) {
        sent = await this.#resend(lane, node, steps, number);
        continue;
      }
      throw applyError(error);
    }
  }

  /** Writes a batch again, BEGIN to COMMIT, on a new connection of its own. */
  async #resend(lane: Lane, node: NodeIdentity, steps: Step[], number: number): Promise<Sent> {
    let client: pg.PoolClient;
    for (let lost = 0; ;) {
      try {
        client = await openApplyConnection(this.#h, noop);
        break;
      } catch (error) {
        if (!isConnectionError(error) || !this.#h.isOpen()) throw storeFailed('apply', error);
        await sleep(backoff(lost++));
      }
    }
    const sent = this.#write(client, lane, node, steps, number);
    return { client, own: true, answers: withCommit(sent.answers, client.query('COMMIT')) };
  }

  /** A connection a batch resent on becomes its lane's if the lane lost its own. */
  #adopt(lane: Lane, client: pg.PoolClient): void {
    if (lane.client === null || lane.broken) {
      this.#dropLane(lane);
      client.off('error', noop);
      client.on('error', lane.onError);
      lane.client = client;
      lane.broken = false;
    } else destroyApplyConnection(client, noop);
  }

  /** The lane's last committed batch under the node's epoch (-1 if none), and whether the node is live. */
  async #laneState(lane: Lane, node: NodeIdentity): Promise<{ lastBatch: number; live: boolean }> {
    const r = await this.#h.pool.query<{ fenced: boolean; epoch: number; last_batch: number }>({
      text: this.#h.sql.laneState,
      values: [node.nodeId, lane.index],
      types: TYPES,
    });
    const row = r.rows[0];
    if (row === undefined || row.epoch !== node.epoch) return { lastBatch: -1, live: false };
    return { lastBatch: row.last_batch, live: !row.fenced };
  }

  /** The error of a failed row-count check, read on a connection of the pool. */
  async #missing(steps: Step[], label: string): Promise<CocoError> {
    const client = await this.#h.pool.connect();
    let lost = false;
    try {
      return await missingRow(client, steps, label);
    } catch (error) {
      // Past the query deadline, the connection still waits for its answer: not given back.
      lost = isConnectionError(error);
      throw error;
    } finally {
      client.release(lost);
    }
  }
}

/** Listener of a connection a batch holds for a retry (its errors show in its answers). */
function noop(): void {}

/** A batch's answers with its COMMIT's after them. */
function withCommit(
  answers: Promise<PromiseSettledResult<pg.QueryResult>[]>,
  commit: Promise<pg.QueryResult>,
): Promise<PromiseSettledResult<pg.QueryResult>[]> {
  return Promise.all([answers, Promise.allSettled([commit])]).then(([a, c]) => [...a, ...c]);
}

/** A call's turns on its lane. */
interface Turns {
  readonly writeTurn: Promise<void>;
  readonly doneTurn: Promise<void>;
  readonly releaseWrite: () => void;
}
