/**
 * How the CLI reports errors: one line naming the code and what is wrong, a hint of what to do,
 * and an exit code a script can act on.
 *
 * @module
 */
import { CommanderError } from 'commander';
import { CocoError, ErrorCode } from '../core/errors.js';

/** Exit codes of the `coco` command. */
export const EXIT = {
  ok: 0,
  /**
   * The command or job ended failed or cancelled (submit --wait, rerun --wait, status of an ended
   * job, demo).
   */
  failed: 1,
  /** Bad arguments or options. */
  usage: 2,
  /** No coco node at the server address: nothing answered, or something that is not a node. */
  unreachable: 3,
  /** No such command or job. */
  notFound: 4,
  /** The input was refused (parameters, a child-only command type, configuration). */
  invalid: 5,
  /** Anything else. */
  error: 6,
  /** The node refused the call: no token, a wrong one, or a role too low (401, 403). */
  notAuthorized: 7,
  /**
   * The command's state does not allow it: cancel of a command that has already ended, rerun of
   * one still running or of a child.
   */
  ended: 8,
  /**
   * Not now: the node cannot take the call (HTTP 503: its store is out, `STORE_FAILED`, or its
   * engine stopped, `ENGINE_STOPPED`; HTTP 429: the caller's rate limit, `RATE_LIMITED`), or
   * `serve` / `migrate` cannot reach its store. Nothing was done: try again later (a submit with
   * the same `--key`).
   */
  unavailable: 9,
} as const;

/** The exit code for an error. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  if (!(error instanceof CocoError)) return EXIT.error;
  switch (error.code) {
    case ErrorCode.ServerUnreachable:
    case ErrorCode.NotACocoNode:
      return EXIT.unreachable;
    case ErrorCode.CommandState:
      return EXIT.ended;
    case ErrorCode.StoreFailed:
    case ErrorCode.EngineStopped:
    case ErrorCode.RateLimited:
      return EXIT.unavailable;
    case ErrorCode.CommandNotFound:
    case ErrorCode.NotFound:
      return EXIT.notFound;
    case ErrorCode.Usage:
      return EXIT.usage;
    case ErrorCode.CommandFailed:
      return EXIT.failed;
    case ErrorCode.Unauthorized:
    case ErrorCode.Forbidden:
      return EXIT.notAuthorized;
    case ErrorCode.ParametersInvalid:
    case ErrorCode.InvalidOptions:
    case ErrorCode.InvalidDefinition:
    case ErrorCode.CommandTypeNotSubmittable:
    case ErrorCode.ParameterUpgradeFailed:
    case ErrorCode.ParameterVersionTooNew:
    case ErrorCode.UnknownCommandType:
    case ErrorCode.IdempotencyConflict:
    case ErrorCode.BadRequest:
      return EXIT.invalid;
    default:
      return EXIT.error;
  }
}

/** The message printed for an error (stderr). */
export function describeError(error: unknown): string {
  if (error instanceof CocoError) {
    const issues = (error.details as { issues?: { path: string; message: string }[] } | undefined)
      ?.issues;
    const more =
      issues && issues.length > 1
        ? `\n${issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n')}`
        : '';
    return `error: ${error.message}${more}`;
  }
  return `error: ${error instanceof Error ? error.message : String(error)}`;
}

/** An error as `--json` prints it on stdout: its code, message, details, and the exit code. */
export function errorJson(error: unknown): string {
  const info =
    error instanceof CocoError
      ? error.toInfo()
      : {
          code: error instanceof CommanderError ? ErrorCode.Usage : ErrorCode.Internal,
          message: error instanceof Error ? error.message : String(error),
        };
  return JSON.stringify({ error: info, exitCode: exitCodeOf(error) }, null, 2);
}

/** A usage error (exit code 2). */
export function usage(message: string): CocoError {
  return new CocoError(ErrorCode.Usage, message);
}
