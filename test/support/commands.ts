/**
 * Command types shared by the integration tests: leaves that run tasks, concurrent parents,
 * serial chains, with undo steps that log to a shared journal.
 */
import { z } from 'zod';
import { defineCommand, type CommandType } from '../../src/core/command-type.js';

/** Records what handlers did, in order, for assertions. */
export class Journal {
  readonly entries: string[] = [];
  readonly counts = new Map<string, number>();
  add(entry: string): void {
    this.entries.push(entry);
    this.counts.set(entry, (this.counts.get(entry) ?? 0) + 1);
  }
  count(entry: string): number {
    return this.counts.get(entry) ?? 0;
  }
  matching(prefix: string): string[] {
    return this.entries.filter((e) => e.startsWith(prefix));
  }
}

const leafParams = z.object({
  name: z.string(),
  agent: z.string().default('a1'),
  tasks: z.number().int().min(0).default(1),
  verb: z.string().default('noop'),
  args: z.unknown().optional(),
  /** Throw from execute (every attempt). */
  failExecute: z.boolean().default(false),
});

/** Builds the test command types around one journal. */
export function testCommands(journal: Journal) {
  const leaf = defineCommand({
    name: 'test.leaf',
    schema: leafParams,
    retry: { maxAttempts: 2, backoffMs: 5 },
    execute(ctx) {
      const p = ctx.params;
      ctx.expect({ tasks: p.tasks });
      ctx.addUndo('revert', { name: p.name });
      if (p.failExecute) throw new Error(`${p.name} refuses to execute`);
      for (let i = 0; i < p.tasks; i++) {
        ctx.startTask({ agent: p.agent, verb: p.verb, args: (p.args ?? null) as never });
      }
    },
    onSuccess(ctx) {
      journal.add(`success:${ctx.params.name}`);
      return { name: ctx.params.name, tasks: ctx.tasks.length };
    },
    onFailure(ctx) {
      journal.add(`failure:${ctx.params.name}:${ctx.error.code}`);
    },
    undo: {
      revert(ctx) {
        journal.add(`undo:${ctx.params.name}`);
      },
    },
  });

  const groupParams = z.object({
    name: z.string(),
    children: z.array(
      leafParams.partial({ agent: true, tasks: true, verb: true, failExecute: true }),
    ),
    failurePolicy: z.enum(['wait-all', 'fail-fast']).default('wait-all'),
  });

  const makeGroup = (name: string, failurePolicy: 'wait-all' | 'fail-fast') =>
    defineCommand({
      name,
      schema: groupParams,
      failurePolicy,
      execute(ctx) {
        ctx.expect({ children: ctx.params.children.length });
        ctx.addUndo('revert', { name: ctx.params.name });
        for (const child of ctx.params.children) ctx.addChild(leaf, leafParams.parse(child));
      },
      onSuccess(ctx) {
        journal.add(`success:${ctx.params.name}`);
        return {
          children: ctx.children.map((c) => ({
            id: c.id,
            status: c.status,
            result: c.result as never,
          })),
        };
      },
      onFailure(ctx) {
        journal.add(`failure:${ctx.params.name}:${ctx.error.code}`);
      },
      undo: {
        revert(ctx) {
          journal.add(`undo:${ctx.params.name}`);
        },
      },
    });
  const group = makeGroup('test.group', 'wait-all');
  const failFastGroup = makeGroup('test.group.fail-fast', 'fail-fast');

  const chainParams = z.object({
    name: z.string(),
    stages: z.array(
      leafParams.partial({ agent: true, tasks: true, verb: true, failExecute: true }),
    ),
  });
  const chain = defineCommand({
    name: 'test.chain',
    schema: chainParams,
    execute(ctx) {
      ctx.expect({ children: ctx.params.stages.length });
      const first = ctx.params.stages[0];
      if (first) ctx.addChild(leaf, leafParams.parse(first));
    },
    next(ctx) {
      const stage = ctx.params.stages[ctx.command.stage];
      journal.add(`next:${ctx.params.name}:${ctx.command.stage}`);
      if (stage) ctx.addChild(leaf, leafParams.parse(stage));
    },
    onSuccess(ctx) {
      journal.add(`success:${ctx.params.name}`);
      return { stages: ctx.children.length };
    },
    onFailure(ctx) {
      journal.add(`failure:${ctx.params.name}:${ctx.error.code}`);
    },
  });

  return {
    leaf,
    group,
    failFastGroup,
    chain,
    all: [leaf, group, failFastGroup, chain] as CommandType[],
  };
}
