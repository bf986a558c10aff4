/**
 * A tree's compensation in the order it ran (pure). A command undoes its journal — its undo
 * steps and its succeeded children, which share one sequence — in reverse; a child's own undo
 * steps run at the child's place in that order. A failed child has undone its own work first,
 * when it failed: it comes first, as its place (the latest) says.
 *
 * @module
 */
import type { CommandDetails, ErrorInfo, Task } from '../schemas.js';

/** One undo step of the tree, in the order compensation runs them. */
export interface UndoEntry {
  readonly commandId: number;
  readonly commandType: string;
  readonly name: string;
  /** `recorded` (not run, or not yet), `done`, `failed`. */
  readonly status: string;
  readonly error: ErrorInfo | null;
  /** The tasks the undo step ran (an undo task's origin is `-1 - undoOrdinal`). */
  readonly tasks: readonly Task[];
  /** Position among the steps that ran or failed, from 1; null for one not run. */
  readonly order: number | null;
}

/**
 * The undo steps of the command `rootId` and its descendants whose details are known, in the
 * order compensation runs them. `compensating(id)` says whether a command takes part (its
 * compensation is not `none`, or it failed or was cancelled with undo steps of its own).
 */
export function undoOrder(
  rootId: number,
  details: ReadonlyMap<number, CommandDetails>,
  compensating: (id: number) => boolean,
): UndoEntry[] {
  const out: UndoEntry[] = [];
  let order = 0;
  const visit = (id: number): void => {
    const d = details.get(id);
    if (!d) return;
    type Item = { seq: number; undo?: number; child?: number };
    const items: Item[] = [
      ...d.undo.map((u) => ({ seq: u.seq, undo: u.ordinal })),
      // Children without a journal position (an API that lists summaries): after the undo
      // steps in journal order, which is where a stage's children come (undo steps are
      // usually recorded by the stage that creates the work).
      ...d.children.map((c, i) => ({
        seq: c.seq ?? Number.MAX_SAFE_INTEGER - d.children.length + i,
        child: c.id,
      })),
    ];
    items.sort((a, b) => b.seq - a.seq);
    for (const item of items) {
      if (item.child !== undefined) {
        if (compensating(item.child)) visit(item.child);
        continue;
      }
      const u = d.undo.find((x) => x.ordinal === item.undo)!;
      const ran = u.status !== 'recorded';
      out.push({
        commandId: d.id,
        commandType: d.type,
        name: u.name,
        status: u.status,
        error: u.error ?? null,
        tasks: d.tasks.filter((t) => t.origin === -1 - u.ordinal),
        order: ran ? ++order : null,
      });
    }
  };
  visit(rootId);
  return out;
}
