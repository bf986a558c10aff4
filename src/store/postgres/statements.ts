/**
 * Every SQL operation of the PostgreSQL store, by name, for one schema; plus the binders that
 * turn records into statement parameters.
 *
 * A batch is written with set-based statements: each table's inserts are one
 * `INSERT ... SELECT FROM (SELECT unnest($1::bigint[]) AS id, unnest($2::text[]) AS type, ...) u`,
 * its updates one `UPDATE ... FROM (SELECT unnest(...), ...) u`: one array parameter per column
 * (in PostgreSQL's binary array format: binary-arrays.ts), one round trip per
 * table instead of one per row.
 *
 * Record reads return positional rows (`rowMode: 'array'`), columns in the order of the
 * `*_COLUMNS` lists of src/store/rows/columns.ts, JSON as text and flags as 0/1: exactly the rows
 * the SQLite store reads, so the same validating parsers read both.
 *
 * @module
 */
import {
  COMMAND_COLUMNS,
  ENTITY_COLUMNS,
  TASK_COLUMNS,
  UNDO_COLUMNS,
  isActive,
  jsonText,
} from '../rows/parse.js';
import { stateText } from '../rows/state-text.js';
import type { CommandRecord, TaskRecord, UndoRecord } from '../../core/records.js';
import type { ChangeBatch, CommandUpdate, TaskUpdate, UndoUpdate } from '../port.js';
import { columnar } from './binary-arrays.js';
import { nodeApplyKey } from './shared-sql.js';
import { quoteIdent } from '../../db/postgres.js';

/** Boolean columns, read as 0/1 like SQLite's (the shared parsers expect that). */
const FLAGS: ReadonlySet<string> = new Set(['tasks_cleared', 'stop_requested']);

function select(columns: readonly string[], alias: string): string {
  return columns.map((c) => (FLAGS.has(c) ? `${alias}.${c}::int` : `${alias}.${c}`)).join(', ');
}

/**
 * `(SELECT unnest($1::t1[]) AS c1, unnest($2::t2[]) AS c2, ...) AS u`, numbering from `first`:
 * the column arrays side by side as rows (a shorter array is padded with nulls, as
 * `unnest(a, b, ...)` pads). Set-returning functions in the select list are read row by row
 * (ProjectSet); in FROM (`unnest(a, b, ...) AS u(...)`) each array was first copied into a
 * tuplestore of its own and read back — ~4 % of the apply backend's CPU (BENCHMARKS.md, issue 15).
 */
function unnest(columns: readonly (readonly [name: string, type: string])[], first = 1): string {
  const arrays = columns.map(([name, type], i) => `unnest($${first + i}::${type}[]) AS ${name}`);
  return `(SELECT ${arrays.join(', ')}) AS u`;
}

/** Insertable `commands` columns (all but `owner`, which the store sets), with their types. */
const COMMAND_INSERT: readonly (readonly [string, string])[] = [
  ['id', 'bigint'], ['type', 'text'], ['params_version', 'int'], ['params', 'text'],
  ['status', 'text'], ['parent_id', 'bigint'], ['root_id', 'bigint'], ['seq', 'int'],
  ['origin_stage', 'int'], ['child_mode', 'text'], ['failure_policy', 'text'],
  ['compensation', 'text'], ['error', 'text'], ['result', 'text'], ['state', 'text'],
  ['idempotency_key', 'text'], ['created_at', 'bigint'], ['updated_at', 'bigint'],
  ['ended_at', 'bigint'], ['tasks_cleared', 'bool'], ['lease_until', 'bigint'],
  ['trace_context', 'text'], ['active', 'bool'],
]; // prettier-ignore
/** Mutable `commands` columns (and `id`), in the order of {@link commandUpdateParams}. */
const COMMAND_UPDATE: readonly (readonly [string, string])[] = [
  ['id', 'bigint'], ['status', 'text'], ['compensation', 'text'], ['error', 'text'],
  ['result', 'text'], ['state', 'text'], ['updated_at', 'bigint'], ['ended_at', 'bigint'],
  ['tasks_cleared', 'bool'], ['lease_until', 'bigint'], ['active', 'bool'],
]; // prettier-ignore
const TASK_INSERT: readonly (readonly [string, string])[] = [
  ['command_id', 'bigint'], ['ordinal', 'int'], ['origin', 'int'], ['agent_id', 'text'],
  ['verb', 'text'], ['args', 'text'], ['status', 'text'], ['result', 'text'], ['error', 'text'],
  ['deadline_at', 'bigint'], ['stop_requested', 'bool'], ['created_at', 'bigint'],
  ['ended_at', 'bigint'],
]; // prettier-ignore
const TASK_UPDATE: readonly (readonly [string, string])[] = [
  ['command_id', 'bigint'], ['ordinal', 'int'], ['status', 'text'], ['result', 'text'],
  ['error', 'text'], ['stop_requested', 'bool'], ['ended_at', 'bigint'], ['deadline_at', 'bigint'],
]; // prettier-ignore
const UNDO_INSERT: readonly (readonly [string, string])[] = [
  ['command_id', 'bigint'], ['ordinal', 'int'], ['seq', 'int'], ['stage', 'int'], ['name', 'text'],
  ['data', 'text'], ['status', 'text'], ['error', 'text'],
]; // prettier-ignore
const UNDO_UPDATE: readonly (readonly [string, string])[] = [
  ['command_id', 'bigint'], ['ordinal', 'int'], ['status', 'text'], ['error', 'text'],
]; // prettier-ignore
const PARAMS_UPGRADE: readonly (readonly [string, string])[] = [
  ['id', 'bigint'], ['params_version', 'int'], ['params', 'text'],
]; // prettier-ignore
const ENTITY_PUT: readonly (readonly [string, string])[] = [
  ['kind', 'text'], ['id', 'text'], ['value', 'text'], ['command_id', 'bigint'], ['updated_at', 'bigint'],
]; // prettier-ignore
const TASK_KEY: readonly (readonly [string, string])[] = [
  ['command_id', 'bigint'],
  ['ordinal', 'int'],
];

function set(columns: readonly (readonly [string, string])[], skip: number): string {
  return columns
    .slice(skip)
    .map(([c]) => `${c} = u.${c}`)
    .join(', ');
}

/** The store's SQL for one schema, by operation name. */
export function buildSql(schema: string) {
  const s = quoteIdent(schema);
  const t = {
    commands: `${s}.commands`,
    tasks: `${s}.tasks`,
    undo: `${s}.undo_steps`,
    entities: `${s}.entities`,
    agents: `${s}.agents`,
    nodes: `${s}.coco_nodes`,
    lanes: `${s}.coco_apply_lanes`,
    agentLeases: `${s}.agent_leases`,
    reports: `${s}.task_reports`,
    ids: `${s}.coco_ids`,
    meta: `${s}.coco_meta`,
    held: `${s}.held_trees`,
    paused: `${s}.paused_types`,
    reruns: `${s}.reruns`,
  };
  const commandSelect = select(COMMAND_COLUMNS, 'c');
  const n = COMMAND_INSERT.length;
  // The row-count check ending a statement (migration 0004): parameters k (the expected count)
  // and k + 1 (the statement's label in the error).
  const expect = (k: number): string =>
    `${s}.coco_expect(count(*), $${k}::bigint, $${k + 1}::text) AS n`;
  return {
    tables: t,
    commandSelect,
    // -- apply --
    // Every statement of a batch is sent at once (applier.ts): each checks its own row count,
    // raising CO002 on a mismatch, which fails the statements after it and the COMMIT.
    lockNode:
      `WITH locked AS (UPDATE ${t.nodes} SET last_batch = $3 ` +
      // The batch right after the last one stored: a batch written behind one that failed
      // (applier.ts pipelines batches) is refused, whatever it holds.
      'WHERE node_id = $1 AND epoch = $2 AND NOT fenced AND last_batch = $3 - 1 RETURNING 1) ' +
      `SELECT ${expect(4)} FROM locked`,
    nodeState: `SELECT fenced, epoch, last_batch FROM ${t.nodes} WHERE node_id = $1`,
    // A lane's batch (lanes.ts, migration 0012) first holds the node's apply lock shared — its own
    // statement, so that the check after it reads the node row as it is once the lock is held
    // (READ COMMITTED takes a snapshot per statement) — then checks the node without locking its
    // row and numbers the batch in the lane's ledger, like lockNode.
    enterLane: `SELECT pg_advisory_xact_lock_shared(${nodeApplyKey(schema, '$1')})`,
    lockLane:
      `WITH locked AS (UPDATE ${t.lanes} SET last_batch = $4 ` +
      'WHERE node_id = $1 AND lane = $3 AND epoch = $2 AND last_batch = $4 - 1 ' +
      `AND EXISTS (SELECT 1 FROM ${t.nodes} WHERE node_id = $1 AND epoch = $2 AND NOT fenced) RETURNING 1) ` +
      `SELECT ${expect(5)} FROM locked`,
    laneState:
      `SELECT n.fenced, n.epoch, coalesce(l.last_batch, -1) AS last_batch FROM ${t.nodes} n ` +
      `LEFT JOIN ${t.lanes} l ON l.node_id = n.node_id AND l.lane = $2 AND l.epoch = n.epoch ` +
      'WHERE n.node_id = $1',
    // A command's first status and its time go in its own row (migration 0018), not a history row.
    insertCommands:
      `INSERT INTO ${t.commands} (${COMMAND_INSERT.map(([c]) => c).join(', ')}, owner, first_status, first_at) ` +
      `SELECT u.*, $${n + 1}::text, u.status, u.updated_at FROM ${unnest(COMMAND_INSERT)}`,
    // A root with an idempotency key, alone and before its tree runs (SharedStore.insertKeyedRoot):
    // inserted unless a command holds its key (then nothing, and no error), only while the node
    // is not fenced (as a batch: lockNode). Parameters: insertCommands' ($n + 1: the owner), then
    // the node's epoch.
    insertKeyedRoot:
      `WITH live AS (SELECT 1 FROM ${t.nodes} WHERE node_id = $${n + 1} AND epoch = $${n + 2} AND NOT fenced), ` +
      `ins AS (INSERT INTO ${t.commands} (${COMMAND_INSERT.map(([c]) => c).join(', ')}, owner, first_status, first_at) ` +
      `SELECT u.*, $${n + 1}::text, u.status, u.updated_at FROM ${unnest(COMMAND_INSERT)} WHERE EXISTS (SELECT 1 FROM live) ` +
      'ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING 1) ' +
      'SELECT (SELECT count(*) FROM live)::int AS live, (SELECT count(*) FROM ins)::int AS inserted',
    // The owner is the opened node: only the node owning a tree writes its commands.
    updateCommands:
      `WITH changed AS (UPDATE ${t.commands} c SET ${set(COMMAND_UPDATE, 1)}, ` +
      `owner = coalesce($${COMMAND_UPDATE.length + 1}::text, c.owner) ` +
      `FROM ${unnest(COMMAND_UPDATE)} WHERE c.id = u.id RETURNING 1) ` +
      `SELECT ${expect(COMMAND_UPDATE.length + 2)} FROM changed`,
    // A narrow update: the status columns are not written, so the transition triggers do not
    // fire. The relayed reports of a settled command are spent.
    settleCommands:
      `WITH settled AS (UPDATE ${t.commands} SET tasks_cleared = true, active = false WHERE id = ANY($1::bigint[]) RETURNING id), ` +
      `spent AS (DELETE FROM ${t.reports} r WHERE r.command_id IN (SELECT id FROM settled)) ` +
      `SELECT ${expect(2)} FROM settled`,
    upgradeParams:
      `WITH changed AS (UPDATE ${t.commands} c SET params_version = u.v, params = u.p ` +
      `FROM unnest($1::bigint[], $2::int[], $3::text[]) AS u(id, v, p) WHERE c.id = u.id RETURNING 1) ` +
      `SELECT ${expect(4)} FROM changed`,
    insertTasks: `INSERT INTO ${t.tasks} (${TASK_INSERT.map(([c]) => c).join(', ')}) SELECT * FROM ${unnest(TASK_INSERT)}`,
    // The relayed report of a task that ends is spent.
    updateTasks:
      `WITH changed AS (UPDATE ${t.tasks} t SET ${set(TASK_UPDATE, 2)} FROM ${unnest(TASK_UPDATE)} ` +
      'WHERE t.command_id = u.command_id AND t.ordinal = u.ordinal RETURNING t.command_id, t.ordinal, t.status), ' +
      `spent AS (DELETE FROM ${t.reports} r USING changed c WHERE r.command_id = c.command_id AND r.ordinal = c.ordinal ` +
      "AND c.status IN ('succeeded', 'failed', 'cancelled')) " +
      `SELECT ${expect(TASK_UPDATE.length + 1)} FROM changed`,
    insertUndo: `INSERT INTO ${t.undo} (${UNDO_INSERT.map(([c]) => c).join(', ')}) SELECT * FROM ${unnest(UNDO_INSERT)}`,
    updateUndo:
      `WITH changed AS (UPDATE ${t.undo} t SET ${set(UNDO_UPDATE, 2)} FROM ${unnest(UNDO_UPDATE)} ` +
      'WHERE t.command_id = u.command_id AND t.ordinal = u.ordinal RETURNING 1) ' +
      `SELECT ${expect(UNDO_UPDATE.length + 1)} FROM changed`,
    putEntities:
      `INSERT INTO ${t.entities} (kind, id, value, command_id, updated_at) ` +
      'SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[]) ' +
      'ON CONFLICT (kind, id) DO UPDATE SET value = EXCLUDED.value, command_id = EXCLUDED.command_id, updated_at = EXCLUDED.updated_at',
    deleteEntities:
      `DELETE FROM ${t.entities} e USING unnest($1::text[], $2::text[]) AS u(kind, id) ` +
      'WHERE e.kind = u.kind AND e.id = u.id',
    missingCommand: `SELECT u.id FROM unnest($1::bigint[]) AS u(id) WHERE NOT EXISTS (SELECT 1 FROM ${t.commands} c WHERE c.id = u.id) LIMIT 1`,
    missingTask: `SELECT u.command_id, u.ordinal FROM ${unnest(TASK_KEY)} WHERE NOT EXISTS (SELECT 1 FROM ${t.tasks} t WHERE t.command_id = u.command_id AND t.ordinal = u.ordinal) LIMIT 1`,
    missingUndo: `SELECT u.command_id, u.ordinal FROM ${unnest(TASK_KEY)} WHERE NOT EXISTS (SELECT 1 FROM ${t.undo} t WHERE t.command_id = u.command_id AND t.ordinal = u.ordinal) LIMIT 1`,

    // -- reads --
    getCommand: `SELECT ${commandSelect} FROM ${t.commands} c WHERE c.id = $1`,
    getCommandByKey: `SELECT ${commandSelect} FROM ${t.commands} c WHERE c.idempotency_key = $1`,
    getTasks: `SELECT ${select(TASK_COLUMNS, 't')} FROM ${t.tasks} t WHERE t.command_id = $1 ORDER BY t.ordinal`,
    getUndo: `SELECT ${select(UNDO_COLUMNS, 'u')} FROM ${t.undo} u WHERE u.command_id = $1 ORDER BY u.ordinal`,
    getEntity: `SELECT ${select(ENTITY_COLUMNS, 'e')} FROM ${t.entities} e WHERE e.kind = $1 AND e.id = $2`,
    // The history rows, the first status of the command's row (migration 0018) and its terminal
    // status at its end (0019), each of the last two unless a history row holds that status.
    getStatusHistory:
      `SELECT status, at FROM ${s}.command_status_history WHERE command_id = $1 ` +
      `UNION ALL SELECT c.first_status, c.first_at FROM ${t.commands} c ` +
      'WHERE c.id = $1 AND c.first_status IS NOT NULL AND NOT EXISTS ' +
      `(SELECT 1 FROM ${s}.command_status_history h WHERE h.command_id = $1 AND h.status = c.first_status) ` +
      `UNION ALL SELECT c.status, coalesce(c.ended_at, c.updated_at) FROM ${t.commands} c ` +
      "WHERE c.id = $1 AND c.status IN ('succeeded', 'failed', 'cancelled') " +
      'AND c.status IS DISTINCT FROM c.first_status AND NOT EXISTS ' +
      `(SELECT 1 FROM ${s}.command_status_history h WHERE h.command_id = $1 AND h.status = c.status)`,
    saveAgent:
      `INSERT INTO ${t.agents} (id, address, state, boot_id, last_seen_at, last_error, updated_at) ` +
      'VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, ' +
      'state = EXCLUDED.state, boot_id = EXCLUDED.boot_id, last_seen_at = EXCLUDED.last_seen_at, ' +
      'last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at',
    // Many agents in one statement (ids distinct: ON CONFLICT cannot touch a row twice).
    saveAgents:
      `INSERT INTO ${t.agents} (id, address, state, boot_id, last_seen_at, last_error, updated_at) ` +
      'SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[]) ' +
      'ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, ' +
      'state = EXCLUDED.state, boot_id = EXCLUDED.boot_id, last_seen_at = EXCLUDED.last_seen_at, ' +
      'last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at',
    listAgents: `SELECT id, address, state, boot_id, last_seen_at, last_error, updated_at FROM ${t.agents} ORDER BY id`,
    deleteAgent: `DELETE FROM ${t.agents} WHERE id = $1`,
    // Only while the node holds its lease ($3, $4: node id and epoch); `live` says whether it did.
    holdTrees:
      `WITH live AS (SELECT 1 FROM ${t.nodes} WHERE node_id = $3 AND epoch = $4 AND NOT fenced), ` +
      `held AS (INSERT INTO ${t.held} (root_id, error, refusals, held_at) ` +
      'SELECT u.id, u.e, 1, $5 FROM unnest($1::bigint[], $2::text[]) AS u(id, e) ' +
      `WHERE EXISTS (SELECT 1 FROM live) AND EXISTS (SELECT 1 FROM ${t.commands} c WHERE c.id = u.id AND c.parent_id IS NULL) ` +
      `ON CONFLICT (root_id) DO UPDATE SET error = EXCLUDED.error, refusals = ${t.held}.refusals + 1, ` +
      'held_at = EXCLUDED.held_at RETURNING 1) ' +
      'SELECT (SELECT count(*) FROM live)::int AS live',
    listHeld: `SELECT root_id, error, refusals, held_at FROM ${t.held} ORDER BY root_id`,
    releaseTree: `DELETE FROM ${t.held} WHERE root_id = $1`,
    // A pause: the one in force (the first, when the type was paused already); every node is
    // signalled ($5, $6: channel and payload) either way.
    pauseType:
      `WITH ins AS (INSERT INTO ${t.paused} (type, paused_at, paused_by, reason) VALUES ($1, $2, $3, $4) ` +
      'ON CONFLICT (type) DO NOTHING RETURNING type, paused_at, paused_by, reason), ' +
      'cur AS (SELECT * FROM ins UNION ALL ' +
      `SELECT type, paused_at, paused_by, reason FROM ${t.paused} WHERE type = $1 AND NOT EXISTS (SELECT 1 FROM ins)) ` +
      'SELECT cur.*, (SELECT count(*) FROM (SELECT pg_notify($5, $6)) n) AS notified FROM cur',
    // A resume: the pause it ended, if any (every node signalled then; $2, $3 as above).
    resumeType:
      `WITH d AS (DELETE FROM ${t.paused} WHERE type = $1 RETURNING type, paused_at, paused_by, reason) ` +
      'SELECT d.*, (SELECT count(*) FROM (SELECT pg_notify($2, $3)) n) AS notified FROM d',
    listPaused: `SELECT type, paused_at, paused_by, reason FROM ${t.paused} ORDER BY type`,
    linkRerun:
      `INSERT INTO ${t.reruns} (root_id, rerun_of, linked_at) SELECT $1, $2, $3 ` +
      `WHERE EXISTS (SELECT 1 FROM ${t.commands} WHERE id = $1 AND parent_id IS NULL) ` +
      'ON CONFLICT (root_id) DO NOTHING',
    rerunLinks:
      `SELECT (SELECT rerun_of FROM ${t.reruns} WHERE root_id = $1), ` +
      `coalesce((SELECT array_agg(root_id ORDER BY root_id) FROM ${t.reruns} WHERE rerun_of = $1), '{}')`,
    // Ids: the counter, never below the highest stored id (batches may insert ids they did not
    // reserve). max(id) is one probe of the primary key.
    reserveIds:
      `UPDATE ${t.ids} SET next_id = greatest(next_id, (SELECT coalesce(max(id), 0) + 1 FROM ${t.commands})) + $1 ` +
      'WHERE singleton RETURNING next_id - $1 AS first',
    ...activeReads(t.commands, t.tasks, t.undo, commandSelect),
  };
}

/** The SQL of a store, see {@link buildSql}. */
export type Sql = ReturnType<typeof buildSql>;

/**
 * The four queries of an active snapshot, restricted by `$1` (the owner; null for all) and, for
 * `loadRoots`, `$2` (root ids). Unnamed statements are planned with their values, so the
 * `IS NULL` branches fold away and the partial index commands_active (owner, id) is used.
 */
function activeReads(commands: string, tasks: string, undo: string, commandSelect: string) {
  const active = (a: string): string =>
    `${a}.active AND ($1::text IS NULL OR ${a}.owner = $1) ` +
    `AND ($2::bigint[] IS NULL OR ${a}.root_id = ANY($2::bigint[]))`;
  return {
    activeCommands: `SELECT ${commandSelect} FROM ${commands} c WHERE ${active('c')} ORDER BY c.id`,
    activeTasks:
      `SELECT ${select(TASK_COLUMNS, 't')} FROM ${commands} c JOIN ${tasks} t ON t.command_id = c.id ` +
      `WHERE ${active('c')} ORDER BY c.id, t.ordinal`,
    activeUndo:
      `SELECT ${select(UNDO_COLUMNS, 'u')} FROM ${commands} c JOIN ${undo} u ON u.command_id = c.id ` +
      `WHERE ${active('c')} ORDER BY c.id, u.ordinal`,
    endedChildren:
      `SELECT ${select(COMMAND_COLUMNS, 'k')} FROM ${commands} c JOIN ${commands} k ON k.parent_id = c.id ` +
      `WHERE ${active('c')} AND k.parent_id IS NOT NULL AND NOT k.active ORDER BY c.id, k.seq`,
  };
}

/** Parameters of `insertCommands`: column arrays, then the owner. */
export function commandInsertParams(
  rows: readonly CommandRecord[],
  owner: string | null,
): unknown[] {
  return [
    ...columnar(rows, COMMAND_INSERT, [
      (r) => r.id, (r) => r.type, (r) => r.paramsVersion, (r) => jsonText(r.params), (r) => r.status,
      (r) => r.parentId, (r) => r.rootId, (r) => r.seq, (r) => r.originStage, (r) => r.childMode,
      (r) => r.failurePolicy, (r) => r.compensation, (r) => jsonText(r.error),
      (r) => jsonText(r.result), (r) => stateText(r), (r) => r.idempotencyKey, (r) => r.createdAt,
      (r) => r.updatedAt, (r) => r.endedAt, (r) => r.tasksCleared, (r) => r.leaseUntil,
      (r) => r.traceContext ?? null, (r) => isActive(r.status, r.tasksCleared, r.compensation),
    ]), // prettier-ignore
    owner,
  ];
}

/** Parameters of `updateCommands`: column arrays, then the owner (null: left as it is). */
export function commandUpdateParams(
  rows: readonly CommandUpdate[],
  owner: string | null,
): unknown[] {
  return [
    ...columnar(rows, COMMAND_UPDATE, [
      (u) => u.id, (u) => u.status, (u) => u.compensation, (u) => jsonText(u.error),
      (u) => jsonText(u.result), (u) => stateText(u), (u) => u.updatedAt, (u) => u.endedAt,
      (u) => u.tasksCleared, (u) => u.leaseUntil,
      (u) => isActive(u.status, u.tasksCleared, u.compensation),
    ]), // prettier-ignore
    owner,
  ];
}

/** Parameters of `upgradeParams`. */
export function paramsUpgradeParams(rows: ChangeBatch['paramsUpgrades']): unknown[] {
  return columnar(rows, PARAMS_UPGRADE, [
    (p) => p.id, (p) => p.paramsVersion, (p) => jsonText(p.params),
  ]); // prettier-ignore
}

/** Parameters of `insertTasks`. */
export function taskInsertParams(rows: readonly TaskRecord[]): unknown[] {
  return columnar(rows, TASK_INSERT, [
    (t) => t.commandId, (t) => t.ordinal, (t) => t.origin, (t) => t.agentId, (t) => t.verb,
    (t) => jsonText(t.args), (t) => t.status, (t) => jsonText(t.result), (t) => jsonText(t.error),
    (t) => t.deadlineAt, (t) => t.stopRequested, (t) => t.createdAt, (t) => t.endedAt,
  ]); // prettier-ignore
}

/** Parameters of `updateTasks`. */
export function taskUpdateParams(rows: readonly TaskUpdate[]): unknown[] {
  return columnar(rows, TASK_UPDATE, [
    (t) => t.commandId, (t) => t.ordinal, (t) => t.status, (t) => jsonText(t.result),
    (t) => jsonText(t.error), (t) => t.stopRequested, (t) => t.endedAt, (t) => t.deadlineAt,
  ]); // prettier-ignore
}

/** Parameters of `insertUndo`. */
export function undoInsertParams(rows: readonly UndoRecord[]): unknown[] {
  return columnar(rows, UNDO_INSERT, [
    (u) => u.commandId, (u) => u.ordinal, (u) => u.seq, (u) => u.stage, (u) => u.name,
    (u) => jsonText(u.data), (u) => u.status, (u) => jsonText(u.error),
  ]); // prettier-ignore
}

/** Parameters of `updateUndo`. */
export function undoUpdateParams(rows: readonly UndoUpdate[]): unknown[] {
  return columnar(rows, UNDO_UPDATE, [
    (u) => u.commandId, (u) => u.ordinal, (u) => u.status, (u) => jsonText(u.error),
  ]); // prettier-ignore
}

/** Parameters of `putEntities` (writes whose value is not null). */
export function entityPutParams(rows: ChangeBatch['entityWrites']): unknown[] {
  return columnar(rows, ENTITY_PUT, [
    (w) => w.kind, (w) => w.id, (w) => jsonText(w.value), (w) => w.commandId, (w) => w.at,
  ]); // prettier-ignore
}

/** JSON text of a value, for parameters outside batches. */
export { jsonText };

/** Filters of a `listCommands` query, with its limit already checked. */
export interface ListFilter {
  readonly status?: readonly string[] | undefined;
  readonly type?: string | undefined;
  readonly parentId?: number | undefined;
  readonly rootId?: number | undefined;
  readonly rootsOnly?: boolean | undefined;
  readonly beforeId?: number | undefined;
  readonly createdAfter?: number | undefined;
  readonly createdBefore?: number | undefined;
  readonly endedAfter?: number | undefined;
  readonly endedBefore?: number | undefined;
  readonly limit: number;
}

/**
 * Builds the `listCommands` query from fixed fragments (values are always bound, never spliced),
 * newest first.
 */
export function listCommandsQuery(sql: Sql, f: ListFilter): { text: string; values: unknown[] } {
  const where: string[] = [];
  const values: unknown[] = [];
  const param = (v: unknown): string => {
    values.push(v);
    return `$${values.length}`;
  };
  if (f.parentId !== undefined) where.push(`c.parent_id = ${param(f.parentId)}`);
  if (f.rootId !== undefined) {
    // The root itself, or a descendant (commands_root).
    const p = param(f.rootId);
    where.push(`c.root_id = ${p}`);
  }
  if (f.rootsOnly === true) where.push('c.parent_id IS NULL');
  if (f.type !== undefined) where.push(`c.type = ${param(f.type)}`);
  if (f.status !== undefined) where.push(`c.status = ANY(${param(f.status)}::text[])`);
  if (f.beforeId !== undefined) where.push(`c.id < ${param(f.beforeId)}`);
  if (f.createdAfter !== undefined) where.push(`c.created_at >= ${param(f.createdAfter)}`);
  if (f.createdBefore !== undefined) where.push(`c.created_at < ${param(f.createdBefore)}`);
  if (f.endedAfter !== undefined) where.push(`c.ended_at >= ${param(f.endedAfter)}`);
  if (f.endedBefore !== undefined) where.push(`c.ended_at < ${param(f.endedBefore)}`);
  const clause = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
  return {
    text: `SELECT ${sql.commandSelect} FROM ${sql.tables.commands} c${clause} ORDER BY c.id DESC LIMIT ${param(f.limit)}`,
    values,
  };
}
