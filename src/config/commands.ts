/**
 * Loads command types from modules named in the configuration: every exported command type,
 * and every exported array of them, is registered.
 *
 * @module
 */
import { pathToFileURL } from 'node:url';
import type { CommandType } from '../core/command-type.js';
import { CocoError, ErrorCode } from '../core/errors.js';

/** Whether a value is a command type made by `defineCommand`. */
export function isCommandType(value: unknown): value is CommandType {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<CommandType>;
  return (
    typeof v.name === 'string' &&
    typeof v.version === 'number' &&
    typeof v.handlers?.execute === 'function' &&
    typeof v.schema === 'object'
  );
}

/** Imports each module and collects its command types (duplicates by identity are kept once). */
export async function loadCommandModules(paths: readonly string[]): Promise<CommandType[]> {
  const found = new Set<CommandType>();
  for (const path of paths) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
    } catch (error) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `cannot load the command module ${path}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    let count = 0;
    for (const value of Object.values(mod)) {
      for (const item of Array.isArray(value) ? value : [value]) {
        if (isCommandType(item)) {
          found.add(item);
          count++;
        }
      }
    }
    if (count === 0)
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `the module ${path} exports no command type (defineCommand)`,
      );
  }
  return [...found];
}
