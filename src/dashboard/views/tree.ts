/**
 * A job's step tree as rows (pure): each command with its tasks under it and its children below,
 * indented by depth, with what it still waits for — its declared counts met or not.
 *
 * @module
 */
import type { JobTree, Step, StepNode } from '../schemas.js';
import { isEnded } from '../format.js';

/** One row of the tree. */
export interface TreeRow {
  readonly step: Step;
  readonly depth: number;
  /** A task's verb and agent (`verb@agent`); empty for a command. */
  readonly verb: string;
  readonly agent: string;
  /** For a command: its declared counts against what exists and what ended. */
  readonly waits: Waits | null;
}

/** What a command waits for: its work tasks and children, declared, created and ended. */
export interface Waits {
  readonly tasks: Count;
  readonly children: Count;
}

/** A declared count against what was created and what ended. */
export interface Count {
  readonly declared: number;
  readonly created: number;
  readonly ended: number;
}

function count(declared: number, items: readonly { status: string }[]): Count {
  return {
    declared,
    created: items.length,
    ended: items.filter((i) => isEnded(i.status)).length,
  };
}

/** Whether a count is met: at least the declared number created, and all of them ended. */
export function met(c: Count): boolean {
  return c.created >= c.declared && c.ended === c.created;
}

/** Splits a task step's name, `verb@agent`. */
export function verbAndAgent(name: string): { verb: string; agent: string } {
  const at = name.lastIndexOf('@');
  return at < 0
    ? { verb: name, agent: '' }
    : { verb: name.slice(0, at), agent: name.slice(at + 1) };
}

/** The tree's rows, depth first, tasks before children (each in creation order). */
export function treeRows(tree: JobTree): TreeRow[] {
  const rows: TreeRow[] = [];
  const visit = (node: StepNode, depth: number): void => {
    const work = node.tasks.filter((t) => !t.undo);
    rows.push({
      step: node.step,
      depth,
      verb: '',
      agent: '',
      waits: {
        tasks: count(node.step.expectedTasks, work),
        children: count(
          node.step.expectedChildren,
          node.children.map((c) => c.step),
        ),
      },
    });
    for (const t of node.tasks)
      rows.push({ step: t, depth: depth + 1, ...verbAndAgent(t.name), waits: null });
    for (const c of node.children) visit(c, depth + 1);
  };
  if (tree.root) visit(tree.root, 0);
  for (const o of tree.orphans ?? [])
    rows.push({
      step: o,
      depth: 0,
      ...(o.kind === 'task' ? verbAndAgent(o.name) : { verb: '', agent: '' }),
      waits: null,
    });
  return rows;
}

/** Every command step of the tree, by command id. */
export function commandSteps(tree: JobTree): Map<number, Step> {
  const out = new Map<number, Step>();
  const visit = (node: StepNode): void => {
    out.set(node.step.commandId, node.step);
    node.children.forEach(visit);
  };
  if (tree.root) visit(tree.root);
  return out;
}

/** Every task step of the tree, by `commandId.ordinal`. */
export function taskSteps(tree: JobTree): Map<string, Step> {
  const out = new Map<string, Step>();
  const visit = (node: StepNode): void => {
    for (const t of node.tasks) out.set(`${t.commandId}.${t.taskOrdinal ?? -1}`, t);
    node.children.forEach(visit);
  };
  if (tree.root) visit(tree.root);
  return out;
}
