/**
 * The verb model: what a verb is for every agent coco ships (the in-process agents of
 * brokers/in-process and the reference agent of reference-agent/), and so for plug-in verbs.
 *
 * A verb is a plain function of its arguments and a {@link VerbContext}. What it returns
 * becomes the task's result, what it throws becomes the task's error. A verb that throws a
 * {@link CocoError} with code `TASK_REJECTED` *synchronously* refuses the start instead: the
 * task then does not exist on the agent (this is how a verb rejects bad arguments).
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, ErrorCode } from '../core/errors.js';

/** What a running verb gets besides its arguments. */
export interface VerbContext {
  /** Aborted when the task is stopped. The task is already `cancelled` by then. */
  readonly signal: AbortSignal;
  /** Reports progress, 0..100. Ignored once the task has ended. */
  progress(percent: number): void;
  /** The task's id, as chosen by the caller of `startTasks`. */
  readonly taskId: string;
  /**
   * Calls `listener` once when the task is stopped or lost (at once if it already was): a
   * lighter {@link VerbContext.signal} (Node's `AbortSignal` costs about 1 KB per task).
   */
  onStop(listener: () => void): void;
}

/**
 * An operation an agent can run. Synchronous verbs end their task before `startTasks` returns;
 * asynchronous ones end it when their promise settles. An agent may give its verbs a richer
 * context (`C`, e.g. the reference agent's logger); a verb written for the plain
 * {@link VerbContext} runs on every agent.
 */
export type Verb<C extends VerbContext = VerbContext> = (
  args: unknown,
  ctx: C,
  // The union documents that a verb may be synchronous or asynchronous.
  // eslint-disable-next-line @typescript-eslint/no-redundant-type-constituents
) => Promise<unknown> | unknown;

/** Verbs by name. */
export type VerbRegistry<C extends VerbContext = VerbContext> = Readonly<Record<string, Verb<C>>>;

/** Builds the error a verb throws synchronously to refuse a start (bad arguments). */
export function rejectStart(message: string, details?: unknown): CocoError {
  return new CocoError(ErrorCode.TaskRejected, message, { details });
}

/** Parses a verb's arguments, refusing the start (`TASK_REJECTED`) when they do not match. */
export function parseVerbArgs<T>(verb: string, schema: z.ZodType<T>, args: unknown): T {
  const parsed = schema.safeParse(args);
  if (!parsed.success) {
    throw rejectStart(`bad arguments for verb "${verb}": ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}
