/**
 * `coco prune --older-than 30d [--dry-run] [--store URL]`: retention on demand. Deletes the trees
 * that ended longer ago than the age (none of whose commands is active), with their tasks, undo
 * steps and jobs.
 *
 * Without `--store` it asks the running node (`POST /v1/admin/prune`), which prunes through its
 * engine in bounded calls; the CLI calls again while the node says more remain. With `--store`
 * it works on the store itself: a SQLite file no node holds (the CLI takes the file's ownership
 * for the run, so a node cannot start meanwhile; a file a node holds is refused — prune through
 * that node), or any PostgreSQL store (safe beside running nodes).
 *
 * @module
 */
import { hostname } from 'node:os';
import { Option, type Command } from 'commander';
import type { z } from 'zod';
import { CocoError, ErrorCode } from '../../core/errors.js';
import { pruneTrees } from '../../engine/retention.js';
import { runRetention } from '../../jobs/retention.js';
import { DURATION_HELP, parseDuration } from '../../config/duration.js';
import { jobStoreFromUrl, parseStoreUrl, redact, storeFromUrl } from '../../config/store-url.js';
import { ApiClient, defaultServer, findToken, tokenFileOption, tokenInArgs } from '../client.js';
import { usage } from '../errors.js';
import { pruneAnswer } from '../../http/contracts.js';

/** What a prune deleted, as the API answers (its contract) and the CLI prints it. */
type PruneAnswer = z.infer<typeof pruneAnswer>;

interface PruneOptions {
  olderThan: string;
  dryRun?: boolean;
  store?: string;
  server: string;
  token?: string;
  tokenFile?: string;
  config?: string;
  json?: boolean;
}

/** Through the running node: calls again while it says more remain (a dry run counts once). */
async function viaNode(o: PruneOptions, olderThanMs: number): Promise<PruneAnswer> {
  if (o.token !== undefined) throw tokenInArgs();
  // The node's own token: beside the default store (or the configuration's), not --store's:
  // with --store the CLI works on the store itself.
  const api = new ApiClient(o.server, findToken({ tokenFile: o.tokenFile, config: o.config }));
  const dryRun = o.dryRun === true;
  const total: PruneAnswer = { trees: 0, commands: 0, tasks: 0, undo: 0, jobs: 0, more: false };
  for (;;) {
    const r = pruneAnswer.parse(await api.post('/v1/admin/prune', { olderThanMs, dryRun }));
    for (const k of ['trees', 'commands', 'tasks', 'undo', 'jobs'] as const) total[k] += r[k];
    total.more = r.more;
    if (!r.more || dryRun) return total;
  }
}

/** On the store itself, in one pass without a time budget. */
async function onStore(url: string, o: PruneOptions, olderThanMs: number): Promise<PruneAnswer> {
  const parsed = parseStoreUrl(url);
  const store = storeFromUrl(url);
  const jobs = jobStoreFromUrl(url);
  try {
    if (parsed.kind === 'sqlite') {
      // The file's single writer for the run: refused while a node holds it.
      try {
        await store.open(`coco-prune-${hostname()}-${process.pid}`);
      } catch (error) {
        if (error instanceof CocoError && error.code === ErrorCode.StoreInUse)
          throw new CocoError(
            ErrorCode.StoreInUse,
            `${error.plainMessage}; a running node prunes its own store: run "coco prune" without --store (it asks the node at --server)`,
            { details: error.details },
          );
        throw error;
      }
    }
    await jobs.open();
    const r = await runRetention(
      {
        prune: (request, onBatch) => pruneTrees(store, request, Date.now(), onBatch),
        get: (id) => store.getCommand(id),
        jobs,
      },
      { olderThanMs, dryRun: o.dryRun === true, budgetMs: Number.MAX_SAFE_INTEGER },
    );
    const { trees, commands, tasks, undo, jobs: jobCount, more } = r;
    return { trees, commands, tasks, undo, jobs: jobCount, more };
  } finally {
    await jobs.close().catch(() => undefined);
    await store.close().catch(() => undefined);
  }
}

/** Adds `prune` to the program. */
export function addPruneCommand(program: Command): void {
  program
    .command('prune')
    .description(
      'delete the trees of commands that ended longer ago than an age (with their tasks, undo steps and jobs); live trees are never touched',
    )
    .requiredOption('--older-than <duration>', `age of the trees to delete: ${DURATION_HELP}`)
    .option('--dry-run', 'count what would be deleted, delete nothing')
    .option(
      '--store <url>',
      'work on this store directly (a SQLite file no node holds, or any PostgreSQL store) instead of asking the node',
    )
    .option('--server <url>', 'node API address (or COCO_SERVER)', defaultServer())
    .addOption(tokenFileOption())
    .addOption(new Option('--token <token>').hideHelp())
    .option('-c, --config <file>', 'the configuration naming the store (default ./coco.json)')
    .option('--json', 'print JSON for scripts')
    .action(async (o: PruneOptions) => {
      const olderThanMs = parseDuration(o.olderThan);
      if (olderThanMs === null || olderThanMs <= 0)
        throw usage(
          `--older-than must be a positive duration, ${DURATION_HELP}; not "${o.olderThan}"`,
        );
      const r =
        o.store === undefined
          ? await viaNode(o, olderThanMs)
          : await onStore(o.store, o, olderThanMs);
      const dryRun = o.dryRun === true;
      if (o.json) {
        console.log(JSON.stringify({ ...r, dryRun }));
        return;
      }
      const where = o.store === undefined ? o.server : redact(o.store);
      console.log(
        `${dryRun ? 'would prune' : 'pruned'} ${r.trees} tree${r.trees === 1 ? '' : 's'} ended more than ${o.olderThan} ago (${where}): ` +
          `${r.commands} commands, ${r.tasks} tasks, ${r.undo} undo steps, ${r.jobs} jobs` +
          (r.more ? "; more remain (the count stopped at the node's time budget)" : ''),
      );
    });
}
