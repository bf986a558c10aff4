/**
 * Bringing stored commands back to life: at start (the whole active set) and, on a shared store,
 * for the trees a node claims from a dead one. Rows are rebuilt through the type registry and the
 * parameter upgraders (recovery.ts); each live command is then resumed: its tasks started,
 * stopped or polled again, its timers armed, and it is woken.
 *
 * @module
 */
import { ErrorCode } from '../core/errors.js';
import type { HeldTree } from '../store/port.js';
import type { Coordinator } from './coordinator.js';
import type { LiveCommand } from './live.js';
import { rebuild, type ActiveRows } from './recovery.js';

/**
 * Resumes one live command: its unfinished tasks go back to the dispatcher, then it is woken. A
 * held command (it could not be loaded) is only put in the repository: nothing of it runs until
 * a cancel ends it.
 */
export function resume(co: Coordinator, c: LiveCommand): void {
  co.live.set(c.id, c);
  resumeLive(co, c, co.tracing.makesSpans());
}

/**
 * {@link resume} for a command already in the repository (adopt puts them all there first).
 * `traced`: whether the tracer may make spans (`Tracing.makesSpans`, asked once per adopt).
 */
function resumeLive(co: Coordinator, c: LiveCommand, traced: boolean): void {
  if (c.held) return;
  if (traced) co.tracing.resumed(c, c.parentId === null ? undefined : co.live.get(c.parentId));
  for (const t of c.tasks) {
    // Slots are held again, queued tasks wait again (admitted by pumpAll after the load).
    co.tasks.admission.restore(t);
    if (t.ended || t.status === 'queued') continue;
    if (t.stopRequested) co.dispatcher.stop(t);
    else if (t.status === 'created') co.dispatcher.start(t);
    else co.dispatcher.watch(t);
    co.tasks.armDeadline(t);
  }
  co.armLifetime(c);
  if (c.settled && !c.tasksCleared) co.settle(c);
  co.wake(c);
}

/**
 * Rebuilds the commands of a snapshot (or of a store's stream) and resumes those not already
 * live; the commands of `held` trees (the store refused their changes) are held. Commands that
 * could not be loaded are reported (`load-failed`) and left untouched (held, or not loaded at
 * all); their tasks are never taken for strangers. `readMs`: the time until the last row was
 * handed over (RebuildResult in recovery.ts).
 */
export async function adopt(
  co: Coordinator,
  rows: ActiveRows,
  held: readonly HeldTree[],
): Promise<{ resumed: number; failed: number; readMs: number }> {
  const rebuilt = await rebuild(
    co.registry,
    co.storeId,
    rows,
    new Map(held.map((h) => [h.rootId, h])),
  );
  for (const [id, why] of rebuilt.unloaded) co.unloaded.set(id, why);
  for (const failure of rebuilt.failures) {
    co.log.warn(
      { commandId: failure.commandId, error: failure.error },
      failure.error.code === ErrorCode.TreeRefused
        ? "stored command held: the store refused its tree's changes"
        : 'stored command could not be loaded',
    );
    co.events.emit('load-failed', failure);
  }
  // Two passes over what may be a million objects just built (each pass is mostly first touches
  // of them): all in the repository first (a child's resume looks its parent up), then each
  // root's admission restored and each command resumed — nothing is woken before the last one
  // is restored (wakes run after this synchronous loop).
  // At start the repository is empty (and a store's rows have distinct ids): every command is
  // fresh, without a lookup each in a map that grows to a million entries (~0.2-0.4 µs each).
  const fresh =
    co.live.size === 0 ? rebuilt.commands : rebuilt.commands.filter((c) => !co.live.has(c.id));
  for (const c of fresh) co.live.set(c.id, c);
  const traced = co.tracing.makesSpans();
  for (const c of fresh) {
    co.roots.restore(c);
    resumeLive(co, c, traced);
  }
  co.tasks.admission.pumpAll();
  co.roots.pump();
  return { resumed: fresh.length, failed: rebuilt.failures.length, readMs: rebuilt.readMs };
}
