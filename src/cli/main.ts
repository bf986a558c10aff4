/**
 * `coco`: the command-line tool. Subcommands run things here (serve, agent, migrate, demo) or talk
 * to a running node over its HTTP API (submit, status, list, cancel, release, rerun, agents,
 * prune; types, pause, resume). Human output by default, `--json` for scripts; exit codes in
 * `errors.ts` (EXIT).
 *
 * @module
 */
import { Command, CommanderError } from 'commander';
import { EXIT, describeError, errorJson, exitCodeOf } from './errors.js';

/** Version printed by `coco --version`. */
export const VERSION = '0.1.0';

/** Adds a group of subcommands to the program. */
type AddCommands = (program: Command, setExit: (code: number) => void) => void;

/**
 * The subcommands, their one-line descriptions (for `coco --help`) and the module defining them,
 * loaded only when one of them runs: `coco --version` and `coco --help` load no server, store or
 * agent code (a test checks these descriptions are the modules' own).
 */
export const SUBCOMMANDS: Readonly<
  Record<string, { description: string; load: () => Promise<AddCommands> }>
> = (() => {
  const node = async (): Promise<AddCommands> =>
    (await import('./commands/node-commands.js')).addNodeCommands;
  const client = async (): Promise<AddCommands> =>
    (await import('./commands/client-commands.js')).addClientCommands;
  const demo = async (): Promise<AddCommands> =>
    (await import('./commands/demo-command.js')).addDemoCommand;
  const prune = async (): Promise<AddCommands> =>
    (await import('./commands/prune-command.js')).addPruneCommand;
  const types = async (): Promise<AddCommands> =>
    (await import('./commands/type-commands.js')).addTypeCommands;
  return {
    serve: {
      description:
        'run a coco node: the engine, the job view and the HTTP API, with the agents of the configuration',
      load: node,
    },
    agent: {
      description:
        'run a reference agent: storage verbs on image files under a root of storage domains',
      load: node,
    },
    migrate: {
      description: 'create or upgrade the store schema (and the job view tables), then exit',
      load: node,
    },
    submit: { description: 'submit a command to a running node', load: client },
    status: {
      description: 'show a job: its tree of commands and tasks with progress',
      load: client,
    },
    list: { description: 'list commands, newest first', load: client },
    cancel: {
      description:
        'cancel a command and its subtree (stops tasks, runs compensation); ends a command that could not be loaded',
      load: client,
    },
    release: {
      description:
        'run again a tree held because the store refused its changes (TREE_REFUSED), once the cause is gone',
      load: client,
    },
    agents: {
      description:
        "list the node's agents: up or down, retired, its tasks in flight on each, last seen",
      load: client,
    },
    rerun: {
      description: 'run an ended root command again: a new command of its type with its parameters',
      load: client,
    },
    types: {
      description:
        "list the node's command types: submittable or child only, root limit, roots running and queued, pauses",
      load: types,
    },
    pause: {
      description:
        'pause a command type on every node of the store: its new jobs are stored and wait until it is resumed (running ones go on)',
      load: types,
    },
    resume: {
      description: 'resume a paused command type: its waiting jobs run as the limits allow',
      load: types,
    },
    prune: {
      description:
        'delete the trees of commands that ended longer ago than an age (with their tasks, undo steps and jobs); live trees are never touched',
      load: prune,
    },
    demo: {
      description:
        'the main job: live-migrate a disk image between two storage domains through a local agent, showing progress',
      load: demo,
    },
  };
})();

/**
 * Builds the program for `argv`: with the subcommand `argv` names (and those defined beside it)
 * loaded, or — for `--version`, `--help` and anything else — only their names and descriptions.
 * `setExit` records the exit code of commands that report an outcome.
 */
export async function buildProgram(
  setExit: (code: number) => void,
  argv: readonly string[] = [],
): Promise<Command> {
  const program = new Command('coco')
    .description(
      'coco — a durable command coordinator: commands, async tasks on agents, child trees, compensation, recovery',
    )
    .version(VERSION)
    .showHelpAfterError('(run "coco --help" or "coco <command> --help" for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      `
Exit codes: see "Exit codes" in the README; 0 ok · 1 the command or job failed · 2 bad arguments
            3 no coco node at the server address · 4 not found · 5 input refused · 6 other error
            7 not authorized (no token, a wrong one, or a role too low) · 8 the command's state does not allow it

Examples:
  coco demo                                   live-migrate a 256 MiB disk between two storage domains
  coco serve --config coco.json               run a node (engine, job view, HTTP API on :7390)
  coco agent --id host-1 --secret-file host-1.secret
                                              run a reference agent on :7391 (secret in a chmod 600 file)
  coco submit disk.migrate -p '{"disk":"d1","toDomain":"sd2","agent":"host-1"}' --wait
  coco status 42 --watch                      follow a job's tree and progress
  coco list --status failed --json
  coco rerun 42 --wait                        run the ended job 42 again, as a new job
  coco pause disk.migrate --reason "storage maintenance"
                                              new disk.migrate jobs wait (on every node) until:
  coco resume disk.migrate                    ... their type is resumed; coco types lists the pauses
  coco prune --older-than 30d --dry-run       count the ended trees (and jobs) older than 30 days`,
    );
  const name = argv[0] === 'help' ? argv[1] : argv[0];
  const wanted = name === undefined ? undefined : SUBCOMMANDS[name];
  if (wanted !== undefined) {
    (await wanted.load())(program, setExit);
    return program;
  }
  for (const [command, { description }] of Object.entries(SUBCOMMANDS)) {
    program.command(command).description(description);
  }
  return program;
}

/** Runs the CLI with `argv` (without node and the script); resolves with the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  let code: number = EXIT.ok;
  const program = await buildProgram((c) => (code = c), argv);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (error) {
    const json = argv.includes('--json');
    if (error instanceof CommanderError) {
      if (json && exitCodeOf(error) !== EXIT.ok) console.log(errorJson(error));
      // Commander already printed the message (or the help / version).
      return error.exitCode === 0 ||
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version'
        ? EXIT.ok
        : EXIT.usage;
    }
    if (json) console.log(errorJson(error));
    else console.error(describeError(error));
    return exitCodeOf(error);
  }
}
