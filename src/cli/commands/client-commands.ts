/**
 * The subcommands that talk to a running node: submit, status, list, cancel.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { z } from 'zod';
import { COMMAND_STATUSES } from '../../core/states.js';
import { ApiClient, defaultServer, findToken, tokenFileOption, tokenInArgs } from '../client.js';
import { EXIT, usage } from '../errors.js';
import { renderCommands, renderTree, renderUnreadable } from '../render.js';
import type { JobTree } from '../../jobs/view.js';

interface ClientOptions {
  server: string;
  token?: string;
  tokenFile?: string;
  store?: string;
  config?: string;
  json?: boolean;
}

function client(o: ClientOptions): ApiClient {
  if (o.token !== undefined) throw tokenInArgs();
  return new ApiClient(o.server, findToken(o));
}

function print(o: ClientOptions, json: unknown, human: () => string[]): void {
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

const treeSchema = z.custom<JobTree>((v) => typeof v === 'object' && v !== null && 'job' in v);
const idSchema = z.object({ id: z.number() });

/** Prints a job tree until it ends (watch) or once; returns the exit code. */
async function showJob(
  api: ApiClient,
  o: ClientOptions & { watch?: boolean },
  id: number,
): Promise<number> {
  if (!o.watch) {
    const tree = treeSchema.parse(await api.get(`/v1/jobs/${id}`));
    print(o, tree, () => renderTree(tree));
    return tree.job.status === 'failed' || tree.job.status === 'cancelled' ? EXIT.failed : EXIT.ok;
  }
  let last: JobTree | null = null;
  const interactive = process.stdout.isTTY && !o.json;
  let drawn = 0;
  await api.stream(`/v1/jobs/${id}/events`, (data) => {
    const tree = treeSchema.parse(data);
    last = tree;
    if (o.json) {
      console.log(JSON.stringify(tree));
      return;
    }
    const lines = renderTree(tree);
    if (interactive && drawn > 0) process.stdout.write(`\x1b[${drawn}A\x1b[J`);
    for (const line of lines) console.log(line);
    drawn = interactive ? lines.length : 0;
  });
  const end = last as JobTree | null;
  return end && (end.job.status === 'failed' || end.job.status === 'cancelled')
    ? EXIT.failed
    : EXIT.ok;
}

/** Adds submit, status, list and cancel to the program. */
export function addClientCommands(program: Command, setExit: (code: number) => void): void {
  const common = (c: Command): Command =>
    c
      .option('--server <url>', 'node API address (or COCO_SERVER)', defaultServer())
      .addOption(tokenFileOption())
      .addOption(new Option('--token <token>').hideHelp())
      .option('--store <url>', "the node's store, to find the token it created beside it")
      .option('-c, --config <file>', 'the configuration naming the store (default ./coco.json)')
      .option('--json', 'print JSON for scripts');

  common(
    program
      .command('submit')
      .description('submit a command to a running node')
      .argument('<type>', 'command type, e.g. disk.migrate')
      .requiredOption('-p, --params <json|@file>', 'parameters as JSON, or @path of a JSON file')
      .option(
        '--key <idempotency-key>',
        'submitting again with the same key returns the first command',
      )
      .option('--wait', 'follow the job until it ends (exit 1 if it failed)'),
  ).action(
    async (type: string, o: ClientOptions & { params: string; key?: string; wait?: boolean }) => {
      const api = client(o);
      const body = {
        type,
        params: parseParams(o.params),
        ...(o.key ? { idempotencyKey: o.key } : {}),
      };
      const { id } = idSchema.parse(await api.post('/v1/commands', body));
      if (!o.wait) {
        print(o, { id }, () => [
          `submitted ${type} as command ${id}; follow it with: coco status ${id} --watch`,
        ]);
        return;
      }
      setExit(await showJob(api, { ...o, watch: true }, id));
    },
  );

  common(
    program
      .command('status')
      .description('show a job: its tree of commands and tasks with progress')
      .argument('<id>', 'root command (job) id', idArg)
      .option('-w, --watch', 'follow it live until it ends'),
  ).action(async (id: number, o: ClientOptions & { watch?: boolean }) => {
    setExit(await showJob(client(o), o, id));
  });

  common(
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
      const q = new URLSearchParams();
      if (o.status) q.set('status', o.status);
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
        .parse(await client(o).get(`/v1/commands?${q.toString()}`));
      print(o, res, () => [
        ...(res.commands.length > 0 || res.unreadable.length === 0
          ? renderCommands(res.commands)
          : []),
        ...renderUnreadable(res.unreadable),
        ...(res.nextCursor === null ? [] : [`more: --cursor ${res.nextCursor}`]),
      ]);
    },
  );

  common(
    program
      .command('cancel')
      .description(
        'cancel a command and its subtree (stops tasks, runs compensation); ends a command that could not be loaded',
      )
      .argument('<id>', 'command id', idArg),
  ).action(async (id: number, o: ClientOptions) => {
    const res = await client(o).post(`/v1/commands/${id}/cancel`, {});
    print(o, res, () => [
      `cancel of command ${id} requested; follow it with: coco status ${id} --watch`,
    ]);
  });
}
