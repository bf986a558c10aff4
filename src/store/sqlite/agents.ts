/**
 * The `agents` table of the SQLite store: what the engine last knew of each agent. Few rows,
 * written when an agent comes up, goes down or restarts — off the group-commit path.
 *
 * @module
 */
import type Database from 'better-sqlite3';
import { z } from 'zod';
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { AgentRecord } from '../../core/records.js';

const statements = new WeakMap<
  Database.Database,
  { save: Database.Statement; list: Database.Statement }
>();

function prepared(db: Database.Database): { save: Database.Statement; list: Database.Statement } {
  let s = statements.get(db);
  if (!s) {
    s = {
      save: db.prepare(
        'INSERT OR REPLACE INTO agents (id, address, state, boot_id, last_seen_at, last_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      list: db.prepare(
        'SELECT id, address, state, boot_id, last_seen_at, last_error, updated_at FROM agents ORDER BY id',
      ),
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

/** Inserts or replaces an agent's row. */
export function saveAgent(db: Database.Database, r: AgentRecord): void {
  prepared(db).save.run(
    r.id,
    r.address,
    r.state,
    r.bootId,
    r.lastSeenAt,
    r.lastError === null ? null : JSON.stringify(r.lastError),
    r.updatedAt,
  );
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
