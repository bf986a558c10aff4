/**
 * The subcommands that run things here: serve (a node), agent (a reference agent), migrate.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadVerbModules, startAgent } from '../../reference-agent/index.js';
import { DEFAULT_MAX_VOLUME_BYTES, storageVerbs } from '../../reference-agent/storage/verbs.js';
import { loadConfig, parseConfig, type CocoConfig } from '../../config/config.js';
import {
  DEFAULT_STORE_URL,
  jobStoreFromUrl,
  redact,
  storeFromUrl,
} from '../../config/store-url.js';
import { defaultLogger, startNode } from '../../server/node.js';
import { usage } from '../errors.js';

/** Resolves when the process is asked to stop (SIGINT or SIGTERM). */
function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => () => resolve(signal);
    process.once('SIGINT', on('SIGINT'));
    process.once('SIGTERM', on('SIGTERM'));
  });
}

function readSecret(value: string | undefined): string {
  const secret = value ?? process.env.COCO_AGENT_SECRET;
  if (!secret)
    throw usage(
      'give the agent a shared secret with --secret or COCO_AGENT_SECRET (at least 16 characters)',
    );
  if (secret.length < 16) throw usage('the shared secret must have at least 16 characters');
  return secret;
}

/** Adds serve, agent and migrate to the program. */
export function addNodeCommands(program: Command): void {
  program
    .command('serve')
    .description(
      'run a coco node: the engine, the job view and the HTTP API, with the agents of the configuration',
    )
    .option('-c, --config <file>', 'configuration file (JSON); default ./coco.json if it exists')
    .option(
      '--store <url>',
      `store URL (overrides the configuration; default ${DEFAULT_STORE_URL})`,
    )
    .option('--port <port>', 'API port (overrides the configuration)')
    .action(async (o: { config?: string; store?: string; port?: string }) => {
      const file = o.config ?? (existsSync('coco.json') ? 'coco.json' : null);
      let config: CocoConfig = file ? loadConfig(file) : parseConfig({}, process.cwd());
      if (o.store) config = { ...config, store: o.store };
      if (o.port !== undefined) {
        const port = Number(o.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw usage(`--port must be a port number, not "${o.port}"`);
        config = { ...config, api: { ...config.api, port } };
      }
      const logger = defaultLogger();
      const node = await startNode({ config, logger });
      logger.info(
        {
          url: node.url,
          store: config.store,
          resumed: node.startReport.resumed,
          commandTypes: node.commands.map((c) => c.name),
        },
        'coco node ready',
      );
      console.error(`coco node listening on ${node.url} (store ${config.store}); Ctrl-C stops it`);
      await stopSignal();
      await node.close();
    });

  program
    .command('agent')
    .description(
      'run a reference agent: storage verbs on image files under a root of storage domains',
    )
    .requiredOption('--id <id>', 'agent id, as the engine knows it')
    .option('--secret <secret>', 'shared secret with the engine (or COCO_AGENT_SECRET)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port (0 picks a free one)', '7391')
    .option('--data-dir <dir>', 'where the agent keeps its task table', '.coco/agent')
    .option('--storage-root <dir>', 'root folder of the storage domains', '.coco/storage')
    .option(
      '--max-volume-bytes <bytes>',
      'largest volume the storage verbs create, copy or fill (default 1 TiB)',
      String(DEFAULT_MAX_VOLUME_BYTES),
    )
    .option(
      '--verbs <module...>',
      'modules exporting more verbs (`export const verbs = { name: fn }`)',
    )
    .action(
      async (o: {
        id: string;
        secret?: string;
        host: string;
        port: string;
        dataDir: string;
        storageRoot: string;
        maxVolumeBytes: string;
        verbs?: string[];
      }) => {
        const port = Number(o.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw usage(`--port must be a port number, not "${o.port}"`);
        const maxVolumeBytes = Number(o.maxVolumeBytes);
        if (
          !/^[0-9]+$/.test(o.maxVolumeBytes) ||
          !Number.isSafeInteger(maxVolumeBytes) ||
          maxVolumeBytes < 1
        )
          throw usage(
            `--max-volume-bytes must be a positive whole number of bytes, not "${o.maxVolumeBytes}"`,
          );
        const agent = await startAgent({
          id: o.id,
          secret: readSecret(o.secret),
          dataDir: resolve(o.dataDir),
          host: o.host,
          port,
          verbs: {
            ...storageVerbs(resolve(o.storageRoot), { maxVolumeBytes }),
            ...(await loadVerbModules((o.verbs ?? []).map((m) => resolve(m)))),
          },
          logger: defaultLogger(),
        });
        // The first line on stdout tells a parent process where the agent listens.
        console.log(JSON.stringify({ agentId: o.id, url: agent.url, bootId: agent.bootId }));
        await stopSignal();
        await agent.close();
      },
    );

  program
    .command('migrate')
    .description('create or upgrade the store schema (and the job view tables), then exit')
    .option('--store <url>', 'store URL', DEFAULT_STORE_URL)
    .option('--json', 'print JSON')
    .action(async (o: { store: string; json?: boolean }) => {
      const store = storeFromUrl(o.store);
      const report = await store.migrate();
      await store.close();
      const jobs = jobStoreFromUrl(o.store);
      const jobsReport = await jobs.open();
      await jobs.close();
      if (o.json) console.log(JSON.stringify({ store: report, jobs: jobsReport }));
      else
        console.log(
          `store ${redact(o.store)}: schema version ${report.current} (applied now: ${report.applied.join(', ') || 'none'})`,
        );
    });
}
