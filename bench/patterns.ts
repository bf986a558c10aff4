/**
 * The command types every benchmark runs: a one-task command, and the parents of the fan-out
 * (concurrent children) and chain (serial children) patterns, whose children each run one `noop`
 * task. Same names in every benchmark, so stores written by one can be read by another.
 */
import { z } from 'zod';
import { defineCommand } from '../src/core/command-type.js';

/** The benchmark command types, their tasks on agent `agent`. */
export function benchCommands(agent: string) {
  const one = defineCommand({
    name: 'bench.one',
    schema: z.object({ i: z.number() }),
    execute(ctx) {
      ctx.expect({ tasks: 1 });
      ctx.startTask({ agent, verb: 'noop' });
    },
  });
  const leaf = defineCommand({
    name: 'bench.leaf',
    schema: z.object({ i: z.number() }),
    execute(ctx) {
      ctx.expect({ tasks: 1 });
      ctx.startTask({ agent, verb: 'noop' });
    },
  });
  const fanout = defineCommand({
    name: 'bench.fanout',
    schema: z.object({ children: z.number().int() }),
    execute(ctx) {
      ctx.expect({ children: ctx.params.children });
      for (let i = 0; i < ctx.params.children; i++) ctx.addChild(leaf, { i });
    },
  });
  const chain = defineCommand({
    name: 'bench.chain',
    schema: z.object({ children: z.number().int() }),
    execute(ctx) {
      ctx.expect({ children: ctx.params.children });
      ctx.addChild(leaf, { i: 0 });
    },
    next(ctx) {
      if (ctx.command.stage < ctx.params.children) ctx.addChild(leaf, { i: ctx.command.stage });
    },
  });
  return { one, leaf, fanout, chain };
}
