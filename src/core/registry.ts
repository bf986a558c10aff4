/**
 * The type registry: how stored commands find their definitions again after a restart
 * (by the stored type name, never by reflection on class names). A renamed type declares its
 * former names (aliases): rows stored under one of them resolve to it.
 *
 * @module
 */
import type { CommandType } from './command-type.js';
import { CocoError, ErrorCode } from './errors.js';

/** Command types by name, and by the names stored rows may carry (names and aliases). */
export class CommandRegistry {
  readonly #types = new Map<string, CommandType>();
  readonly #stored = new Map<string, CommandType>();

  constructor(types: Iterable<CommandType> = []) {
    for (const type of types) this.register(type);
  }

  /**
   * Adds a type. A type whose name or alias is already another type's name or alias (or the
   * same type twice) is refused with `INVALID_DEFINITION`: a stored name must lead to one type.
   */
  register(type: CommandType): void {
    for (const name of [type.name, ...type.aliases]) {
      const taken = this.#stored.get(name);
      if (!taken) continue;
      const what = name === type.name ? 'name' : 'alias';
      const holder = taken.name === name ? 'the name' : 'an alias';
      throw new CocoError(
        ErrorCode.InvalidDefinition,
        taken === type || taken.name === type.name
          ? `command type "${type.name}" is registered twice`
          : `command type "${type.name}": its ${what} "${name}" is already ${holder} of command type "${taken.name}"`,
        { details: { commandType: type.name, name, takenBy: taken.name } },
      );
    }
    this.#types.set(type.name, type);
    for (const name of [type.name, ...type.aliases]) this.#stored.set(name, type);
  }

  /** The type with this name (not an alias), or undefined. */
  get(name: string): CommandType | undefined {
    return this.#types.get(name);
  }

  /** The type a stored row's name leads to: the type of that name, or the one with that alias. */
  resolve(storedName: string): CommandType | undefined {
    return this.#stored.get(storedName);
  }

  /** The type with this name; throws `UNKNOWN_COMMAND_TYPE` if there is none. */
  require(name: string): CommandType {
    const type = this.#types.get(name);
    if (!type) {
      throw new CocoError(
        ErrorCode.UnknownCommandType,
        `no command type named "${name}" is registered`,
        {
          details: { commandType: name, known: [...this.#types.keys()] },
        },
      );
    }
    return type;
  }

  /** Every registered type. */
  all(): CommandType[] {
    return [...this.#types.values()];
  }
}
