/**
 * What the monitor reads from the engine to rebuild jobs (reconcile): a root command's whole
 * tree with its tasks, and which roots need it. Only the engine's public query API is used.
 *
 * @module
 */
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';
import { isTerminal } from '../core/states.js';
import type { Engine } from '../engine/engine.js';
import type { CommandRecord, TaskRecord } from '../core/records.js';
import type { CommandPage, CommandQuery } from '../store/port.js';

/**
 * The part of the engine the monitor uses: its events and its queries, and its node id (on a
 * shared store, the jobs of trees another node runs are that node's monitor's to write).
 */
export type MonitoredEngine = Pick<Engine, 'on' | 'get' | 'list' | 'inspect'> & {
  readonly nodeId?: string;
};

/** Statuses of a command that has not ended. */
const ACTIVE_STATUSES = ['pending', 'waiting', 'aborting', 'compensating'] as const;

/** Page size of the engine list queries (the engine store's largest page). */
const PAGE = 1_000;

/** A command, or one of its rows, the monitor could not read: its step is left as stored. */
export interface UnreadableRecord {
  readonly commandId: number | null;
  readonly error: ErrorInfo;
}

/** A root command's tree as the engine stores it. */
export interface EngineJobSnapshot {
  /** The root and every descendant, by ascending id (parents before their children). */
  readonly commands: readonly CommandRecord[];
  /** Every task of those commands. */
  readonly tasks: readonly TaskRecord[];
  /** Descendants, or task lists, that could not be read (left out above). */
  readonly unreadable: readonly UnreadableRecord[];
}

/**
 * Every page of a list query, oldest last. Pages follow `nextBeforeId`, so a page shortened by
 * unreadable rows does not end the walk early.
 */
async function* pages(
  engine: MonitoredEngine,
  query: CommandQuery,
): AsyncGenerator<CommandPage, void, undefined> {
  let beforeId: number | undefined;
  for (;;) {
    const page = await engine.list({
      ...query,
      limit: PAGE,
      ...(beforeId === undefined ? {} : { beforeId }),
    });
    yield page;
    if (page.nextBeforeId === null) return;
    beforeId = page.nextBeforeId;
  }
}

/**
 * Reads a root's tree from the engine: the root, its descendants (`list({ rootId })`, paged)
 * and the tasks of every command that has any. Null if the root does not exist. The reads are
 * not one transaction; each sees at least every batch committed before it started, which is
 * all the monitor needs (it merges monotonically and replays the batches that follow). Rows
 * that cannot be read are reported in `unreadable` and left out; the rest of the tree is read.
 */
export async function readJob(
  engine: MonitoredEngine,
  rootId: number,
  /** The root, if the caller has just read it (null: it does not exist). */
  known?: CommandRecord | null,
): Promise<EngineJobSnapshot | null> {
  const root = known === undefined ? await engine.get(rootId) : known;
  if (!root) return null;
  const byId = new Map<number, CommandRecord>([[root.id, root]]);
  const unreadable: UnreadableRecord[] = [];
  for await (const page of pages(engine, { rootId })) {
    for (const c of page.commands) if (c.rootId === rootId && !byId.has(c.id)) byId.set(c.id, c);
    unreadable.push(...page.unreadable);
  }
  const commands = [...byId.values()].sort((a, b) => a.id - b.id);
  const tasks: TaskRecord[] = [];
  for (const c of commands) {
    if (c.taskCount === 0) continue;
    try {
      tasks.push(...((await engine.inspect(c.id))?.tasks ?? []));
    } catch (error) {
      // One unreadable task row leaves that command's tasks as stored, not the whole job.
      if (!(error instanceof CocoError && error.code === ErrorCode.CorruptRow)) throw error;
      unreadable.push({ commandId: c.id, error: error.toInfo() });
    }
  }
  return { commands, tasks, unreadable };
}

/**
 * Whether another node runs the tree of this (active) root: a shared store stamps the owner of
 * every command, a single-node store none.
 */
export function runElsewhere(root: CommandRecord, nodeId: string | undefined): boolean {
  return (
    nodeId !== undefined && root.owner !== null && root.owner !== nodeId && !isTerminal(root.status)
  );
}

/** Ids of every root command that has not ended, newest first (unreadable rows left out). */
export async function activeRootIds(engine: MonitoredEngine): Promise<number[]> {
  const ids: number[] = [];
  for await (const page of pages(engine, { rootsOnly: true, status: ACTIVE_STATUSES }))
    for (const c of page.commands) ids.push(c.id);
  return ids;
}

/** Ids of every root command above `watermark` (ended or not), newest first (unreadable rows left out). */
export async function rootIdsAbove(engine: MonitoredEngine, watermark: number): Promise<number[]> {
  const ids: number[] = [];
  for await (const page of pages(engine, { rootsOnly: true })) {
    for (const c of page.commands) if (c.id > watermark) ids.push(c.id);
    if (page.nextBeforeId === null || page.nextBeforeId <= watermark + 1) break;
  }
  return ids;
}

/** The newest command id the engine has stored, readable or not (0 if none). */
export async function newestCommandId(engine: MonitoredEngine): Promise<number> {
  const { commands, unreadable } = await engine.list({ limit: 1 });
  return commands[0]?.id ?? unreadable[0]?.commandId ?? 0;
}
