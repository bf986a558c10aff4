/**
 * Building new commands: roots (submit) and children (a stage's `addChild`), with the child's
 * parameters validated against its own type — a child's parameters are its own and are never
 * recomputed from its parent's.
 *
 * @module
 */
import type { CommandType } from '../core/command-type.js';
import { CocoError, ErrorCode, ValidationError } from '../core/errors.js';
import { assertJson, toIssues } from '../core/params.js';
import type { CommandRegistry } from '../core/registry.js';
import type { IdAllocator } from './ids.js';
import { ChildState, LiveCommand } from './live.js';

/** A new root command (parameters already validated by the caller). */
export function newRoot(
  ids: IdAllocator,
  now: number,
  type: CommandType,
  raw: unknown,
  params: unknown,
  idempotencyKey: string | null,
  priority = 0,
): LiveCommand {
  const id = ids.next();
  const c = new LiveCommand({
    id,
    type,
    paramsVersion: type.version,
    rawParams: raw,
    params,
    parentId: null,
    rootId: id,
    seq: null,
    originStage: null,
    childMode: type.childMode,
    failurePolicy: type.failurePolicy,
    idempotencyKey,
    createdAt: now,
    persisted: false,
  });
  if (type.timeoutMs !== null) c.deadlineAt = now + type.timeoutMs;
  c.priority = priority;
  return c;
}

/**
 * A new child of `parent`, created by its current stage (its state as the parent tracks it:
 * {@link childStateOf}). Throws `INVALID_DEFINITION` for a type
 * the engine does not know and `PARAMETERS_INVALID` (naming the fields) for bad parameters.
 */
export function newChild(
  ids: IdAllocator,
  registry: CommandRegistry,
  now: number,
  parent: LiveCommand,
  type: CommandType,
  params: unknown,
): LiveCommand {
  const registered = registry.get(type.name);
  if (!registered || registered.version !== type.version) {
    throw new CocoError(
      ErrorCode.InvalidDefinition,
      `child type "${type.name}" (version ${type.version}) is not registered with this engine`,
    );
  }
  // The message is made only for an error: every child of every stage comes through here.
  try {
    assertJson(params, '');
  } catch (error) {
    if (error instanceof ValidationError)
      throw new ValidationError(childParamsInvalid(type, parent), error.issues);
    throw error;
  }
  const result = registered.schema['~standard'].validate(params);
  if (result instanceof Promise) {
    throw new CocoError(
      ErrorCode.InvalidDefinition,
      `command type "${type.name}" has an async schema; children need a synchronous one`,
    );
  }
  if (result.issues)
    throw new ValidationError(childParamsInvalid(type, parent), toIssues(result.issues));
  const id = ids.next();
  const seq = parent.nextJournalSeq();
  const child = new LiveCommand({
    id,
    type: registered,
    paramsVersion: registered.version,
    rawParams: params,
    params: result.value,
    parentId: parent.id,
    rootId: parent.rootId,
    seq,
    originStage: parent.stage,
    childMode: registered.childMode,
    failurePolicy: registered.failurePolicy,
    idempotencyKey: null,
    createdAt: now,
    persisted: false,
  });
  if (registered.timeoutMs !== null) child.deadlineAt = now + registered.timeoutMs;
  child.priority = parent.priority;
  return child;
}

/** A new child's state as its parent tracks it. */
export function childStateOf(child: LiveCommand): ChildState {
  return new ChildState(
    child.id,
    child.type.name,
    child.seq!,
    child.originStage!,
    'pending',
    null,
    null,
    'none',
  );
}

/** The message of a {@link ValidationError} for a child's parameters. */
function childParamsInvalid(type: CommandType, parent: LiveCommand): string {
  return `invalid parameters for child command type "${type.name}" (version ${type.version}) of command ${parent.id}`;
}
