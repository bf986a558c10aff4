/**
 * A node for the API tests: SQLite in a temp folder, in-process agents (with a `hold` verb), one
 * token per role, and its log lines kept in memory (JSON objects) to check what was logged.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { z } from 'zod';
import { inProcessAgents } from '../../src/brokers/in-process/broker.js';
import { parseConfig } from '../../src/config/config.js';
import { defineCommand, type CommandType } from '../../src/core/command-type.js';
import type { Role } from '../../src/http/auth.js';
import { startNode, type CocoNode } from '../../src/server/node.js';
import { TOKENS, testTokens } from '../support/api.js';
import { holdVerbs, tempDir } from '../support/harness.js';

/** The hold verb of every API test node (`hold.release(key)` ends its tasks). */
export const hold = holdVerbs();

/** A command with `tasks` tasks of `verb` on agent a1. */
export const work = defineCommand({
  name: 'api.work',
  schema: z.object({
    tasks: z.number().int().min(0).max(5).default(0),
    verb: z.enum(['noop', 'hold', 'fail']).default('noop'),
    key: z.string().default('api'),
    note: z.string().optional(),
  }),
  execute(ctx) {
    ctx.log.info({ tasks: ctx.params.tasks }, 'api.work runs');
    ctx.expect({ tasks: ctx.params.tasks });
    for (let i = 0; i < ctx.params.tasks; i++)
      ctx.startTask({
        agent: 'a1',
        verb: ctx.params.verb,
        args: ctx.params.verb === 'noop' ? null : { key: ctx.params.key, message: 'on purpose' },
      });
  },
});

/**
 * A serial chain of two `api.work` children, with an undo step recorded between them (the
 * second stage's): what a child's place in its parent's journal tells apart.
 */
export const chain = defineCommand({
  name: 'api.chain',
  schema: z.object({}),
  execute(ctx) {
    ctx.expect({ children: 2 });
    ctx.addChild(work, { note: 'first' });
  },
  next(ctx) {
    if (ctx.command.stage !== 1) return;
    ctx.addUndo('between');
    ctx.addChild(work, { note: 'second' });
  },
  undo: { between() {} },
});

/** A second type, for the type filter. */
export const other = defineCommand({
  name: 'api.other',
  schema: z.object({}),
  execute() {},
});

/** A running API node with tokens and a captured log. */
export interface ApiNode {
  readonly node: CocoNode;
  readonly url: string;
  readonly dir: string;
  /** Every log line so far, parsed. */
  readonly logs: Record<string, unknown>[];
  /** The raw log text (to check a token never shows). */
  logText(): string;
  /** Calls the API; `role` null sends no token. */
  call(
    method: string,
    path: string,
    options?: {
      role?: Role | null;
      body?: unknown;
      headers?: Record<string, string>;
    },
  ): Promise<{ status: number; body: unknown }>;
  close(): Promise<void>;
}

/**
 * Starts a node for API tests: on SQLite in its folder, or on the store URL given; `tuning` is
 * the configuration's.
 */
export async function startApiNode(
  options: {
    commands?: readonly CommandType[];
    api?: Record<string, unknown>;
    store?: string;
    tuning?: Record<string, unknown>;
    /** Told of each log line as it is written (the start's own included). */
    onLog?: (line: Record<string, unknown>) => void;
  } = {},
): Promise<ApiNode> {
  const dir = tempDir('coco-api-');
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const added = chunk.toString('utf8').split('\n').filter(Boolean);
      lines.push(...added);
      for (const l of added) options.onLog?.(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const config = parseConfig(
    {
      store: options.store ?? `sqlite:${join(dir, 'coco.db')}`,
      api: { port: 0, tokens: testTokens(), ...options.api },
      ...(options.tuning ? { tuning: options.tuning } : {}),
    },
    dir,
  );
  const node = await startNode({
    config,
    commands: options.commands ?? [work, other, chain],
    broker: inProcessAgents(['a1'], { verbs: hold.verbs }),
    logger,
  });
  const url = node.url!;
  return {
    node,
    url,
    dir,
    get logs() {
      return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    logText: () => lines.join('\n'),
    async call(method, path, o = {}) {
      const role = o.role === undefined ? 'admin' : o.role;
      const res = await fetch(`${url}${path}`, {
        method,
        headers: {
          ...(role === null ? {} : { authorization: `Bearer ${TOKENS[role]}` }),
          ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...o.headers,
        },
        ...(o.body === undefined
          ? {}
          : { body: typeof o.body === 'string' ? o.body : JSON.stringify(o.body) }),
      });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: the text itself
      }
      return { status: res.status, body };
    },
    async close() {
      await node.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The error code of an answer. */
export function codeOf(body: unknown): string | undefined {
  return (body as { error?: { code?: string } } | null)?.error?.code;
}
