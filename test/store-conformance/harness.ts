/**
 * What a store gives the conformance suite ({@link StoreHarness}) and the suite's shared helpers.
 *
 * @module
 */
import { expect, type TestContext } from 'vitest';
import { CocoError } from '../../src/core/errors.js';
import type { Store } from '../../src/store/port.js';

/** A fresh, empty database behind a store, plus what the suite cannot do through the port. */
export interface StoreHarness {
  /** A store over the fresh database, not yet migrated or opened. */
  readonly store: Store;
  /** Closes what the harness opened and removes the database. */
  cleanup(): Promise<void>;
  /** Another store over the same database, as a second process would have (not opened). */
  another?(): Promise<Store>;
  /** Single-writer stores refuse a second live owner (`STORE_IN_USE`). */
  readonly singleWriter?: boolean;
  /**
   * Records `nodeId`, in a process that no longer exists, as the owner of the store (on a shared
   * store: `nodeId` took the store over, fencing every node registered so far, then died).
   */
  simulateDeadOwner?(nodeId: string): Promise<void>;
  /** The code with which a taken-over owner's heartbeat rejects. @default STORE_IN_USE */
  readonly takenOverCode?: string;
  /**
   * Shared stores own commands by tree: `apply` writes the opened node as the `owner` of every
   * command it inserts or updates, whatever the record says, and reads return that owner.
   */
  readonly stampsOwner?: boolean;
  /** Makes a stored command row unreadable: bad JSON text, or a status no machine knows. */
  corruptCommandRow?(id: number, how: 'json' | 'status'): Promise<void>;
  /** Makes a stored task row unreadable. */
  corruptTaskRow?(commandId: number, ordinal: number, how: 'json' | 'status'): Promise<void>;
}

/** What each test sees. */
export interface SuiteEnv {
  readonly h: StoreHarness;
  readonly store: Store;
  /** {@link StoreHarness.another}, closed after the test; skips the test if the harness lacks it. */
  another(ctx: TestContext): Promise<Store>;
  /**
   * A command record as the store returns it after `node` wrote it: itself, or, on a store that
   * {@link StoreHarness.stampsOwner}, owned by `node`.
   */
  stored<T extends { readonly owner: string | null }>(record: T, node?: string): T;
}

/** Returns the hook, or skips the test with a note when the harness lacks it. */
export function need<T>(ctx: TestContext, hook: T | undefined, name: string): T {
  if (hook === undefined) ctx.skip(`the store harness has no ${name}()`);
  return hook!;
}

/** Awaits a promise that must reject with a {@link CocoError} of this code; returns the error. */
export async function rejectsWith(promise: Promise<unknown>, code: string): Promise<CocoError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected a rejection with ${code}`).toBeInstanceOf(CocoError);
  expect((error as CocoError).code).toBe(code);
  return error as CocoError;
}
