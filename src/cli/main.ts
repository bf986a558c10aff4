/**
 * `coco`: the command-line tool. Subcommands run things here (serve, agent, migrate, demo) or talk
 * to a running node over its HTTP API (submit, status, list, cancel). Human output by default,
 * `--json` for scripts; exit codes in `errors.ts` (EXIT).
 *
 * @module
 */
import { Command, CommanderError } from 'commander';
import { addClientCommands } from './commands/client-commands.js';
import { addDemoCommand } from './commands/demo-command.js';
import { addNodeCommands } from './commands/node-commands.js';
import { addPruneCommand } from './commands/prune-command.js';
import { EXIT, describeError, exitCodeOf } from './errors.js';

/** Version printed by `coco --version`. */
export const VERSION = '0.1.0';

/** Builds the program; `setExit` records the exit code of commands that report an outcome. */
export function buildProgram(setExit: (code: number) => void): Command {
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
Exit codes: 0 ok · 1 the command or job failed · 2 bad arguments · 3 no node at the server address
            4 not found · 5 input refused (parameters, configuration) · 6 other error
            7 not authorized (no token, a wrong one, or a role too low)

Examples:
  coco demo                                   live-migrate a 256 MiB disk between two storage domains
  coco serve --config coco.json               run a node (engine, job view, HTTP API on :7390)
  coco agent --id host-1 --secret-file host-1.secret
                                              run a reference agent on :7391 (secret in a chmod 600 file)
  coco submit disk.migrate -p '{"disk":"d1","toDomain":"sd2","agent":"host-1"}' --wait
  coco status 42 --watch                      follow a job's tree and progress
  coco list --status failed --json
  coco prune --older-than 30d --dry-run       count the ended trees (and jobs) older than 30 days`,
    );
  addNodeCommands(program);
  addClientCommands(program, setExit);
  addDemoCommand(program, setExit);
  addPruneCommand(program);
  return program;
}

/** Runs the CLI with `argv` (without node and the script); resolves with the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram((c) => (code = c));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the message (or the help / version).
      return error.exitCode === 0 ||
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version'
        ? EXIT.ok
        : EXIT.usage;
    }
    console.error(describeError(error));
    return exitCodeOf(error);
  }
}
