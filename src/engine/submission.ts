/**
 * What a submission is checked against before anything is created: the command type registered
 * with the engine (name and version) and allowed as a root (not child-only), its parameters
 * (validated and parsed), and the idempotency key. A bad submission is refused here, so nothing
 * of it is stored.
 *
 * @module
 */
import type { CommandType } from '../core/command-type.js';
import { CocoError, ErrorCode, ValidationError } from '../core/errors.js';
import {
  storableText,
  UNSTORABLE_TEXT,
  validateParams,
  validateParamsSync,
} from '../core/params.js';
import type { CommandRegistry } from '../core/registry.js';

/** The engine's registration of a command type; refuses an unknown name or another version. */
function registeredType(registry: CommandRegistry, name: string, version: number): CommandType {
  const registered = registry.get(name);
  if (!registered)
    throw new CocoError(
      ErrorCode.InvalidDefinition,
      `command type "${name}" is not registered with this engine`,
    );
  if (registered.version !== version) {
    throw new CocoError(
      ErrorCode.InvalidDefinition,
      `command type "${name}" is registered at version ${registered.version}, not ${version}`,
    );
  }
  return registered;
}

/**
 * The engine's registration of a type submitted as a root: as {@link registeredType}, and
 * refuses a child-only type with `COMMAND_TYPE_NOT_SUBMITTABLE`, naming the types that create it.
 */
export function submittableType(
  registry: CommandRegistry,
  name: string,
  version: number,
): CommandType {
  const registered = registeredType(registry, name, version);
  if (registered.childOnly) {
    const parents = registered.createdBy;
    throw new CocoError(
      ErrorCode.CommandTypeNotSubmittable,
      `command type "${name}" runs only as a child of another command and cannot be submitted on its own` +
        (parents.length > 0
          ? ` (it is created by ${parents.join(', ')}; submit that instead)`
          : ''),
      { details: { commandType: name, createdBy: parents } },
    );
  }
  return registered;
}

/** Validates and parses parameters (synchronously when the schema allows). */
export async function parseParams(type: CommandType, params: unknown): Promise<unknown> {
  return (validateParamsSync(type, params) ?? { value: await validateParams(type, params) }).value;
}

/** Refuses an idempotency key that is not a string of 1 to 200 characters, without U+0000. */
export function checkIdempotencyKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 200) {
    throw new CocoError(
      ErrorCode.ParametersInvalid,
      'idempotencyKey must be a string of 1 to 200 characters',
    );
  }
  if (!storableText(key))
    throw new CocoError(ErrorCode.ParametersInvalid, `idempotencyKey ${UNSTORABLE_TEXT}`);
}

/**
 * Checks every item of a batch submission; a bad one rejects the whole batch with an error
 * naming its index and field.
 */
export async function prepareMany(
  registry: CommandRegistry,
  items: readonly { readonly type: CommandType<unknown, unknown>; readonly params: unknown }[],
): Promise<{ type: CommandType; raw: unknown; parsed: unknown }[]> {
  const prepared: { type: CommandType; raw: unknown; parsed: unknown }[] = [];
  for (let index = 0; index < items.length; index++) {
    const item = items[index]!;
    let registered: CommandType;
    try {
      registered = submittableType(registry, item.type.name, item.type.version);
    } catch (error) {
      if (error instanceof CocoError && error.code === ErrorCode.CommandTypeNotSubmittable)
        throw new CocoError(error.code, `item ${index}: ${error.plainMessage}`, {
          details: { index, ...(error.details as object) },
        });
      throw error;
    }
    try {
      // Synchronously when the schema allows: no promise and no await per item (a submitMany
      // of 1,000 commands made 1,000 of each); awaited only for an async schema.
      const sync = validateParamsSync(registered, item.params);
      const parsed =
        sync !== undefined ? sync.value : await validateParams(registered, item.params);
      prepared.push({ type: registered, raw: item.params, parsed });
    } catch (error) {
      if (error instanceof ValidationError) {
        throw new ValidationError(
          `item ${index}: ${error.plainMessage.split(':')[0] ?? 'invalid'}`,
          error.issues.map((i) => ({ path: `${index}.${i.path}`, message: i.message })),
        );
      }
      throw error;
    }
  }
  return prepared;
}

/**
 * A value as JSON text with object keys sorted at every level: two parameter objects that differ
 * only in key order give the same text (an idempotency key reused with the same parameters).
 */
export function canonicalJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o)
          .sort()
          .map((k) => [k, sort(o[k])]),
      );
    }
    return v;
  };
  // A round trip first: what JSON drops (undefined, functions) is dropped here too.
  const text = JSON.stringify(value);
  return text === undefined ? 'null' : JSON.stringify(sort(JSON.parse(text)));
}
