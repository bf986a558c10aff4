/**
 * What the monitor reads from the engine to rebuild jobs (reconcile): a root command's whole
 * tree with its tasks, and which roots need it. Only the engine's public query API is used.
 *
 * @module
 */
import { isTerminal } from '../core/states.js';
import type { Engine } from '../engine/engine.js';
import type { CommandRecord, TaskRecord } from '../core/records.js';

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

/** A root command's tree as the engine stores it. */
export interface EngineJobSnapshot {
  /** The root and every descendant, by ascending id (parents before their children). */
  readonly commands: readonly CommandRecord[];
  /** Every task of those commands. */
  readonly tasks: readonly TaskRecord[];
}

/**
 * Reads a root's tree from the engine: the root, its descendants (`list({ rootId })`, paged)
 * and the tasks of every command that has any. Null if the root does not exist. The reads are
 * not one transaction; each sees at least every batch committed before it started, which is
 * all the monitor needs (it merges monotonically and replays the batches that follow).
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
  let beforeId: number | undefined;
  for (;;) {
    const page = await engine.list({
      rootId,
      limit: PAGE,
      ...(beforeId === undefined ? {} : { beforeId }),
    });
    for (const c of page) {
      if (c.rootId === rootId && !byId.has(c.id)) byId.set(c.id, c);
      beforeId = c.id;
    }
    if (page.length < PAGE) break;
  }
  const commands = [...byId.values()].sort((a, b) => a.id - b.id);
  const details = await Promise.all(
    commands.filter((c) => c.taskCount > 0).map((c) => engine.inspect(c.id)),
  );
  const tasks: TaskRecord[] = [];
  for (const d of details) if (d) tasks.push(...d.tasks);
  return { commands, tasks };
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

/** Ids of every root command that has not ended, newest first. */
export async function activeRootIds(engine: MonitoredEngine): Promise<number[]> {
  const ids: number[] = [];
  let beforeId: number | undefined;
  for (;;) {
    const page = await engine.list({
      rootsOnly: true,
      status: ACTIVE_STATUSES,
      limit: PAGE,
      ...(beforeId === undefined ? {} : { beforeId }),
    });
    for (const c of page) {
      ids.push(c.id);
      beforeId = c.id;
    }
    if (page.length < PAGE) return ids;
  }
}

/** Ids of every root command above `watermark` (ended or not), newest first. */
export async function rootIdsAbove(engine: MonitoredEngine, watermark: number): Promise<number[]> {
  const ids: number[] = [];
  let beforeId: number | undefined;
  for (;;) {
    const page = await engine.list({
      rootsOnly: true,
      limit: PAGE,
      ...(beforeId === undefined ? {} : { beforeId }),
    });
    for (const c of page) {
      if (c.id <= watermark) return ids;
      ids.push(c.id);
      beforeId = c.id;
    }
    if (page.length < PAGE) return ids;
  }
}

/** The newest command id the engine has stored (0 if none). */
export async function newestCommandId(engine: MonitoredEngine): Promise<number> {
  const [newest] = await engine.list({ limit: 1 });
  return newest?.id ?? 0;
}
