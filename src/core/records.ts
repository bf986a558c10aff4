/**
 * The domain's records: a command, its tasks and undo steps, the application records handlers
 * write (entities), and the agents as the engine last saw them — what the store keeps and the
 * engine, the job view, the API and the CLI read — and how a task is named on its agent.
 *
 * @module
 */
import type { ChildMode, FailurePolicy, Json } from './command-type.js';
import type { ErrorInfo } from './errors.js';
import type { CommandStatus, CompensationStatus, TaskStatus, UndoStatus } from './states.js';

/** A command row. */
export interface CommandRecord {
  readonly id: number;
  readonly type: string;
  /** Version of `params` as stored. */
  readonly paramsVersion: number;
  /** Parameters as submitted (JSON). */
  readonly params: unknown;
  readonly status: CommandStatus;
  readonly parentId: number | null;
  readonly rootId: number;
  /** Position in the parent's journal (children and undo steps share it); null for roots. */
  readonly seq: number | null;
  /** Stage of the parent that created this child; null for roots. */
  readonly originStage: number | null;
  readonly childMode: ChildMode;
  readonly failurePolicy: FailurePolicy;
  /** Declared number of tasks (work tasks; undo tasks do not count). */
  readonly expectedTasks: number;
  readonly expectedChildren: number;
  /** Tasks created so far (work and undo), children created, undo steps recorded. */
  readonly taskCount: number;
  readonly childCount: number;
  readonly undoCount: number;
  /** Next journal position. */
  readonly journalSeq: number;
  /** Current (or last) stage: 0 is `execute`, k is the k-th `next`. */
  readonly stage: number;
  /** The current stage's handler has completed. */
  readonly stageDone: boolean;
  /** Serial commands: a stage created no work, so no further stage runs. */
  readonly chainDone: boolean;
  readonly cancelRequested: boolean;
  /** The failure being handled (while aborting or compensating) or that ended the command. */
  readonly error: ErrorInfo | null;
  readonly result: unknown;
  readonly compensation: CompensationStatus;
  readonly compensationError: ErrorInfo | null;
  /** Per-command scratch state. */
  readonly data: unknown;
  /** Failed attempts of the handler currently due. */
  readonly attempts: number;
  readonly nextAttemptAt: number | null;
  readonly lastError: ErrorInfo | null;
  /** End of the command's lifetime, if it has one. */
  readonly deadlineAt: number | null;
  /**
   * Admission priority of its tasks (higher first; see engine/admission.ts): given at submit,
   * inherited by children unless they set their own. 0 by default and in rows written before it.
   */
  readonly priority: number;
  /**
   * A root past its type's or the node's limit of running roots waits (status `pending`, no
   * handler run) since this time; null once admitted, and for every other command
   * (engine/root-admission.ts).
   */
  readonly queuedSince: number | null;
  readonly idempotencyKey: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly endedAt: number | null;
  /**
   * The command has ended and each of its tasks was cleared on its agent — or, written by an
   * engine alone on its store, is left to be cleared (a crash before the clear leaves the task
   * to the reconciliation of the next start). Either way the engine is done with its tasks.
   */
  readonly tasksCleared: boolean;
  /** Owning node and lease expiry (multi-node stores; unused on SQLite). */
  readonly owner: string | null;
  readonly leaseUntil: number | null;
  /**
   * The W3C `traceparent` of the command's span when it was created (written once, with the
   * insert), so that spans after a restart, and its children's, join its trace; null (or
   * absent) when no tracer recorded it.
   */
  readonly traceContext?: string | null;
}

/** A task row. The task's id on its agent is derived: see {@link agentTaskId}. */
export interface TaskRecord {
  readonly commandId: number;
  /** Position among the command's tasks, from 0. */
  readonly ordinal: number;
  /** Stage that created it (>= 0), or `-1 - undoOrdinal` for a task run by an undo step. */
  readonly origin: number;
  readonly agentId: string;
  readonly verb: string;
  readonly args: unknown;
  readonly status: TaskStatus;
  readonly result: unknown;
  readonly error: ErrorInfo | null;
  readonly deadlineAt: number | null;
  /** A stop was decided (cancel, fail-fast, deadline); resent after a restart until it ends. */
  readonly stopRequested: boolean;
  readonly createdAt: number;
  readonly endedAt: number | null;
}

/** An undo step row. */
export interface UndoRecord {
  readonly commandId: number;
  /** Position among the command's undo steps, from 0. */
  readonly ordinal: number;
  /** Position in the command's journal (shared with children): compensation runs by descending seq. */
  readonly seq: number;
  readonly stage: number;
  readonly name: string;
  readonly data: Json | null;
  readonly status: UndoStatus;
  readonly error: ErrorInfo | null;
}

/** An application record written by handlers ({@link EntityAccess}). `value: null` deletes. */
export interface EntityWrite {
  readonly kind: string;
  readonly id: string;
  readonly value: Json | null;
  readonly commandId: number;
  readonly at: number;
}

/** A stored application record. */
export interface EntityRecord {
  readonly kind: string;
  readonly id: string;
  readonly value: Json;
  readonly commandId: number;
  readonly updatedAt: number;
}

/** An agent as the engine last saw it. */
export interface AgentRecord {
  readonly id: string;
  /** Where it is reached (a URL), if known. */
  readonly address: string | null;
  readonly state: 'up' | 'down';
  /** Its process's boot id; a new one means it restarted. */
  readonly bootId: string | null;
  /** When it last answered. */
  readonly lastSeenAt: number | null;
  /** Why it is down. */
  readonly lastError: ErrorInfo | null;
  readonly updatedAt: number;
}

/**
 * How an agent id is spelled, wherever one is read (a broker's configuration, a route's path):
 * 1 to {@link AGENT_ID_MAX_LENGTH} letters, digits and `. _ : -`.
 */
export const AGENT_ID_PATTERN = /^[A-Za-z0-9._:-]+$/;
/** The longest agent id. */
export const AGENT_ID_MAX_LENGTH = 200;
/** What {@link AGENT_ID_PATTERN} allows, as a refusal says it. */
export const AGENT_ID_RULE = 'agent ids use letters, digits and . _ : -';

/** The id under which a task is known on its agent: `<storeId>-<commandId>-<ordinal>`. */
export function agentTaskId(storeId: string, commandId: number, ordinal: number): string {
  // join builds one flat string; a template literal this long is a chain of V8 cons strings
  // (about 100 bytes more per in-flight task).
  return [storeId, commandId, ordinal].join('-');
}

/** Parses an agent task id of this store; null if it is not ours. */
export function parseAgentTaskId(
  storeId: string,
  taskId: string,
): { commandId: number; ordinal: number } | null {
  const prefix = `${storeId}-`;
  if (!taskId.startsWith(prefix)) return null;
  const m = /^(\d+)-(\d+)$/.exec(taskId.slice(prefix.length));
  if (!m) return null;
  return { commandId: Number(m[1]), ordinal: Number(m[2]) };
}
