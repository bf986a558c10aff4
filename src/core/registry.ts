/**
 * The type registry: how stored commands find their definitions again after a restart
 * (by the stored type name, never by reflection on class names).
 *
 * @module
 */
import type { CommandType } from './command-type.js';
import { CocoError, ErrorCode } from './errors.js';

/** Command types by name. */
export class CommandRegistry {
  readonly #types = new Map<string, CommandType>();

  constructor(types: Iterable<CommandType> = []) {
    for (const type of types) this.register(type);
  }

  /** Adds a type; a second type with the same name is refused. */
  register(type: CommandType): void {
    if (this.#types.has(type.name)) {
      throw new CocoError(
        ErrorCode.InvalidDefinition,
        `command type "${type.name}" is registered twice`,
      );
    }
    this.#types.set(type.name, type);
  }

  /** The type with this name, or undefined. */
  get(name: string): CommandType | undefined {
    return this.#types.get(name);
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
