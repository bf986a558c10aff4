/**
 * The subcommands that talk to a running node: submit, status, list, cancel, release, rerun,
 * agents; and what every subcommand calling a node shares (its options, its client, `--json`
 * output), which type-commands.ts (types, pause, resume) uses too.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { createLogUpdate } from 'log-update';
import { z } from 'zod';
import { CocoError, ErrorCode } from '../../core/errors.js';
import { COMMAND_STATUSES } from '../../core/states.js';
import { ApiClient, defaultServer, findToken, tokenFileOption, tokenInArgs } from '../client.js';
import { EXIT, usage } from '../errors.js';
import {
  describePause,
  fit,
  renderAgents,
  renderCommands,
  renderTree,
  renderUnreadable,
} from '../render.js';
import type { JobTree } from '../../jobs/view.js';
import { pausedType } from '../../http/contracts.js';

/** The options of every subcommand calling a node ({@link withClientOptions}). */
export interface ClientOptions {
  server: string;
  token?: string;
  tokenFile?: string;
  store?: string;
  config?: string;
  json?: boolean;
}

/** A client of the node at `--server`; a server address that is not an http(s) URL is a usage error. */
export function client(o: ClientOptions): ApiClient {
  let url: URL | undefined;
  try {
    url = new URL(o.server);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw usage(
      `--server must be the http(s) address of a coco node, e.g. http://127.0.0.1:7390, not "${o.server}"`,
    );
  }
  if (o.token !== undefined) throw tokenInArgs();
  return new ApiClient(o.server, findToken(o));
}

/**
 * Errors that mean something other than a coco node answered: an agent (it speaks another
 * protocol version), a server without coco's error bodies, or one answering something not JSON.
 */
const NOT_A_NODE = new Set<string>([
  ErrorCode.ProtocolVersion,
  ErrorCode.HttpError,
  ErrorCode.AgentProtocol,
]);

/** Runs a call to the node, turning the answers of something that is not a node into NOT_A_COCO_NODE. */
export async function atNode<T>(o: ClientOptions, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof CocoError) || !NOT_A_NODE.has(error.code)) throw error;
    const what = error.code === ErrorCode.ProtocolVersion ? ' (it looks like a coco agent)' : '';
    throw new CocoError(
      ErrorCode.NotACocoNode,
      `${o.server} is not a coco node${what}: ${error.message}; point --server (or COCO_SERVER) at a node started with "coco serve" (port 7390 by default)`,
      { cause: error },
    );
  }
}

/** Prints `json` with `--json`, else the human lines. */
export function print(o: ClientOptions, json: unknown, human: () => string[]): void {
  if (o.json) console.log(JSON.stringify(json, null, 2));
  else for (const line of human()) console.log(line);
}

function parseParams(text: string): unknown {
  let source = text;
  if (text.startsWith('@')) {
    try {
      source = readFileSync(text.slice(1), 'utf8');
    } catch (error) {
      throw usage(`cannot read the parameters file ${text.slice(1)}: ${(error as Error).message}`);
    }
  }
  try {
    return JSON.parse(source);
  } catch (error) {
    throw usage(`--params must be JSON (or @file with JSON): ${(error as Error).message}`);
  }
}

function idArg(value: string): number {
  const id = Number(value);
  if (!Number.isSafeInteger(id) || id <= 0)
    throw usage(`"${value}" is not a command id (a positive integer)`);
  return id;
}

/** Largest `--limit` of `coco list` (the API's page bound). */
const MAX_LIST = 1_000;

const treeSchema = z.custom<JobTree>((v) => typeof v === 'object' && v !== null && 'job' in v);
const idSchema = z.object({ id: z.number() });
/** The answer to a release (the API's `releaseAnswer`, parsed here as the CLI parses every answer). */
const releasedSchema = z.object({ id: z.number(), rootId: z.number(), released: z.number() });

/**
 * The detail of a job's root command, read once for the lines under its tree. A root the node
 * cannot read (a corrupt row, or gone though its job is still listed) adds no line: the tree says
 * what is known.
 */
async function readRoot(api: ApiClient, tree: JobTree): Promise<RootDetail> {
  try {
    return rootSchema.parse(await api.get(`/v1/commands/${tree.job.id}`));
  } catch (error) {
    if (error instanceof CocoError && UNREAD_ROOT.has(error.code)) return rootSchema.parse({});
    throw error;
  }
}
const UNREAD_ROOT = new Set<string>([ErrorCode.CorruptRow, ErrorCode.CommandNotFound]);

/** The line showing an ended job's result (its root command's `onSuccess` value), if it has one. */
function resultLines(tree: JobTree, root: RootDetail): string[] {
  if (tree.job.status !== 'succeeded') return [];
  const { result } = root;
  return result === undefined || result === null ? [] : [`result: ${JSON.stringify(result)}`];
}

/**
 * What the job reran and what reran it (`rerun of job 40`, `run again as job 43, 45`): a job's id
 * is its root's. The job it reran may have been pruned since (its detail is not found).
 */
async function rerunLines(api: ApiClient, root: RootDetail): Promise<string[]> {
  const lines: string[] = [];
  if (root.rerunOf !== null) {
    const gone = await pruned(api, root.rerunOf);
    lines.push(`rerun of job ${root.rerunOf}${gone ? ' (pruned)' : ''}`);
  }
  if (root.reruns.length > 0) lines.push(`run again as job ${root.reruns.join(', ')}`);
  return lines;
}

/** Whether the command is gone (retention pruned it); any other failure says nothing. */
async function pruned(api: ApiClient, id: number): Promise<boolean> {
  try {
    await api.get(`/v1/commands/${id}`);
    return false;
  } catch (error) {
    return error instanceof CocoError && error.code === ErrorCode.CommandNotFound;
  }
}

/** The lines under an ended job's tree: its result, what it reran and what reran it. */
async function endLines(api: ApiClient, tree: JobTree): Promise<string[]> {
  const root = await readRoot(api, tree);
  return [...resultLines(tree, root), ...(await rerunLines(api, root))];
}

const ended = (tree: JobTree | null): boolean => tree !== null && tree.job.endedAt !== null;

/** Prints a job tree until it ends (watch) or once; returns the exit code. */
async function showJob(
  api: ApiClient,
  o: ClientOptions & { watch?: boolean },
  id: number,
): Promise<number> {
  if (!o.watch) {
    const tree = treeSchema.parse(await api.get(`/v1/jobs/${id}`));
    let more: string[] = [];
    if (!o.json) {
      const root = await readRoot(api, tree);
      more = [
        ...resultLines(tree, root),
        ...(await rerunLines(api, root)),
        ...(await queueLines(api, tree, root)),
      ];
    }
    print(o, tree, () => [...renderTree(tree), ...more]);
    return tree.job.status === 'failed' || tree.job.status === 'cancelled' ? EXIT.failed : EXIT.ok;
  }
  let last: JobTree | null = null;
  // A terminal gets the tree redrawn in place (log-update), each line cut to its width; a pipe
  // or a file gets the lines that changed, once each.
  const interactive = process.stdout.isTTY && !o.json;
  const screen = interactive ? createLogUpdate(process.stdout) : null;
  let printed = new Set<string>();
  await api.stream(`/v1/jobs/${id}/events`, (data) => {
    const tree = treeSchema.parse(data);
    last = tree;
    if (o.json) {
      console.log(JSON.stringify(tree));
    } else if (screen) {
      const columns = process.stdout.columns || 80;
      screen(
        renderTree(tree)
          .map((line) => fit(line, columns))
          .join('\n'),
      );
    } else {
      const lines = renderTree(tree, { durations: false });
      for (const line of lines) if (!printed.has(line)) console.log(line);
      printed = new Set(lines);
    }
  });
  screen?.done();
  const end = last as JobTree | null;
  if (!o.json && ended(end)) for (const line of await endLines(api, end!)) console.log(line);
  return end && (end.job.status === 'failed' || end.job.status === 'cancelled')
    ? EXIT.failed
    : EXIT.ok;
}

/** Queued tasks shown with a position, at most (each costs a read of its command). */
const QUEUED_SHOWN = 5;

/** Where the job's queued tasks stand ("queued for host-1: 12 ahead, limit 4"). */
async function queueLines(api: ApiClient, tree: JobTree, root: RootDetail): Promise<string[]> {
  const commands = new Set<number>();
  const walk = (node: JobTree['root']): void => {
    if (!node) return;
    for (const t of node.tasks) if (t.status === 'queued') commands.add(t.commandId);
    for (const child of node.children) walk(child);
  };
  walk(tree.root);
  const lines: string[] = [];
  if (tree.job.status === 'running') {
    // A root waiting for the root limits (per type, per node) runs nothing yet: say why.
    if (root.queue && 'type' in root.queue) {
      lines.push(`  command ${tree.job.id} ${root.queue.text}`);
      // A paused type's root waits for an operator, not for a slot: say whose pause, and the way out.
      const paused = root.queue.paused;
      if (paused)
        lines.push(
          `  ${paused.type} is paused ${describePause(paused)}; it runs once resumed: coco resume ${paused.type}`,
        );
    }
    // A held tree runs nothing: say why, and what ends the hold.
    if (root.unloadable)
      lines.push(
        `  held: ${root.unloadable.code}: ${root.unloadable.message}`,
        root.releasable
          ? `  once the cause is gone: coco release ${tree.job.id} (or coco cancel ${tree.job.id})`
          : `  coco cancel ${tree.job.id} ends it`,
      );
  }
  for (const commandId of [...commands].slice(0, QUEUED_SHOWN)) {
    const details = queuedSchema.parse(await api.get(`/v1/commands/${commandId}`));
    for (const t of details.tasks)
      if (t.queue) lines.push(`  task ${commandId}/${t.ordinal} ${t.queue.text}`);
  }
  if (commands.size > QUEUED_SHOWN)
    lines.push(`  (${commands.size - QUEUED_SHOWN} more commands with queued tasks)`);
  return lines;
}

/** What the CLI reads of a command's detail: where it waits (`queue`), why it is held. */
const queuedSchema = z.object({
  tasks: z
    .array(
      z.object({
        ordinal: z.number(),
        queue: z.object({ text: z.string() }).nullable().default(null),
      }),
    )
    .default([]),
  queue: z
    .union([
      z.object({
        type: z.string(),
        text: z.string(),
        paused: pausedType.nullable().default(null),
      }),
      z.object({ text: z.string() }),
    ])
    .nullable()
    .default(null),
  unloadable: z.object({ code: z.string(), message: z.string() }).nullable().default(null),
  releasable: z.boolean().default(false),
});

/**
 * What the CLI reads of a job's root command: where it waits and why it is held (as
 * {@link queuedSchema}), its result, and what it reran and what reran it (none from an older node).
 */
const rootSchema = queuedSchema.extend({
  result: z.unknown().optional(),
  rerunOf: z.number().nullable().default(null),
  reruns: z.array(z.number()).default([]),
});
type RootDetail = z.infer<typeof rootSchema>;

/** Adds the options of a subcommand calling a node: where it is, its token, `--json`. */
export function withClientOptions(c: Command): Command {
  return c
    .option('--server <url>', 'node API address (or COCO_SERVER)', defaultServer())
    .addOption(tokenFileOption())
    .addOption(new Option('--token <token>').hideHelp())
    .option('--store <url>', "the node's store, to find the token it created beside it")
    .option('-c, --config <file>', 'the configuration naming the store (default ./coco.json)')
    .option('--json', 'print JSON for scripts');
}

/** Adds submit, status, list, cancel, release, rerun and agents to the program. */
export function addClientCommands(program: Command, setExit: (code: number) => void): void {
  withClientOptions(
    program
      .command('submit')
      .description('submit a command to a running node')
      .argument('<type>', 'command type, e.g. disk.migrate')
      .requiredOption('-p, --params <json|@file>', 'parameters as JSON, or @path of a JSON file')
      .option(
        '--key <idempotency-key>',
        'submitting again with the same key returns the first command',
      )
      .option('--wait', 'follow the job until it ends (exit 1 if it failed)')
      .option(
        '--priority <n>',
        'admission priority of its tasks on limited agents (higher first; default 0)',
      ),
  ).action(
    async (
      type: string,
      o: ClientOptions & { params: string; key?: string; wait?: boolean; priority?: string },
    ) => {
      const api = client(o);
      const priority = o.priority === undefined ? undefined : Number(o.priority);
      if (priority !== undefined && !Number.isSafeInteger(priority))
        throw usage(`--priority must be an integer, not "${o.priority}"`);
      const body = {
        type,
        params: parseParams(o.params),
        ...(o.key ? { idempotencyKey: o.key } : {}),
        ...(priority !== undefined ? { priority } : {}),
      };
      const { id } = idSchema.parse(await atNode(o, () => api.post('/v1/commands', body)));
      if (!o.wait) {
        print(o, { id }, () => [
          `submitted ${type} as command ${id}; follow it with: coco status ${id} --watch`,
        ]);
        return;
      }
      setExit(await atNode(o, () => showJob(api, { ...o, watch: true }, id)));
    },
  );

  withClientOptions(
    program
      .command('status')
      .description('show a job: its tree of commands and tasks with progress')
      .argument('<id>', 'root command (job) id', idArg)
      .option('-w, --watch', 'follow it live until it ends'),
  ).action(async (id: number, o: ClientOptions & { watch?: boolean }) => {
    const api = client(o);
    setExit(await atNode(o, () => showJob(api, o, id)));
  });

  withClientOptions(
    program
      .command('list')
      .description('list commands, newest first')
      .option('-s, --status <list>', `comma-separated statuses (${COMMAND_STATUSES.join(', ')})`)
      .option('-t, --type <type>', 'only this command type')
      .option('--roots', 'only root commands (jobs)')
      .option('-n, --limit <n>', 'how many (1 to 500)', '50')
      .option('--cursor <cursor>', 'page: the cursor the page before printed'),
  ).action(
    async (
      o: ClientOptions & {
        status?: string;
        type?: string;
        roots?: boolean;
        limit: string;
        cursor?: string;
      },
    ) => {
      const api = client(o);
      const q = new URLSearchParams();
      if (o.status) {
        const unknown = o.status
          .split(',')
          .filter((s) => !(COMMAND_STATUSES as readonly string[]).includes(s));
        if (unknown.length > 0)
          throw usage(
            `--status: unknown status ${unknown.map((s) => `"${s}"`).join(', ')}; use ${COMMAND_STATUSES.join(', ')}`,
          );
        q.set('status', o.status);
      }
      if (!/^[1-9][0-9]{0,3}$/.test(o.limit) || Number(o.limit) > MAX_LIST)
        throw usage(`--limit must be a whole number from 1 to ${MAX_LIST}, not "${o.limit}"`);
      if (o.type) q.set('type', o.type);
      if (o.roots) q.set('rootsOnly', 'true');
      if (o.cursor) q.set('cursor', o.cursor);
      q.set('limit', o.limit);
      const res = z
        .object({
          commands: z.array(
            z.object({
              id: z.number(),
              type: z.string(),
              status: z.enum(COMMAND_STATUSES),
              parentId: z.number().nullable(),
              rootId: z.number(),
              createdAt: z.number(),
              endedAt: z.number().nullable(),
              error: z.object({ code: z.string(), message: z.string() }).nullable(),
            }),
          ),
          unreadable: z.array(
            z.object({
              commandId: z.number().nullable(),
              error: z.object({ code: z.string(), message: z.string() }),
            }),
          ),
          nextCursor: z.string().nullable(),
        })
        .parse(await atNode(o, () => api.get(`/v1/commands?${q.toString()}`)));
      print(o, res, () => [
        ...(res.commands.length > 0 || res.unreadable.length === 0
          ? renderCommands(res.commands)
          : []),
        ...renderUnreadable(res.unreadable),
        ...(res.nextCursor === null ? [] : [`more: --cursor ${res.nextCursor}`]),
      ]);
    },
  );

  withClientOptions(
    program
      .command('cancel')
      .description(
        'cancel a command and its subtree (stops tasks, runs compensation); ends a command that could not be loaded',
      )
      .argument('<id>', 'command id', idArg),
  ).action(async (id: number, o: ClientOptions) => {
    const api = client(o);
    const res = await atNode(o, () => api.post(`/v1/commands/${id}/cancel`, {}));
    print(o, res, () => [
      `cancel of command ${id} requested; follow it with: coco status ${id} --watch`,
    ]);
  });

  withClientOptions(
    program
      .command('release')
      .description(
        'run again a tree held because the store refused its changes (TREE_REFUSED), once the cause is gone',
      )
      .argument('<id>', 'a command of the held tree', idArg),
  ).action(async (id: number, o: ClientOptions) => {
    const api = client(o);
    const res = releasedSchema.parse(
      await atNode(o, () => api.post(`/v1/commands/${id}/release`, {})),
    );
    print(o, res, () => [
      `tree ${res.rootId} released: ${res.released} command(s) run on; follow it with: coco status ${res.rootId} --watch`,
    ]);
  });

  withClientOptions(
    program
      .command('rerun')
      .description('run an ended root command again: a new command of its type with its parameters')
      .argument('<id>', 'the ended root command (job) id', idArg)
      .option('--key <idempotency-key>', 'running again with the same key returns the first rerun')
      .option('--wait', 'follow the new job until it ends (exit 1 if it failed)')
      .option(
        '--priority <n>',
        "admission priority of its tasks on limited agents (default: the ended command's)",
      ),
  ).action(
    async (id: number, o: ClientOptions & { key?: string; wait?: boolean; priority?: string }) => {
      const api = client(o);
      const priority = o.priority === undefined ? undefined : Number(o.priority);
      if (priority !== undefined && !Number.isSafeInteger(priority))
        throw usage(`--priority must be an integer, not "${o.priority}"`);
      const body = {
        ...(o.key ? { idempotencyKey: o.key } : {}),
        ...(priority !== undefined ? { priority } : {}),
      };
      const { id: next } = idSchema.parse(
        await atNode(o, () => api.post(`/v1/commands/${id}/rerun`, body)),
      );
      if (!o.wait) {
        print(o, { id: next, rerunOf: id }, () => [
          `command ${id} runs again as command ${next}; follow it with: coco status ${next} --watch`,
        ]);
        return;
      }
      setExit(await atNode(o, () => showJob(api, { ...o, watch: true }, next)));
    },
  );

  withClientOptions(
    program
      .command('agents')
      .description(
        "list the node's agents: up or down, retired, its tasks in flight on each, last seen",
      ),
  ).action(async (o: ClientOptions) => {
    const api = client(o);
    const res = agentsSchema.parse(await atNode(o, () => api.get('/v1/agents')));
    print(o, res, () => renderAgents(res.agents));
  });
}

/** `GET /v1/agents`: the fields `coco agents` shows. */
const agentsSchema = z.object({
  agents: z.array(
    z.object({
      id: z.string(),
      address: z.string().nullable(),
      state: z.enum(['up', 'down']),
      lastSeenAt: z.number().nullable(),
      lastError: z.object({ code: z.string(), message: z.string() }).nullable(),
      tasksInFlight: z.number(),
      configured: z.boolean(),
    }),
  ),
});
