/**
 * Every SQL operation of the SQLite store, by name, in one place; plus the binders that turn
 * records into statement parameters (JSON as text, booleans as 0/1).
 *
 * Reads return positional rows: columns in the order of the `*_COLUMNS` lists of store/rows/columns.ts, which
 * parses them.
 *
 * @module
 */
import type Database from 'better-sqlite3';
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { CommandRecord, EntityWrite, TaskRecord, UndoRecord } from '../../core/records.js';
import type { ChangeBatch, CommandUpdate, TaskUpdate, UndoUpdate } from '../port.js';
import {
  COMMAND_COLUMNS,
  COMMAND_EMBEDDED_ORDER,
  COMMAND_JSON_AT,
  ENTITY_COLUMNS,
  TASK_COLUMNS,
  TASK_EMBEDDED_ORDER,
  TASK_JSON_AT,
  UNDO_COLUMNS,
  isActive,
  jsonText,
} from '../rows/parse.js';
import { addStateText } from '../rows/state-text.js';

type Db = Database.Database;
type Stmt = Database.Statement<unknown[], unknown>;

/** Mutable `commands` columns, in the order of {@link commandUpdateValues} (then `id`). */
const COMMAND_UPDATE_COLUMNS = [
  'status', 'compensation', 'error', 'result', 'state', 'updated_at', 'ended_at', 'tasks_cleared',
  'owner', 'lease_until', 'active',
] as const; // prettier-ignore

function list(columns: readonly string[], alias: string): string {
  return columns.map((c) => `${alias}.${c}`).join(', ');
}

function placeholders(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ');
}

/** Columns of a command row (positional, see store/rows/columns.ts), for table alias `c`. */
export const COMMAND_SELECT = list(COMMAND_COLUMNS, 'c');
const TASK_SELECT = list(TASK_COLUMNS, 't');
const UNDO_SELECT = list(UNDO_COLUMNS, 'u');

/**
 * The same columns as one JSON array text per row. Bulk loads read rows this way: SQLite
 * serialising and V8's JSON.parse cost about a quarter less CPU than the driver converting
 * each value (measured on 100k commands). TEXT columns, JSON text included (even invalid), stay plain
 * strings inside the array, so each row is still parsed and reported on its own by store/rows/parse.ts. A
 * BLOB anywhere makes json_array fail, so loads fall back to the plain form (operations.ts).
 */
function asJson(columns: readonly string[], alias: string): string {
  return `json_array(${list(columns, alias)})`;
}

/**
 * {@link asJson} with the JSON columns at `embed` (positions in `columns`) embedded as their
 * values, not as strings holding their text: the row's one `JSON.parse` parses them too (see
 * store/rows/parse-fast.ts, "embedded" rows), where each cost a parse and a string of its own.
 * The row's values come in the embedded order (store/rows/columns.ts `embeddedOrder`: the JSON
 * columns first, then the others as one `json_array`, its opening bracket cut).
 *
 * Only strict JSON text is embedded, as it is stored: `json_valid(x, 1)` checks it (one parse,
 * no result built; V8's `JSON.parse` accepts all it accepts) and the text itself is spliced in.
 * The former `json(x)` after the check parsed it again and wrote it out anew: the reader
 * thread's whole work for 100,000 one-task commands (callgrind, both queries, their strings and
 * parts) was 2.77 G instructions with it, 2.55 G now. `json()` alone would turn JSON5 into JSON,
 * which the parsers refuse. `x < x''`
 * keeps BLOBs out (a TEXT column holds only text, BLOBs and NULL; text sorts before any BLOB),
 * which the plain form reports. For anything else the JSON form fails as for a BLOB in
 * `json_array`, through `json('')` (malformed, on purpose), and the chunk is read in its plain
 * form, where the parsers report the row.
 */
function asEmbeddedJson(
  columns: readonly string[],
  alias: string,
  embed: readonly number[],
  order: readonly number[],
): string {
  if (order.slice(0, embed.length).some((c, i) => c !== embed[i]))
    throw new Error('the embedded order must begin with the JSON columns');
  const col = (i: number): string => `${alias}.${columns[i]!}`;
  const json = embed.map(
    (i) =>
      `CASE WHEN ${col(i)} IS NULL THEN 'null' WHEN ${col(i)} < x'' AND json_valid(${col(i)}, 1) THEN ${col(i)} ELSE json('') END`,
  );
  // The first of the others is a number, a JSON string or null: ltrim cuts only the bracket.
  const rest = `ltrim(json_array(${order.slice(embed.length).map(col).join(', ')}), '[')`;
  // concat(): one string built, where each `||` copied the row so far (2.55 against 2.65 G
  // instructions, as above).
  return `concat('[', ${json.join(", ',', ")}, ',', ${rest})`;
}

/**
 * Where a statement's parameters go, one value at a time in the statement's order: an array for
 * `st.run(...values)` (the inline path, {@link rowValues}), or the columns the writer thread
 * reads (writer.ts `ColumnEncoder`), filled straight from the records with no array per row.
 */
export interface ValueSink {
  /** The next parameter. */
  add(value: unknown): void;
  /**
   * The next parameter, a text many rows repeat (a command's `state`, rows/state-text.ts): the writer
   * thread's columns send it once per operation, however long.
   */
  addShared(text: string): void;
}

/**
 * A statement's parameters read from a record: the ONE definition of their order, used by the
 * inline path and the writer thread alike (they cannot drift apart). `write` adds exactly
 * `width` values.
 */
export interface RowCodec<T> {
  readonly width: number;
  write(record: T, out: ValueSink): void;
}

/** A sink collecting values into an array (what the inline path binds). */
class ArraySink implements ValueSink {
  readonly values: unknown[] = [];
  add(value: unknown): void {
    this.values.push(value);
  }
  addShared(text: string): void {
    this.values.push(text);
  }
}

/** The parameters `codec` reads from `record`, as an array. */
export function rowValues<T>(codec: RowCodec<T>, record: T): unknown[] {
  const sink = new ArraySink();
  codec.write(record, sink);
  if (sink.values.length !== codec.width)
    throw new RangeError(`a row of ${sink.values.length} values, not ${codec.width}`);
  return sink.values;
}

/** Parameters of `insertCommand`. */
export const COMMAND_INSERT: RowCodec<CommandRecord> = {
  width: COMMAND_COLUMNS.length + 1,
  write(r, out) {
    out.add(r.id);
    out.add(r.type);
    out.add(r.paramsVersion);
    out.add(jsonText(r.params));
    out.add(r.status);
    out.add(r.parentId);
    out.add(r.rootId);
    out.add(r.seq);
    out.add(r.originStage);
    out.add(r.childMode);
    out.add(r.failurePolicy);
    out.add(r.compensation);
    out.add(jsonText(r.error));
    out.add(jsonText(r.result));
    addStateText(r, out);
    out.add(r.idempotencyKey);
    out.add(r.createdAt);
    out.add(r.updatedAt);
    out.add(r.endedAt);
    out.add(r.tasksCleared ? 1 : 0);
    out.add(r.owner);
    out.add(r.leaseUntil);
    out.add(r.traceContext ?? null);
    out.add(isActive(r.status, r.tasksCleared, r.compensation) ? 1 : 0);
  },
};

/** Parameters of `updateCommand`. */
export const COMMAND_UPDATE: RowCodec<CommandUpdate> = {
  width: COMMAND_UPDATE_COLUMNS.length + 1,
  write(u, out) {
    out.add(u.status);
    out.add(u.compensation);
    out.add(jsonText(u.error));
    out.add(jsonText(u.result));
    addStateText(u, out);
    out.add(u.updatedAt);
    out.add(u.endedAt);
    out.add(u.tasksCleared ? 1 : 0);
    out.add(u.owner);
    out.add(u.leaseUntil);
    out.add(isActive(u.status, u.tasksCleared, u.compensation) ? 1 : 0);
    out.add(u.id);
  },
};

/**
 * Parameters of `updateCommandState`: a state-only update (`CommandUpdate.stateOnly`), whose
 * other columns already hold its values.
 */
export const COMMAND_STATE_UPDATE: RowCodec<CommandUpdate> = {
  width: 3,
  write(u, out) {
    addStateText(u, out);
    out.add(u.updatedAt);
    out.add(u.id);
  },
};

/** Parameters of `insertTask`. */
export const TASK_INSERT: RowCodec<TaskRecord> = {
  width: TASK_COLUMNS.length,
  write(t, out) {
    out.add(t.commandId);
    out.add(t.ordinal);
    out.add(t.origin);
    out.add(t.agentId);
    out.add(t.verb);
    out.add(jsonText(t.args));
    out.add(t.status);
    out.add(jsonText(t.result));
    out.add(jsonText(t.error));
    out.add(t.deadlineAt);
    out.add(t.stopRequested ? 1 : 0);
    out.add(t.createdAt);
    out.add(t.endedAt);
  },
};

/** Parameters of `updateTask`. */
export const TASK_UPDATE: RowCodec<TaskUpdate> = {
  width: 8,
  write(t, out) {
    out.add(t.status);
    out.add(jsonText(t.result));
    out.add(jsonText(t.error));
    out.add(t.stopRequested ? 1 : 0);
    out.add(t.endedAt);
    out.add(t.deadlineAt);
    out.add(t.commandId);
    out.add(t.ordinal);
  },
};

/** Parameters of `insertUndo`. */
export const UNDO_INSERT: RowCodec<UndoRecord> = {
  width: UNDO_COLUMNS.length,
  write(u, out) {
    out.add(u.commandId);
    out.add(u.ordinal);
    out.add(u.seq);
    out.add(u.stage);
    out.add(u.name);
    out.add(jsonText(u.data));
    out.add(u.status);
    out.add(jsonText(u.error));
  },
};

/** Parameters of `updateUndo`. */
export const UNDO_UPDATE: RowCodec<UndoUpdate> = {
  width: 4,
  write(u, out) {
    out.add(u.status);
    out.add(jsonText(u.error));
    out.add(u.commandId);
    out.add(u.ordinal);
  },
};

/** Parameters of `settleCommand`: the command's id. */
export const COMMAND_SETTLE: RowCodec<number> = {
  width: 1,
  write(id, out) {
    out.add(id);
  },
};

/** Parameters of `upgradeParams`. */
export const PARAMS_UPGRADE: RowCodec<ChangeBatch['paramsUpgrades'][number]> = {
  width: 3,
  write(p, out) {
    out.add(p.paramsVersion);
    out.add(jsonText(p.params));
    out.add(p.id);
  },
};

/** Parameters of `putEntity` (a write whose value is not null). */
export const ENTITY_PUT: RowCodec<EntityWrite> = {
  width: 5,
  write(w, out) {
    out.add(w.kind);
    out.add(w.id);
    out.add(jsonText(w.value));
    out.add(w.commandId);
    out.add(w.at);
  },
};

/** Parameters of `deleteEntity` (a write whose value is null). */
export const ENTITY_DELETE: RowCodec<EntityWrite> = {
  width: 2,
  write(w, out) {
    out.add(w.kind);
    out.add(w.id);
  },
};

/** Parameters of `insertCommand`. */
export function commandInsertValues(r: CommandRecord): unknown[] {
  return rowValues(COMMAND_INSERT, r);
}

/** Parameters of `updateCommand`. */
export function commandUpdateValues(u: CommandUpdate): unknown[] {
  return rowValues(COMMAND_UPDATE, u);
}

/** Parameters of `insertTask`. */
export function taskInsertValues(t: TaskRecord): unknown[] {
  return rowValues(TASK_INSERT, t);
}

/** Parameters of `updateTask`. */
export function taskUpdateValues(t: TaskUpdate): unknown[] {
  return rowValues(TASK_UPDATE, t);
}

/**
 * Active commands a restart reads per query (see operations.ts `readActive`): a chunk's row texts
 * and records die young, where a million read at once went through the old generation and its
 * full collections (garbage collection was 41 % of a 1,000,000-command restart).
 */
export const LOAD_CHUNK = 20_000;

/**
 * Active commands the reader thread (reader.ts) reads per query: each query's rows go to the main
 * thread as one part (one JSON text), so they are never held in the thread beyond their part (a
 * chunk of 20,000 row texts held while its parts were cut kept the thread's young generation
 * copying them), and a part's rows alive at once on the main thread stay far below its young
 * generation (1,000 command rows: ~220 KB of text, ~0.6 MB parsed).
 */
export const READ_PART = 1_000;

// Each load query covers the active commands with ids in (?, ?]: one chunk.
const ACTIVE_COMMANDS =
  'FROM commands c INDEXED BY commands_active WHERE c.active = 1 AND c.id > ? AND c.id <= ? ORDER BY c.id';
const ACTIVE_TASKS =
  'FROM commands c INDEXED BY commands_active CROSS JOIN tasks t ON t.command_id = c.id WHERE c.active = 1 AND c.id > ? AND c.id <= ? ORDER BY c.id, t.ordinal';
const ACTIVE_UNDO =
  'FROM commands c INDEXED BY commands_active CROSS JOIN undo_steps u ON u.command_id = c.id WHERE c.active = 1 AND c.id > ? AND c.id <= ? ORDER BY c.id, u.ordinal';
const ENDED_CHILDREN =
  'FROM commands p INDEXED BY commands_active CROSS JOIN commands c INDEXED BY commands_children ON c.parent_id = p.id ' +
  'WHERE p.active = 1 AND p.id > ? AND p.id <= ? AND c.parent_id IS NOT NULL AND c.active = 0 ORDER BY p.id, c.seq';

/**
 * `insertCommand`: the row's columns and `active` from its {@link COMMAND_INSERT} values, and its
 * first status and time (first_status, first_at: migration 0008) from the same values again — its
 * `status` and `updated_at`, which the dropped insert trigger wrote into the history. A VALUES
 * tuple cannot name another of its values, and numbered parameters (`?5` twice) cannot be bound
 * by position in better-sqlite3 (a `?NNN` has a name, and its binder skips named parameters when
 * it binds by position: they take an object, keyed by name, per run), so the tuple is read
 * through a subquery whose columns (`column1` …) the SELECT names twice. The writer thread's
 * 20-row form repeats the tuple inside it ({@link multiRowInsert}). Measured against binding the
 * two values again (26 per row; callgrind, 20-row runs of 100 commands per transaction): the same
 * writer work per command, within 1 % — SQLite's copy of a row out of the subquery costs what
 * binding two more values did — and the rows sent to the writer stay 24 values wide.
 *
 * SQLite writes an INSERT … SELECT through a temporary table when the table has an INSERT
 * trigger; `commands` has none since 0008 (a new one would make this form dearer).
 */
const COMMAND_INSERT_SQL = (() => {
  const status = COMMAND_COLUMNS.indexOf('status') + 1;
  const updatedAt = COMMAND_COLUMNS.indexOf('updated_at') + 1;
  return (
    `INSERT OR ROLLBACK INTO commands (${[...COMMAND_COLUMNS, 'active', 'first_status', 'first_at'].join(', ')}) ` +
    `SELECT *, column${status}, column${updatedAt} FROM (VALUES (${placeholders(COMMAND_COLUMNS.length + 1)}))`
  );
})();

/**
 * The store's SQL, by operation name. Record reads return positional rows (see store/rows/columns.ts);
 * {@link prepareStatements} sets each statement's mode.
 */
export const SQL = {
  // The batch statements say OR ROLLBACK (and the triggers RAISE(ROLLBACK), migration 0007): a
  // batch is all or nothing, so SQLite need not keep a statement journal to back out one failed
  // statement (~14 % of its work per row, BENCHMARKS.md). A failure ends the transaction.
  insertCommand: COMMAND_INSERT_SQL,
  updateCommand: `UPDATE OR ROLLBACK commands SET ${COMMAND_UPDATE_COLUMNS.map((c) => `${c} = ?`).join(', ')} WHERE id = ?`,
  // A state-only update (CommandUpdate.stateOnly): a chain's parent moving to its next stage
  // binds 3 values, not 12, fires no transition or history trigger (status and compensation
  // are not written) and moves no index entry (`active`, `ended_at` are not written either):
  // the writer thread ran ~6 % fewer instructions per chain (4 of its 10 command updates;
  // callgrind, BENCHMARKS.md).
  updateCommandState: 'UPDATE OR ROLLBACK commands SET state = ?, updated_at = ? WHERE id = ?',
  upgradeParams: 'UPDATE OR ROLLBACK commands SET params_version = ?, params = ? WHERE id = ?',
  // A narrow update: the status columns are not written, so the transition triggers do not fire.
  settleCommand: 'UPDATE OR ROLLBACK commands SET tasks_cleared = 1, active = 0 WHERE id = ?',
  insertTask: `INSERT OR ROLLBACK INTO tasks (${TASK_COLUMNS.join(', ')}) VALUES (${placeholders(TASK_COLUMNS.length)})`,
  updateTask:
    'UPDATE OR ROLLBACK tasks SET status = ?, result = ?, error = ?, stop_requested = ?, ended_at = ?, deadline_at = ? WHERE command_id = ? AND ordinal = ?',
  insertUndo: `INSERT OR ROLLBACK INTO undo_steps (${UNDO_COLUMNS.join(', ')}) VALUES (${placeholders(UNDO_COLUMNS.length)})`,
  updateUndo:
    'UPDATE OR ROLLBACK undo_steps SET status = ?, error = ? WHERE command_id = ? AND ordinal = ?',
  putEntity:
    'INSERT OR ROLLBACK INTO entities (kind, id, value, command_id, updated_at) VALUES (?, ?, ?, ?, ?) ' +
    'ON CONFLICT (kind, id) DO UPDATE SET value = excluded.value, command_id = excluded.command_id, updated_at = excluded.updated_at',
  deleteEntity: 'DELETE FROM entities WHERE kind = ? AND id = ?',

  getCommand: `SELECT ${COMMAND_SELECT} FROM commands c WHERE c.id = ?`,
  getCommandByKey: `SELECT ${COMMAND_SELECT} FROM commands c WHERE c.idempotency_key = ?`,
  getTasks: `SELECT ${TASK_SELECT} FROM tasks t WHERE t.command_id = ? ORDER BY t.ordinal`,
  getUndo: `SELECT ${UNDO_SELECT} FROM undo_steps u WHERE u.command_id = ? ORDER BY u.ordinal`,
  getEntity: `SELECT ${list(ENTITY_COLUMNS, 'e')} FROM entities e WHERE e.kind = ? AND e.id = ?`,
  maxCommandId: 'SELECT max(id) AS maxId FROM commands',
  // A command's statuses (store/rows/parse.ts `statusHistory` sorts them): its history rows, the
  // first status of its row and its terminal status at its end (migration 0008), each of the last
  // two unless a history row holds that status (a row stored before 0008, or left by hand). An
  // inserted terminal status is the first one, read once. Bound by name (`{ id }`).
  getStatusHistory:
    'SELECT status, at FROM command_status_history WHERE command_id = @id ' +
    'UNION ALL SELECT c.first_status, c.first_at FROM commands c WHERE c.id = @id AND c.first_status IS NOT NULL ' +
    'AND NOT EXISTS (SELECT 1 FROM command_status_history h WHERE h.command_id = @id AND h.status = c.first_status) ' +
    'UNION ALL SELECT c.status, coalesce(c.ended_at, c.updated_at) FROM commands c WHERE c.id = @id ' +
    "AND c.status IN ('succeeded', 'failed', 'cancelled') AND c.status IS NOT c.first_status " +
    'AND NOT EXISTS (SELECT 1 FROM command_status_history h WHERE h.command_id = @id AND h.status = c.status)',

  // loadActive: set-based over the partial index commands_active. CROSS JOIN keeps the active
  // commands as the outer loop (SQLite never reorders it): without statistics the planner would
  // rather scan every task ever stored and probe the index. Each has a `...Json` form (see asJson).
  // The last active command id of the chunk after the given one (none: the chunk is the last).
  activeChunkEnd: `SELECT c.id AS id FROM commands c INDEXED BY commands_active WHERE c.active = 1 AND c.id > ? ORDER BY c.id LIMIT 1 OFFSET ${LOAD_CHUNK - 1}`,
  // The same for the reader thread's parts.
  activePartEnd: `SELECT c.id AS id FROM commands c INDEXED BY commands_active WHERE c.active = 1 AND c.id > ? ORDER BY c.id LIMIT 1 OFFSET ${READ_PART - 1}`,
  activeCommands: `SELECT ${COMMAND_SELECT} ${ACTIVE_COMMANDS}`,
  activeCommandsJson: `SELECT ${asEmbeddedJson(COMMAND_COLUMNS, 'c', COMMAND_JSON_AT, COMMAND_EMBEDDED_ORDER)} ${ACTIVE_COMMANDS}`,
  activeTasks: `SELECT ${TASK_SELECT} ${ACTIVE_TASKS}`,
  activeTasksJson: `SELECT ${asEmbeddedJson(TASK_COLUMNS, 't', TASK_JSON_AT, TASK_EMBEDDED_ORDER)} ${ACTIVE_TASKS}`,
  activeUndo: `SELECT ${UNDO_SELECT} ${ACTIVE_UNDO}`,
  activeUndoJson: `SELECT ${asJson(UNDO_COLUMNS, 'u')} ${ACTIVE_UNDO}`,
  endedChildren: `SELECT ${COMMAND_SELECT} ${ENDED_CHILDREN}`,
  endedChildrenJson: `SELECT ${asJson(COMMAND_COLUMNS, 'c')} ${ENDED_CHILDREN}`,

  // Ownership.
  getOwner:
    'SELECT node_id AS nodeId, pid, host, heartbeat_at AS heartbeatAt, since FROM coco_owner WHERE singleton = 1',
  putOwner:
    'INSERT INTO coco_owner (singleton, node_id, pid, host, heartbeat_at, since) VALUES (1, ?, ?, ?, ?, ?) ' +
    'ON CONFLICT (singleton) DO UPDATE SET node_id = excluded.node_id, pid = excluded.pid, host = excluded.host, ' +
    'heartbeat_at = excluded.heartbeat_at, since = excluded.since',
  heartbeat:
    'UPDATE coco_owner SET heartbeat_at = ? WHERE singleton = 1 AND node_id = ? AND pid = ? AND host = ?',
  releaseOwner:
    'DELETE FROM coco_owner WHERE singleton = 1 AND node_id = ? AND pid = ? AND host = ?',
  getStoreId: "SELECT value FROM coco_meta WHERE key = 'store_id'",
} as const;

/**
 * Rows per multi-row insert in the writer thread (writer.ts): one statement run stores this many
 * rows of a batch's inserts, where one run per row paid better-sqlite3's call, its result object
 * and SQLite's per-statement start and reset each time. Measured on fan-out batches replayed in
 * one thread (CPU per parent, BENCHMARKS.md): 8, 20 and 50 rows within a few percent of each
 * other, 100 slower; 20 keeps a statement's parameters (24 per command) far below SQLite's limit.
 */
export const MULTI_ROWS = 20;

/**
 * `sql` (an INSERT of one `VALUES (?, ...)` tuple, as its last clause or inside a closing
 * subquery: `insertCommand`) storing `rows` rows per run: the tuple repeated in place.
 */
export function multiRowInsert(sql: string, rows: number): string {
  const at = sql.lastIndexOf('VALUES (') + 'VALUES '.length;
  const end = sql.indexOf(')', at) + 1;
  const tuple = sql.slice(at, end);
  if (!sql.startsWith('INSERT ') || !/^\((\?, )*\?\)$/.test(tuple) || !/^\)*$/.test(sql.slice(end)))
    throw new Error(`not a one-row INSERT: ${sql}`);
  const many = Array.from({ length: rows }, () => tuple).join(', ');
  return `${sql.slice(0, at)}${many}${sql.slice(end)}`;
}

/** The inserts the writer thread runs {@link MULTI_ROWS} rows at a time, by statement name. */
export const MULTI_ROW_SQL: Readonly<Record<string, string>> = {
  insertCommand: multiRowInsert(SQL.insertCommand, MULTI_ROWS),
  insertTask: multiRowInsert(SQL.insertTask, MULTI_ROWS),
  insertUndo: multiRowInsert(SQL.insertUndo, MULTI_ROWS),
};

/**
 * A multi-row form of a one-row update (writer.ts): the update of {@link MULTI_ROWS} rows per run,
 * joined to their values (`UPDATE ... FROM (VALUES ...)`), and what the writer needs to keep the
 * one-row form's guarantees.
 */
export interface MultiRowUpdate {
  /** The update of `rows` rows per run: each row's values in the one-row update's order. */
  readonly sql: string;
  /** How many values at each row's end key its row (the one-row update's `WHERE` parameters). */
  readonly keys: number;
  /** Whether a key's row exists (one row, or none), with the key's values: names a missing row. */
  readonly exists: string;
}

/**
 * `sql`, a one-row update `UPDATE OR ROLLBACK <table> SET <col> = ?|<literal>, ... WHERE <key> = ?
 * AND ...` (its parameters the SET values, then the keys), as an update of `rows` rows per run:
 * `UPDATE OR ROLLBACK <table> AS t SET <col> = v.columnN, ... FROM (VALUES (...), ...) AS v WHERE
 * t.<key> = v.columnM AND ...`. Each row's values bind as the one-row update's, in its order; the
 * row triggers fire once per updated row, as for one-row runs. A key twice in one run would update
 * its row once, with either row's values: the writer never puts a key twice in one run.
 */
export function multiRowUpdate(sql: string, rows: number): MultiRowUpdate {
  const shape = /^UPDATE OR ROLLBACK (\w+) SET (.+) WHERE (.+)$/.exec(sql);
  if (!shape) throw new Error(`not a one-row UPDATE: ${sql}`);
  const [, table, sets, where] = shape as unknown as [string, string, string, string];
  let n = 0;
  const assignments = sets.split(', ').map((assignment) => {
    const set = /^(\w+) = (\?|\d+)$/.exec(assignment);
    if (!set) throw new Error(`not a plain assignment: ${assignment} (${sql})`);
    return set[2] === '?' ? `${set[1]} = v.column${++n}` : assignment;
  });
  const keyColumns = where.split(' AND ').map((test) => {
    const key = /^(\w+) = \?$/.exec(test);
    if (!key) throw new Error(`not a key test: ${test} (${sql})`);
    return key[1] as string;
  });
  const width = n + keyColumns.length;
  const keyed = keyColumns.map((c, i) => `t.${c} = v.column${n + i + 1}`).join(' AND ');
  const tuple = `(${placeholders(width)})`;
  return {
    sql:
      `UPDATE OR ROLLBACK ${table} AS t SET ${assignments.join(', ')} ` +
      `FROM (VALUES ${Array.from({ length: rows }, () => tuple).join(', ')}) AS v WHERE ${keyed}`,
    keys: keyColumns.length,
    exists: `SELECT 1 FROM ${table} WHERE ${where}`,
  };
}

/**
 * The updates the writer thread runs {@link MULTI_ROWS} rows at a time, by statement name: a batch's
 * updates are half of a one-task command's rows, and one run per row paid better-sqlite3's call,
 * its result object and SQLite's statement start and reset each time (measured, BENCHMARKS.md).
 */
export const MULTI_ROW_UPDATES: Readonly<Record<string, MultiRowUpdate>> = {
  updateCommand: multiRowUpdate(SQL.updateCommand, MULTI_ROWS),
  updateCommandState: multiRowUpdate(SQL.updateCommandState, MULTI_ROWS),
  updateTask: multiRowUpdate(SQL.updateTask, MULTI_ROWS),
  updateUndo: multiRowUpdate(SQL.updateUndo, MULTI_ROWS),
  settleCommand: multiRowUpdate(SQL.settleCommand, MULTI_ROWS),
  upgradeParams: multiRowUpdate(SQL.upgradeParams, MULTI_ROWS),
};

/** Reads of record rows: they return positional arrays (the `...Json` ones, one JSON text). */
const POSITIONAL: ReadonlySet<keyof typeof SQL> = new Set([
  'getCommand', 'getCommandByKey', 'getTasks', 'getUndo', 'getEntity', 'getStatusHistory',
  'activeCommands', 'activeTasks', 'activeUndo', 'endedChildren',
] as const); // prettier-ignore

/** Prepared statements, one per entry of {@link SQL}. */
export type Statements = { readonly [K in keyof typeof SQL]: Stmt };

/**
 * Prepares every statement once (after migration: they name the schema's tables). better-sqlite3
 * re-prepares a statement by itself if the schema changes under it.
 */
export function prepareStatements(db: Db): Statements {
  const out: Partial<Record<keyof typeof SQL, Stmt>> = {};
  for (const key of Object.keys(SQL) as (keyof typeof SQL)[]) {
    const stmt = db.prepare<unknown[], unknown>(SQL[key]);
    if (key.endsWith('Json')) stmt.pluck(true);
    else if (POSITIONAL.has(key)) stmt.raw(true);
    out[key] = stmt;
  }
  return out as Statements;
}

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
 * newest first. Returns the SQL, which doubles as the statement cache key, and its parameters.
 */
export function listCommandsQuery(f: ListFilter): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (f.parentId !== undefined) {
    where.push('c.parent_id = ?');
    params.push(f.parentId);
  }
  if (f.rootId !== undefined) {
    // The root itself, or a descendant through the partial index commands_root.
    where.push('((c.id = ? AND c.root_id = ?) OR (c.parent_id IS NOT NULL AND c.root_id = ?))');
    params.push(f.rootId, f.rootId, f.rootId);
  }
  if (f.rootsOnly === true) where.push('c.parent_id IS NULL');
  if (f.type !== undefined) {
    where.push('c.type = ?');
    params.push(f.type);
  }
  if (f.status !== undefined) {
    where.push(f.status.length === 0 ? '0' : `c.status IN (${placeholders(f.status.length)})`);
    params.push(...f.status);
  }
  if (f.beforeId !== undefined) {
    where.push('c.id < ?');
    params.push(f.beforeId);
  }
  const times = [
    ['c.created_at >= ?', f.createdAfter],
    ['c.created_at < ?', f.createdBefore],
    ['c.ended_at >= ?', f.endedAfter],
    ['c.ended_at < ?', f.endedBefore],
  ] as const;
  for (const [test, at] of times) {
    if (at === undefined) continue;
    where.push(test);
    params.push(at);
  }
  const clause = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
  // The limit is written into the statement, not bound: with `LIMIT ?` SQLite cannot plan the
  // ORDER BY ... LIMIT as a bounded top-N, and a query that finds nothing costs ~28 µs instead
  // of ~2 (a command's detail lists its children this way: measured, 23 columns). It is a
  // checked integer (the caller validates it), and each page size is one cached statement.
  if (!Number.isSafeInteger(f.limit) || f.limit < 1)
    throw new CocoError(ErrorCode.InvalidOptions, `listCommands: bad limit ${f.limit}`);
  return {
    sql: `SELECT ${COMMAND_SELECT} FROM commands c${clause} ORDER BY c.id DESC LIMIT ${f.limit}`,
    params,
  };
}
