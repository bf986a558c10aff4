/**
 * The plans PostgreSQL really runs for a statement, nested ones included (the statements of an
 * SQL function, which EXPLAIN of the call does not show): auto_explain's JSON plans, sent to the
 * client as LOG notices, on a connection of the test's own.
 *
 * @module
 */
import pg from 'pg';
import { PG_URL } from '../support/pg.js';

/** One plan node, as EXPLAIN (FORMAT JSON) writes it. */
export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}

/** A statement's plan as auto_explain logged it. */
export interface LoggedPlan {
  'Query Text': string;
  Plan: PlanNode;
  JIT?: unknown;
}

/**
 * Planner settings of a store 10,000,000 commands large, for a store of `rows`: the thresholds
 * that do not grow with the tables (the cost above which a plan is JIT-compiled, the start-up
 * cost of parallel workers, the smallest table or index scanned in parallel, the cache the
 * planner assumes) scaled down by `rows / 10,000,000`. Without statistics every estimated cost of
 * these reads is a fraction of the tables' sizes (a column without statistics matches a default
 * share of the rows), so a plan's cost against these thresholds at `rows` is its cost against
 * the defaults at 10,000,000: the choices the planner made there (stop 24: a parallel bitmap scan
 * of commands, then of tasks, JIT-compiled) are made here.
 */
export function settingsAt10M(rows: number): string[] {
  const r = rows / 10_000_000;
  const kb = (k: number): string => `'${Math.max(8, Math.round(k * r))}kB'`;
  return [
    `jit_above_cost = ${Math.round(100_000 * r)}`,
    `jit_inline_above_cost = ${Math.round(500_000 * r)}`,
    `jit_optimize_above_cost = ${Math.round(500_000 * r)}`,
    `parallel_setup_cost = ${1_000 * r}`,
    `min_parallel_table_scan_size = ${kb(8 * 1024)}`,
    `min_parallel_index_scan_size = ${kb(512)}`,
    `effective_cache_size = ${kb(4 * 1024 * 1024)}`,
  ];
}

/**
 * Runs `text` once in `schema` under `settings` (SET LOCAL, in a transaction rolled back after)
 * and returns every plan PostgreSQL executed for it, the nested statements' first.
 */
export async function executedPlans(
  schema: string,
  text: string,
  values: unknown[],
  settings: readonly string[] = [],
): Promise<LoggedPlan[]> {
  const client = new pg.Client({ connectionString: PG_URL });
  const plans: LoggedPlan[] = [];
  client.on('notice', (n) => {
    const m = /^duration: [\d.]+ ms {2}plan:\n([\s\S]*)$/.exec(n.message ?? '');
    if (m) plans.push(JSON.parse(m[1]!) as LoggedPlan);
  });
  await client.connect();
  try {
    await client.query(`SET search_path TO "${schema}"`);
    await client.query("LOAD 'auto_explain'");
    await client.query('BEGIN');
    for (const s of settings) await client.query(`SET LOCAL ${s}`);
    for (const s of [
      'auto_explain.log_min_duration = 0',
      'auto_explain.log_nested_statements = on',
      'auto_explain.log_analyze = on',
      'auto_explain.log_buffers = on',
      'auto_explain.log_timing = off',
      "auto_explain.log_format = 'json'",
      'client_min_messages = log',
    ])
      await client.query(`SET LOCAL ${s}`);
    await client.query(text, values);
    await client.query('ROLLBACK');
  } finally {
    await client.end();
  }
  return plans;
}

/** Every node of a plan tree. */
export function planNodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(planNodes)];
}
