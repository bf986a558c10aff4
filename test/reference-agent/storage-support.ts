/**
 * Running the storage verbs in tests that must not fill the disk if a check is missing: a verb
 * context that stops the verb after its first chunk, and a runner by verb name.
 */
import type { StorageVerbContext, Verb } from '../../src/reference-agent/storage/verbs.js';

/** A context that stops the verb after its first chunk: a safety net if a check is missing. */
export function stoppingContext(): StorageVerbContext {
  const controller = new AbortController();
  return {
    signal: controller.signal,
    taskId: 'task-1',
    progress(p) {
      if (p > 0) controller.abort();
    },
  };
}

/** Runs the verb `name` of `verbs` to its end (or throw), stopped after its first chunk by default. */
export async function runVerb(
  verbs: Readonly<Record<string, Verb>>,
  name: string,
  args: unknown,
  ctx: StorageVerbContext = stoppingContext(),
): Promise<unknown> {
  const verb = verbs[name];
  if (!verb) throw new Error(`no verb ${name}`);
  return await verb(args, ctx);
}
