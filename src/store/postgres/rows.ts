/**
 * Parsing the PostgreSQL store's rows. Command, task, undo and entity rows are read in the very
 * shape the SQLite store reads (positional, JSON as text, flags as 0/1; see statements.ts), so
 * they go through the SQLite store's validating parsers, which know nothing of SQLite itself
 * (src/store/rows/parse.ts and parse-fast.ts import only zod and the core). Agents and relayed
 * reports, which only this store has in this form, are parsed here.
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { AgentRecord, CommandRecord } from '../../core/records.js';
import type { ActiveSnapshot, CorruptRow } from '../port.js';
import type { TaskReportRecord } from '../shared-port.js';
import { parseCommandRowFast, parseTaskRowFast } from '../rows/parse-fast.js';
import { parseCommandRow, parseUndoRow, type Parsed } from '../rows/parse.js';

export {
  commandPage,
  heldTrees,
  parseCommandRow,
  parseEntityRow,
  parseOrThrow,
  parseTaskRow,
  parseUndoRow,
  pausedTypes,
  statusHistory,
} from '../rows/parse.js';

/** Rows of the four queries of an active snapshot. */
export interface ActiveRows {
  readonly commands: readonly unknown[];
  readonly tasks: readonly unknown[];
  readonly undo: readonly unknown[];
  readonly endedChildren: readonly unknown[];
}

function parseAll<T>(
  rows: readonly unknown[],
  parse: (row: unknown) => Parsed<T>,
  keep: (value: T) => boolean,
  corrupt: CorruptRow[],
): T[] {
  const values: T[] = [];
  for (const row of rows) {
    const parsed = parse(row);
    if (!parsed.ok) corrupt.push(parsed.corrupt);
    else if (keep(parsed.value)) values.push(parsed.value);
  }
  return values;
}

/**
 * The active snapshot from its rows. Rows that do not parse are reported in `corrupt`; tasks,
 * undo steps and ended children of a command that could not be read are left out (the command
 * is already reported), as on SQLite.
 */
export function activeSnapshot(rows: ActiveRows): ActiveSnapshot {
  const corrupt: CorruptRow[] = [];
  const commands = parseAll(rows.commands, parseCommandRowFast, () => true, corrupt);
  const ids = new Set(commands.map((c) => c.id));
  const ofActive = (r: { commandId: number }): boolean => ids.has(r.commandId);
  const tasks = parseAll(rows.tasks, parseTaskRowFast, ofActive, corrupt);
  const undo = parseAll(rows.undo, parseUndoRow, ofActive, corrupt);
  const endedChildren = parseAll(
    rows.endedChildren,
    parseCommandRow,
    (c: CommandRecord) => c.parentId !== null && ids.has(c.parentId),
    corrupt,
  );
  return { commands, tasks, undo, endedChildren, corrupt };
}

const errorInfo = z.looseObject({
  code: z.string(),
  message: z.string(),
  details: z.unknown().optional(),
});

/** Decodes a JSON text column; `undefined` when it is not valid JSON. */
function jsonText(value: unknown): unknown {
  if (value === null) return null;
  if (typeof value !== 'string') return undefined;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return undefined;
  }
}

const agentRow = z.object({
  id: z.string(),
  address: z.string().nullable(),
  state: z.enum(['up', 'down']),
  boot_id: z.string().nullable(),
  last_seen_at: z.number().int().nullable(),
  last_error: z.preprocess(jsonText, errorInfo.nullable()),
  updated_at: z.number().int(),
});

/** An `agents` row; one that cannot be read throws `CORRUPT_ROW` naming it. */
export function parseAgentRow(row: unknown): AgentRecord {
  const parsed = agentRow.safeParse(row);
  if (!parsed.success) {
    throw new CocoError(
      ErrorCode.CorruptRow,
      `agents row ${String((row as { id?: unknown } | null)?.id)} cannot be read: ${parsed.error.issues
        .map((i) => `${i.path.join('.') || '(row)'}: ${i.message}`)
        .join('; ')}`,
    );
  }
  const a = parsed.data;
  return {
    id: a.id,
    address: a.address,
    state: a.state,
    bootId: a.boot_id,
    lastSeenAt: a.last_seen_at,
    lastError: a.last_error,
    updatedAt: a.updated_at,
  };
}

const reportRow = z.object({
  command_id: z.number().int(),
  ordinal: z.number().int(),
  status: z.enum(['running', 'succeeded', 'failed', 'cancelled', 'unknown']),
  result: z.preprocess(
    jsonText,
    z.unknown().refine((v) => v !== undefined, 'invalid JSON'),
  ),
  error: z.preprocess(jsonText, errorInfo.nullable()),
  progress: z.number().min(0).max(1).nullable(),
  at: z.number().int(),
});

/** A `task_reports` row; one that cannot be read throws `CORRUPT_ROW` naming it. */
export function parseReportRow(row: unknown): TaskReportRecord {
  const parsed = reportRow.safeParse(row);
  if (!parsed.success) {
    const r = row as { command_id?: unknown; ordinal?: unknown } | null;
    throw new CocoError(
      ErrorCode.CorruptRow,
      `task_reports row ${String(r?.command_id)}/${String(r?.ordinal)} cannot be read: ${parsed.error.issues
        .map((i) => `${i.path.join('.') || '(row)'}: ${i.message}`)
        .join('; ')}`,
    );
  }
  const r = parsed.data;
  return {
    commandId: r.command_id,
    ordinal: r.ordinal,
    status: r.status,
    result: r.result,
    error: r.error,
    progress: r.progress,
    at: r.at,
  };
}
