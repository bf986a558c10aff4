/**
 * The subcommands that run things here: serve (a node), agent (a reference agent), migrate.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { Logger } from '../../core/command-type.js';
import { CocoError } from '../../core/errors.js';
import { loadVerbModules, startAgent } from '../../reference-agent/index.js';
import { DEFAULT_MAX_VOLUME_BYTES, storageVerbs } from '../../reference-agent/storage/verbs.js';
import { limitsOf, loadConfig, parseConfig, type CocoConfig } from '../../config/config.js';
import { MIN_SECRET_LENGTH, readSecretsFile } from '../../config/secrets.js';
import {
  DEFAULT_STORE_URL,
  jobStoreFromUrl,
  redact,
  storeFromUrl,
} from '../../config/store-url.js';
import {
  SLOW_OPEN_MS,
  SLOW_OPEN_TEXT,
  defaultLogger,
  sayIfSlow,
  startNode,
} from '../../server/node.js';
import { checkPortFree } from '../../server/port-check.js';
import { EXIT, usage } from '../errors.js';

/** Resolves when the process is asked to stop (SIGINT or SIGTERM). */
function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => () => resolve(signal);
    process.once('SIGINT', on('SIGINT'));
    process.once('SIGTERM', on('SIGTERM'));
  });
}

/**
 * How much longer than its parts' own bounds (`CocoNode.stopBoundMs`) a node may take to stop
 * after SIGTERM or SIGINT before it exits anyway. Its parts stop in order (event streams closed at
 * once, a retention pass after its current batch, the job monitor's last writes, the engine's
 * handlers given their grace, the last batch written, the store released), which takes well under
 * a second when all is well; with a database that does not answer, each part waits out its own
 * bound and says so. 5 s covers what no bound counts (a retention batch, the broker's close); on
 * the defaults the whole is 25 s (the monitor's 5, the grace's 5, `stopTimeoutMs`'s 10, this 5),
 * under the 30 s a supervisor (Kubernetes' default termination grace; systemd's 90 s) waits before
 * SIGKILL. A configuration that raises `stopGraceMs`, `stopTimeoutMs` or `jobs.stopTimeout` raises
 * the bound with them (and should raise the supervisor's).
 */
export const SHUTDOWN_MARGIN_MS = 5_000;

/**
 * How long a stopped node's process may linger before it exits anyway: once `close` has resolved
 * nothing of the node's should hold it (the stores destroy what a peer does not close within a
 * second, `END_GRACE_MS`), so this only catches what slipped through; 2 s is long enough for
 * any socket still saying a normal goodbye.
 */
export const LINGER_MS = 2_000;

/** The environment variable `coco agent` takes its secret from. */
const SECRET_ENV = 'COCO_AGENT_SECRET';

/** Reads the agent's secrets file (see `readSecretsFile`), its problems as usage errors. */
function readAgentSecrets(path: string, logger: Logger): readonly string[] {
  try {
    const read = readSecretsFile(path);
    if (read.warning) logger.warn({ secretFile: path }, read.warning);
    return read.secrets;
  } catch (error) {
    throw error instanceof CocoError ? usage(error.plainMessage) : error;
  }
}

/**
 * The agent's shared secrets, from `--secret-file` (one per line: a rotation accepts the new and
 * the old) or `COCO_AGENT_SECRET` (one), exactly one of the two; never from the arguments, which
 * every user of the host can read. The variable is then removed from the environment, so that
 * verbs and the processes they start do not inherit it.
 */
function readSecret(
  o: { secret?: string; secretFile?: string },
  logger: Logger,
): readonly string[] {
  if (o.secret !== undefined) {
    throw usage(
      `--secret is not accepted: process arguments are visible to every user of the host (ps, /proc); ` +
        `give the secret in a file only you can read (--secret-file <path>) or in ${SECRET_ENV}`,
    );
  }
  const fromEnv = process.env[SECRET_ENV];
  delete process.env[SECRET_ENV];
  const hasEnv = fromEnv !== undefined && fromEnv !== '';
  if (o.secretFile !== undefined && hasEnv)
    throw usage(`give the secret once: either --secret-file or ${SECRET_ENV}, not both`);
  if (o.secretFile !== undefined) return readAgentSecrets(resolve(o.secretFile), logger);
  if (!hasEnv) {
    throw usage(
      `give the agent its shared secret (at least ${MIN_SECRET_LENGTH} characters) with --secret-file <path> or ${SECRET_ENV}`,
    );
  }
  if (fromEnv.length < MIN_SECRET_LENGTH)
    throw usage(
      `the shared secret in ${SECRET_ENV} must have at least ${MIN_SECRET_LENGTH} characters`,
    );
  return [fromEnv];
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
      const logger = defaultLogger();
      const file = o.config ?? (existsSync('coco.json') ? 'coco.json' : null);
      const warn = (message: string): void => logger.warn({ config: file }, message);
      let config: CocoConfig = file
        ? loadConfig(file, { warn })
        : parseConfig({}, process.cwd(), 'configuration', { warn });
      // A relative SQLite path is taken from the working folder.
      if (o.store) config = { ...config, store: o.store };
      if (o.port !== undefined) {
        const port = Number(o.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw usage(`--port must be a port number, not "${o.port}"`);
        config = { ...config, api: { ...config.api, port } };
      }
      const node = await startNode({ config, logger });
      // The signals are listened for before the node says it is ready: a supervisor (or a test)
      // acting on that line at once must find them handled. Listened for after the line, a
      // SIGTERM sent as soon as it was read could meet the default action (seen under load: the
      // process was killed with no graceful stop), and so could a SIGHUP.
      const stopping = stopSignal();
      // SIGHUP reloads the admission limits (the agents' maxRunning), the API's tokens
      // (rotation, revocation) and the agents' secrets (rotation) from the file, no restart; the
      // rest needs one.
      const reload = (): void => {
        if (!file) return;
        let next: CocoConfig;
        try {
          next = loadConfig(file, { warn });
        } catch (error) {
          logger.error(
            { config: file, error },
            'configuration reload failed; nothing reloaded (limits, tokens, rate limit, agents, retention unchanged)',
          );
          node.metrics.configReloaded(false);
          return;
        }
        // Each part on its own: one refused leaves the others reloaded (and is counted failed).
        const part = (what: string, apply: (c: CocoConfig) => object): boolean => {
          try {
            logger.info({ config: file, ...apply(next) }, `${what} reloaded`);
            return true;
          } catch (error) {
            logger.error({ config: file, error }, `${what} not reloaded; those in force kept`);
            return false;
          }
        };
        const ok = [
          part('admission limits', (c) => {
            node.setLimits(limitsOf(c));
            return {};
          }),
          part('API tokens', (c) => {
            const { names, streamsEnded } = node.setTokens(c.api.tokens);
            return { tokens: names, streamsEnded };
          }),
          part('API rate limit', (c) => {
            node.setRateLimit(c.api.rateLimit);
            return { rateLimit: c.api.rateLimit ?? 'off' };
          }),
          part('agents', (c) => {
            const change = node.setAgents(c.agents);
            if (change.retired.length > 0)
              logger.warn(
                { config: file, agents: change.retired },
                'agents removed from the configuration are retired: drained — still reached, so that the ' +
                  'trees submitted before end there (their later stages and compensation included), while a ' +
                  'task of a tree submitted from now on fails unsent (AGENT_RETIRED) — and shown as not ' +
                  'configured; restart without them once GET /v1/agents (coco agents) shows none in flight there',
              );
            return change;
          }),
          part('retention', (c) => {
            node.setRetention(c.retention);
            return { retention: c.retention ?? 'off' };
          }),
        ].every(Boolean);
        node.metrics.configReloaded(ok);
      };
      process.on('SIGHUP', reload);
      // The store URL may hold a PostgreSQL password: shown masked, as everywhere.
      logger.info(
        {
          url: node.url,
          store: redact(config.store),
          resumed: node.startReport.resumed,
          commandTypes: node.commands.map((c) => c.name),
        },
        'coco node ready',
      );
      console.error(
        `coco node listening on ${node.url} (store ${redact(config.store)}); Ctrl-C stops it`,
      );
      const signal = await stopping;
      process.off('SIGHUP', reload);
      const started = Date.now();
      logger.info({ signal }, 'coco node shutting down');
      // Bounded: a stop that hangs (a store that does not answer, a handler past its grace)
      // must not keep the process from its supervisor; what was not made durable resumes at
      // the next start, as after a crash.
      const boundMs = node.stopBoundMs + SHUTDOWN_MARGIN_MS;
      const bound = setTimeout(() => {
        logger.error(
          { signal, ms: boundMs },
          `coco node did not stop within ${boundMs} ms; exiting anyway`,
        );
        process.exit(EXIT.error);
      }, boundMs);
      bound.unref();
      await node.close();
      clearTimeout(bound);
      logger.info({ signal, ms: Date.now() - started }, 'coco node stopped');
      // Stopped: nothing of the node's holds the process now. Should something still (a socket
      // waiting for a peer's goodbye), the process does not wait for it.
      const linger = setTimeout(() => {
        logger.warn({ ms: LINGER_MS }, 'handles still open after the node stopped; exiting');
        process.exit(EXIT.ok);
      }, LINGER_MS);
      linger.unref();
    });

  program
    .command('agent')
    .description(
      'run a reference agent: storage verbs on image files under a root of storage domains',
    )
    .requiredOption('--id <id>', 'agent id, as the engine knows it')
    .option(
      '--secret-file <path>',
      `file holding the secret shared with the engine (or ${SECRET_ENV}), chmod 600; one per line, all accepted: a rotation adds the new one, moves the engines, removes the old (SIGHUP reloads it)`,
    )
    // Refused (see readSecret), but known, so that its use gets a message saying what to do.
    .addOption(new Option('--secret <secret>').hideHelp())
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
        secretFile?: string;
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
        const logger = defaultLogger();
        const secret = readSecret(o, logger);
        // Before its data folder is created or its task table opened.
        await checkPortFree(o.host, port, {
          what: 'serve the agent',
          who: 'another coco agent',
          change: '--port / --host',
        });
        const agent = await startAgent({
          id: o.id,
          secret,
          dataDir: resolve(o.dataDir),
          host: o.host,
          port,
          storageRoot: resolve(o.storageRoot),
          verbs: {
            ...storageVerbs(resolve(o.storageRoot), { maxVolumeBytes }),
            ...(await loadVerbModules((o.verbs ?? []).map((m) => resolve(m)))),
          },
          logger,
        });
        // Listened for before the line that says the agent is up (see `serve`).
        const stopping = stopSignal();
        // SIGHUP reads the secrets file again: a rotation adds the new secret, moves the
        // engines to it, then removes the old, with no restart. The environment is read once.
        const reload = (): void => {
          if (o.secretFile === undefined) {
            logger.warn(
              {},
              `secrets not reloaded: ${SECRET_ENV} is read once, at start (use --secret-file to rotate without a restart)`,
            );
            return;
          }
          const path = resolve(o.secretFile);
          try {
            const secrets = readAgentSecrets(path, logger);
            agent.setSecrets(secrets);
            logger.info({ secretFile: path, secrets: secrets.length }, 'agent secrets reloaded');
          } catch (error) {
            logger.error(
              { secretFile: path, error: error instanceof CocoError ? error.plainMessage : error },
              'agent secrets not reloaded; those in force kept',
            );
          }
        };
        process.on('SIGHUP', reload);
        // The first line on stdout tells a parent process where the agent listens.
        console.log(JSON.stringify({ agentId: o.id, url: agent.url, bootId: agent.bootId }));
        await stopping;
        process.off('SIGHUP', reload);
        await agent.close();
      },
    );

  program
    .command('migrate')
    .description('create or upgrade the store schema (and the job view tables), then exit')
    .option('--store <url>', 'store URL', DEFAULT_STORE_URL)
    .option('--json', 'print JSON')
    .action(async (o: { store: string; json?: boolean }) => {
      // A person waits at a terminal: a store that does not answer is said, not left silent.
      const slow = (): void => console.error(`store ${redact(o.store)}: ${SLOW_OPEN_TEXT}`);
      const store = storeFromUrl(o.store);
      const report = await sayIfSlow(store.migrate(), SLOW_OPEN_MS, slow);
      await store.close();
      const jobs = jobStoreFromUrl(o.store);
      const jobsReport = await sayIfSlow(jobs.open(), SLOW_OPEN_MS, slow);
      await jobs.close();
      if (o.json) console.log(JSON.stringify({ store: report, jobs: jobsReport }));
      else
        console.log(
          `store ${redact(o.store)}: schema version ${report.current} (applied now: ${report.applied.join(', ') || 'none'})`,
        );
    });
}
