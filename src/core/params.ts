/**
 * Versioned parameters: validation at submit, upgrades when an older row is loaded.
 *
 * @module
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { CommandType } from './command-type.js';
import {
  CocoError,
  ErrorCode,
  ParameterVersionError,
  ValidationError,
  type ValidationIssue,
} from './errors.js';

function pathOf(issue: StandardSchemaV1.Issue): string {
  if (!issue.path || issue.path.length === 0) return '';
  return issue.path
    .map((seg) => (typeof seg === 'object' && seg !== null && 'key' in seg ? seg.key : seg))
    .map((key) => String(key))
    .join('.');
}

/** Converts Standard Schema issues to {@link ValidationIssue}s. */
export function toIssues(issues: readonly StandardSchemaV1.Issue[]): ValidationIssue[] {
  return issues.map((issue) => ({ path: pathOf(issue), message: issue.message }));
}

/**
 * Whether `value` is JSON as {@link checkJson} sees it (same rules, no issue noted): the walk of
 * valid input allocates nothing at all — {@link checkJson}'s path array took room for 17 keys
 * at its first key (~0.15 KB per command and per child, ~2.5 % of what a chain allocates). Only
 * input that fails it is walked again for its issues. The two walks write the same rules twice:
 * test/unit/params-json.test.ts checks that they agree on arbitrary values.
 * @internal
 */
export function isJson(value: unknown, depth = 0): boolean {
  if (depth > 64) return false;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) continue;
      if (!isJson(value[i], depth + 1)) return false;
    }
    return true;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const record = value as Record<string, unknown>;
    for (const key in record) {
      if (!Object.hasOwn(record, key)) continue;
      const item = record[key];
      if (item !== undefined && !isJson(item, depth + 1)) return false;
    }
    return true;
  }
  return false;
}

/**
 * Walks `value`, noting what JSON would not keep. `keys` is the path down to it, joined into a
 * string only for an issue: every submitted command's parameters go through here, so the walk
 * allocates nothing for valid input (no path strings, no entry arrays, no closures).
 */
function checkJson(
  value: unknown,
  keys: (string | number)[],
  issues: ValidationIssue[],
  depth: number,
): void {
  if (depth > 64) {
    issues.push({ path: keys.join('.'), message: 'nested too deeply (more than 64 levels)' });
    return;
  }
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value))
      issues.push({ path: keys.join('.'), message: `${value} is not a JSON number` });
    return;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) continue; // a hole, as forEach and JSON's own walk skip it
      keys.push(i);
      checkJson(value[i], keys, issues, depth + 1);
      keys.pop();
    }
    return;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const record = value as Record<string, unknown>;
    for (const key in record) {
      if (!Object.hasOwn(record, key)) continue;
      const item = record[key];
      if (item === undefined) continue;
      keys.push(key);
      checkJson(item, keys, issues, depth + 1);
      keys.pop();
    }
    return;
  }
  issues.push({
    path: keys.join('.'),
    message: `a ${typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value} is not JSON`,
  });
}

/**
 * The longest duration a command or a task may be given (a timeout, a deadline, a retry's
 * back-off): 100 years. The time it ends at then still fits the stores' 64-bit integer columns
 * with room to spare; an endless one (`Infinity`) or one past them would be refused by the store
 * on every try.
 */
export const MAX_DURATION_MS = 100 * 365 * 24 * 3_600_000;

/** Whether `ms` is a duration a command or a task may be given: finite, positive, at most 100 years. */
export function isDuration(ms: unknown): ms is number {
  return typeof ms === 'number' && ms > 0 && ms <= MAX_DURATION_MS;
}

/**
 * Whether text can be stored as it is on every store: PostgreSQL's `text` cannot hold U+0000, and
 * a batch holding one is refused every time it is tried (the node stalls behind it). Strings
 * inside JSON values are stored escaped and need no check; text stored raw — an idempotency key,
 * a task's agent and verb, an entity's kind and id — does.
 */
export function storableText(text: string): boolean {
  return !text.includes('\u0000');
}

/** What a field whose text is not {@link storableText} is told. */
export const UNSTORABLE_TEXT = 'must not contain U+0000 (NUL), which a store cannot keep';

/**
 * Checks that a value survives JSON storage unchanged in meaning (plain objects, arrays,
 * finite numbers, strings, booleans, null). Throws a {@link ValidationError} naming the field.
 */
export function assertJson(value: unknown, what: string): void {
  if (isJson(value, 0)) return;
  const issues = jsonIssues(value);
  if (issues.length > 0) throw new ValidationError(what, issues);
}

/**
 * What JSON would not keep of `value`, each with its path ({@link checkJson}'s walk): empty for
 * JSON. The slow walk that names the issues, run only once {@link isJson} has said no.
 * @internal
 */
export function jsonIssues(value: unknown): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  checkJson(value, [], issues, 0);
  return issues;
}

/**
 * Validates parameters against the type's current schema. The input (which must be JSON) is
 * what gets stored; the schema's output is what handlers see, and loading re-parses the input.
 * Throws a {@link ValidationError} naming each bad field.
 */
export async function validateParams<P, I>(type: CommandType<P, I>, params: unknown): Promise<P> {
  assertJsonParams(type, params);
  const result = await type.schema['~standard'].validate(params);
  if (result.issues) throw new ValidationError(paramsInvalid(type), toIssues(result.issues));
  return result.value;
}

/** The message of a {@link ValidationError} for parameters of `type`. */
function paramsInvalid(type: CommandType<unknown, unknown>): string {
  return `invalid parameters for command type "${type.name}" (version ${type.version})`;
}

/**
 * {@link assertJson} for parameters of `type`, its message made only for an error: this runs
 * for every submitted command.
 */
function assertJsonParams(type: CommandType<unknown, unknown>, params: unknown): void {
  if (isJson(params, 0)) return;
  const issues = jsonIssues(params);
  if (issues.length > 0) throw new ValidationError(paramsInvalid(type), issues);
}

/**
 * Validates parameters synchronously when the schema allows it (zod does for schemas without
 * async refinements). Returns undefined when the schema answered with a promise: use
 * {@link validateParams} then. Throws like {@link validateParams}.
 * @internal
 */
export function validateParamsSync<P, I>(
  type: CommandType<P, I>,
  params: unknown,
): { value: P } | undefined {
  assertJsonParams(type, params);
  const result = type.schema['~standard'].validate(params);
  if (result instanceof Promise) return undefined;
  if (result.issues) throw new ValidationError(paramsInvalid(type), toIssues(result.issues));
  return { value: result.value };
}

/** What {@link upgradeParams} returns. */
export interface UpgradedParams<P> {
  /** The schema's output, for handlers. */
  readonly params: P;
  /** The upgraded input at the current version (what is stored). */
  readonly raw: unknown;
  /** True when an older version was upgraded (the next write stores the current version). */
  readonly upgraded: boolean;
}

/**
 * Brings stored parameters to the current version: runs each upgrader from the stored version
 * in order, then validates with the current schema.
 *
 * @throws {@link ParameterVersionError} when the stored version is newer than the type's.
 * @throws {@link CocoError} `PARAMETER_UPGRADE_FAILED` when an upgrader throws.
 * @throws {@link ValidationError} when the (upgraded) parameters do not match the schema.
 */
export async function upgradeParams<P, I>(
  type: CommandType<P, I>,
  storedVersion: number,
  stored: unknown,
  commandId?: number,
): Promise<UpgradedParams<P>> {
  const value = upgradeRaw(type, storedVersion, stored, commandId);
  return finishUpgrade(
    type,
    storedVersion,
    value,
    await type.schema['~standard'].validate(value as I),
    commandId,
  );
}

/**
 * {@link upgradeParams} without a promise when the schema validates synchronously (zod does);
 * returns undefined when it does not (use {@link upgradeParams} then). Recovery loads every
 * unfinished command through here.
 * @internal
 */
export function upgradeParamsSync<P, I>(
  type: CommandType<P, I>,
  storedVersion: number,
  stored: unknown,
  commandId?: number,
): UpgradedParams<P> | undefined {
  const value = upgradeRaw(type, storedVersion, stored, commandId);
  const result = type.schema['~standard'].validate(value);
  if (result instanceof Promise) return undefined;
  return finishUpgrade(type, storedVersion, value, result, commandId);
}

function upgradeRaw<P, I>(
  type: CommandType<P, I>,
  storedVersion: number,
  stored: unknown,
  commandId?: number,
): unknown {
  if (storedVersion > type.version)
    throw new ParameterVersionError(type.name, storedVersion, type.version, commandId);
  let value = stored;
  for (let v = storedVersion; v < type.version; v++) {
    const upgrade = type.upgrades[v] as ((p: unknown) => unknown) | undefined;
    try {
      if (!upgrade) throw new Error('no upgrader registered');
      value = upgrade(value);
    } catch (cause) {
      throw new CocoError(
        ErrorCode.ParameterUpgradeFailed,
        `command ${commandId ?? '(new)'} of type "${type.name}": upgrading parameters from version ${v} to ${v + 1} failed: ${
          cause instanceof Error ? cause.message : String(cause)
        }`,
        { cause, details: { commandType: type.name, fromVersion: v, commandId } },
      );
    }
  }
  return value;
}

function finishUpgrade<P, I>(
  type: CommandType<P, I>,
  storedVersion: number,
  value: unknown,
  result: StandardSchemaV1.Result<P>,
  commandId?: number,
): UpgradedParams<P> {
  if (result.issues) {
    throw new ValidationError(
      `command ${commandId ?? '(new)'} of type "${type.name}": stored parameters (version ${storedVersion}) do not match version ${type.version}`,
      toIssues(result.issues),
    );
  }
  return { params: result.value, raw: value, upgraded: storedVersion < type.version };
}
