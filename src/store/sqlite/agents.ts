/**
 * The `agents` table of the SQLite store: what the engine last knew of each agent. A row per
 * agent, written when it comes up, goes down or restarts — off the group-commit path, many rows
 * per transaction, in the writer thread when the store has one (10,000 agents coming up are a
 * few transactions, not 10,000 fsyncs on the event loop).
 *
 * @module
 */
import type Database from 'better-sqlite3';
import { z } from 'zod';
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { AgentRecord } from '../../core/records.js';

/**
 * The named writes of agent rows, run by the writer thread (with the engine's statements) or
 * inline on the main connection.
 */
export const AGENT_WRITES = {
  saveAgent:
    'INSERT OR REPLACE INTO agents (id, address, state, boot_id, last_seen_at, last_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  deleteAgent: 'DELETE FROM agents WHERE id = ?',
} as const;

const LIST_AGENTS =
  'SELECT id, address, state, boot_id, last_seen_at, last_error, updated_at FROM agents ORDER BY id';

interface AgentStatements {
  readonly list: Database.Statement;
  readonly delete: Database.Statement;
  /** Saves rows of values in one transaction. */
  readonly saveMany: (rows: readonly (readonly unknown[])[]) => void;
}

const statements = new WeakMap<Database.Database, AgentStatements>();

function prepared(db: Database.Database): AgentStatements {
  let s = statements.get(db);
  if (!s) {
    const save = db.prepare(AGENT_WRITES.saveAgent);
    s = {
      list: db.prepare(LIST_AGENTS),
      delete: db.prepare(AGENT_WRITES.deleteAgent),
      saveMany: db.transaction((rows: readonly (readonly unknown[])[]) => {
        for (const values of rows) save.run(values);
      }),
    };
    statements.set(db, s);
  }
  return s;
}

const errorInfo = z.looseObject({
  code: z.string(),
  message: z.string(),
  details: z.unknown().optional(),
});
const agentRow = z.object({
  id: z.string(),
  address: z.string().nullable(),
  state: z.enum(['up', 'down']),
  boot_id: z.string().nullable(),
  last_seen_at: z.number().int().nullable(),
  last_error: z.string().nullable(),
  updated_at: z.number().int(),
});

/**
 * The values of `saveAgent` for each agent, the last record of an id winning (one row per id,
 * in the order of each id's last record).
 */
export function agentRows(records: readonly AgentRecord[]): unknown[][] {
  const latest = new Map<string, AgentRecord>();
  for (const r of records) {
    latest.delete(r.id);
    latest.set(r.id, r);
  }
  return [...latest.values()].map((r) => [
    r.id,
    r.address,
    r.state,
    r.bootId,
    r.lastSeenAt,
    r.lastError === null ? null : JSON.stringify(r.lastError),
    r.updatedAt,
  ]);
}

/** Inserts or replaces agents' rows (see {@link agentRows}) in one transaction, inline. */
export function saveAgents(db: Database.Database, rows: readonly (readonly unknown[])[]): void {
  prepared(db).saveMany(rows);
}

/** Deletes an agent's row, inline; whether there was one. */
export function deleteAgent(db: Database.Database, id: string): boolean {
  return prepared(db).delete.run(id).changes > 0;
}

/** Every agent row; a row that cannot be read throws `CORRUPT_ROW` naming it. */
export function listAgents(db: Database.Database): AgentRecord[] {
  return prepared(db)
    .list.all()
    .map((row: unknown) => {
      const parsed = agentRow.safeParse(row);
      let lastError: AgentRecord['lastError'] = null;
      let errorOk = true;
      if (parsed.success && parsed.data.last_error !== null) {
        try {
          const e = errorInfo.safeParse(JSON.parse(parsed.data.last_error));
          if (e.success) lastError = e.data;
          else errorOk = false;
        } catch {
          errorOk = false;
        }
      }
      if (!parsed.success || !errorOk) {
        throw new CocoError(
          ErrorCode.CorruptRow,
          `agents row ${String((row as { id?: unknown } | null)?.id)} cannot be read`,
        );
      }
      const a = parsed.data;
      return {
        id: a.id,
        address: a.address,
        state: a.state,
        bootId: a.boot_id,
        lastSeenAt: a.last_seen_at,
        lastError,
        updatedAt: a.updated_at,
      };
    });
}
