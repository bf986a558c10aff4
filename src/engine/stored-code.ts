/**
 * The code of a stored command, as far as this engine can load it: its type found through the
 * registry by its stored name (never reflection), its parameters brought to the current version
 * by the type's upgraders and validated (recovery.ts).
 *
 * @module
 */
import {
  CocoError,
  ErrorCode,
  ParameterVersionError,
  toErrorInfo,
  type ErrorInfo,
} from '../core/errors.js';
import type { CommandType } from '../core/command-type.js';
import { upgradeParams, upgradeParamsSync } from '../core/params.js';
import type { CommandRegistry } from '../core/registry.js';
import type { CommandRecord } from '../core/records.js';
import { BROKEN_PARAMS, type LiveCommand } from './live.js';
import { unknownType } from './unloadable.js';

/** What the code of a stored command is, as far as this engine can load it. */
export interface LoadedCode {
  readonly type: CommandType;
  readonly params: unknown;
  readonly raw: unknown;
  readonly version: number;
  /** The parameters were upgraded (to be written back at the current version). */
  readonly upgraded: boolean;
  /** Why the type or the parameters could not be loaded (null: loaded). */
  readonly loadError: ErrorInfo | null;
  /**
   * The type's schema validates asynchronously: the parameters are {@link BROKEN_PARAMS} until
   * {@link loadCodeLater} has run.
   */
  readonly later?: true;
}

/**
 * Finds a stored command's type by its stored name (the type's own, or a former one) and
 * upgrades its parameters. An unknown type, or parameters written by newer code, give a
 * stand-in type (none of its code runs here); parameters that cannot be upgraded or validated
 * give {@link BROKEN_PARAMS} under the real type.
 */
export function loadCode(registry: CommandRegistry, r: CommandRecord): LoadedCode {
  const broken = {
    params: BROKEN_PARAMS,
    raw: r.params,
    version: r.paramsVersion,
    upgraded: false,
  };
  const type = registry.resolve(r.type);
  if (!type) {
    const loadError = new CocoError(
      ErrorCode.UnknownCommandType,
      `command ${r.id} has type "${r.type}", which this engine does not know (by name or alias)`,
      { details: { commandType: r.type, commandId: r.id } },
    ).toInfo();
    return { ...broken, type: unknownType(r.type, r.paramsVersion), loadError };
  }
  try {
    const result = upgradeParamsSync(type, r.paramsVersion, r.params, r.id);
    if (result === undefined) return { ...broken, type, loadError: null, later: true };
    return loaded(type, r.paramsVersion, result);
  } catch (error) {
    return notLoaded(type, r.type, broken, error);
  }
}

/**
 * {@link loadCode} for a command whose type's schema validates asynchronously (`later`): from
 * the version and parameters its row was stored with.
 */
export async function loadCodeLater(
  c: LiveCommand,
  version: number,
  params: unknown,
): Promise<LoadedCode> {
  const broken = { params: BROKEN_PARAMS, raw: params, version, upgraded: false };
  try {
    return loaded(c.type, version, await upgradeParams(c.type, version, params, c.id));
  } catch (error) {
    return notLoaded(c.type, c.type.name, broken, error);
  }
}

function loaded(
  type: CommandType,
  version: number,
  result: { params: unknown; raw: unknown; upgraded: boolean },
): LoadedCode {
  return {
    type,
    params: result.params,
    raw: result.raw,
    version: result.upgraded ? type.version : version,
    upgraded: result.upgraded,
    loadError: null,
  };
}

function notLoaded(
  type: CommandType,
  storedType: string,
  broken: Omit<LoadedCode, 'type' | 'loadError'>,
  error: unknown,
): LoadedCode {
  // Written by newer code: this code's handlers may not understand what that code stored.
  if (error instanceof ParameterVersionError)
    return {
      ...broken,
      type: unknownType(storedType, broken.version),
      loadError: error.toInfo(),
    };
  return { ...broken, type, loadError: toErrorInfo(error, ErrorCode.ParametersInvalid) };
}
