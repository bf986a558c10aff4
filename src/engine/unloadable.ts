/**
 * Commands the engine could not load whole: their type is unknown here (removed, or renamed
 * without an alias), their parameters were written by newer code, or their parameters cannot be
 * upgraded or validated. Such a command is *held*: loaded with what its rows say, but nothing of
 * it runs — no stage, no task started, stopped, polled or cleared — until a cancel ends it (see
 * `Coordinator.endHeld`): then it fails as any command does, running what can run from stored
 * data. This module holds what that needs: a stand-in for an unknown type, the error of a
 * command ended so, and the error of a handler reading parameters that could not be loaded.
 *
 * @module
 */
import { DEFAULT_MAX_STAGES, type CommandType } from '../core/command-type.js';
import { CocoError, ErrorCode, type ErrorInfo } from '../core/errors.js';
import type { LiveCommand } from './live.js';

/** The stand-ins made by {@link unknownType}. */
const STAND_INS = new WeakSet<CommandType>();

/**
 * A stand-in for a type this engine has no code for (not registered, or registered at an older
 * version than the command was written with): it has no handlers, so nothing of the command's
 * code runs — not its stages, not its undo steps, not its `onFailure`.
 */
export function unknownType(name: string, version: number): CommandType {
  const refuse = (): never => {
    throw new CocoError(ErrorCode.CommandUnloadable, `no code of command type "${name}" runs here`);
  };
  const type: CommandType = Object.freeze({
    name,
    aliases: [],
    childOnly: false,
    createdBy: [],
    version,
    schema: {
      '~standard': {
        version: 1 as const,
        vendor: 'coco',
        validate: () => ({ issues: [{ message: `command type "${name}" is unknown here` }] }),
      },
    },
    upgrades: {},
    childMode: 'concurrent' as const,
    failurePolicy: 'wait-all' as const,
    timeoutMs: null,
    handlerTimeoutMs: null,
    retry: { maxAttempts: 1, backoffMs: 0, maxBackoffMs: 0 },
    maxStages: DEFAULT_MAX_STAGES,
    handlers: { execute: refuse, next: null, onSuccess: null, onFailure: null, undo: {} },
  });
  STAND_INS.add(type);
  return type;
}

/** Whether a command's type is a stand-in: none of its code can run. */
export function isUnknownType(type: CommandType): boolean {
  return STAND_INS.has(type);
}

/**
 * The error a command held because it could not be loaded ends with (`COMMAND_UNLOADABLE`): why
 * it could not be loaded, and what of its code runs as it ends; a command of a tree held because
 * the store refused its changes ends with `TREE_REFUSED`. The error it had before (it was
 * already failing) is kept in the details.
 */
export function unloadableError(c: LiveCommand): ErrorInfo {
  const why = c.loadError?.message ?? 'no reason recorded';
  const refused = c.loadError?.code === ErrorCode.TreeRefused;
  const ends = 'its tasks are stopped and cleared, its children cancelled';
  const how = refused
    ? `it was held (${why}), so its undo steps and onFailure run from what was stored; ${ends}`
    : isUnknownType(c.type)
      ? `it could not be loaded (${why}), so none of its code runs (no undo step, no onFailure); ${ends}`
      : `it could not be loaded (${why}), so its undo steps and onFailure run with their stored data only (a handler reading its parameters fails); ${ends}`;
  return new CocoError(
    refused ? ErrorCode.TreeRefused : ErrorCode.CommandUnloadable,
    `command ${c.id} (${c.type.name}) was ended by a cancel: ${how}`,
    {
      details: {
        commandId: c.id,
        commandType: c.type.name,
        cause: c.loadError,
        ...(c.error ? { previous: c.error } : {}),
      },
    },
  ).toInfo();
}

/** What a handler of a command whose parameters could not be loaded gets for `ctx.params`. */
export function paramsUnavailable(c: LiveCommand): CocoError {
  return new CocoError(
    ErrorCode.CommandUnloadable,
    `the parameters of command ${c.id} (${c.type.name}) could not be loaded` +
      `${c.loadError ? ` (${c.loadError.message})` : ''}; this handler can use only the data stored with it`,
    { details: { commandId: c.id, cause: c.loadError } },
  );
}
