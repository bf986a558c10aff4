/**
 * Pausing command types: an operator's stop on a type's new roots, kept in the store so that it
 * outlives a restart and, on a shared store, holds for every node. A paused type's roots are
 * stored as they are submitted and wait, queued (engine/root-admission.ts), until it is resumed;
 * its roots already running go on, and children of every type run.
 *
 * The node that pauses or resumes applies the change at once; the other nodes of a shared store
 * read the pauses again when signalled (`pauses`) and at every claim tick (engine/cluster.ts).
 *
 * @module
 */
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/command-type.js';
import { CocoError, ErrorCode } from '../core/errors.js';
import type { CommandRegistry } from '../core/registry.js';
import type { PausedType, Store } from '../store/port.js';
import type { EngineEvents } from './events.js';
import type { RootAdmission } from './root-admission.js';

/** What an operator may say of a pause. */
export interface PauseOptions {
  /** Why, in the operator's words (at most {@link MAX_PAUSE_REASON} characters). */
  readonly reason?: string | null;
  /** Who pauses (the API caller's name). */
  readonly by?: string | null;
}

/** The longest reason a pause keeps (a line for the dashboard, not a document). */
export const MAX_PAUSE_REASON = 500;

/** What pausing works with. */
export interface PauseParts {
  readonly store: Store;
  readonly registry: CommandRegistry;
  readonly clock: Clock;
  readonly events: EngineEvents;
  readonly logger: Logger;
  readonly roots: RootAdmission;
}

/**
 * The registered name of a type to pause or resume: its name or one of its former names
 * (aliases). Throws `UNKNOWN_COMMAND_TYPE`, or `COMMAND_TYPE_NOT_SUBMITTABLE` for a child-only
 * type (it has no roots to hold).
 */
export function pausableType(registry: CommandRegistry, name: string): string {
  const type = registry.get(name) ?? registry.resolve(name);
  if (!type)
    throw new CocoError(
      ErrorCode.UnknownCommandType,
      `no command type named "${name}" is registered`,
      {
        details: { commandType: name, known: registry.all().map((t) => t.name) },
      },
    );
  if (type.childOnly)
    throw new CocoError(
      ErrorCode.CommandTypeNotSubmittable,
      `command type "${type.name}" runs only as a child of another command: it has no roots to pause`,
      { details: { commandType: type.name, createdBy: type.createdBy } },
    );
  return type.name;
}

/** The pauses of one engine: its changes, and what it reads from the store. */
export class TypePauses {
  readonly #p: PauseParts;
  /** Counts local changes: a read begun before one is stale and dropped. */
  #changes = 0;

  constructor(parts: PauseParts) {
    this.#p = parts;
  }

  /** Pauses a type (see the module); the pause in force (the first, if it was paused already). */
  async pause(name: string, options: PauseOptions): Promise<PausedType> {
    const p = this.#p;
    const type = pausableType(p.registry, name);
    const reason = options.reason ?? null;
    if (reason !== null && (reason.length > MAX_PAUSE_REASON || reason.includes('\u0000')))
      throw new CocoError(
        ErrorCode.ParametersInvalid,
        `a pause's reason must be at most ${MAX_PAUSE_REASON} characters, without U+0000`,
        { details: { field: 'reason', length: reason.length } },
      );
    const pause = await p.store.pauseType({
      type,
      pausedAt: p.clock.now(),
      by: options.by ?? null,
      reason,
    });
    this.#changes++;
    this.#apply(new Map(p.roots.paused).set(pause.type, pause));
    return pause;
  }

  /**
   * Resumes a type: its queued roots are admitted as the limits allow. The pause it ended, or
   * null when it was not paused. A name no longer registered is resumed too (a pause left by a
   * type since removed).
   */
  async resume(name: string): Promise<PausedType | null> {
    const p = this.#p;
    const type = p.registry.get(name)?.name ?? p.registry.resolve(name)?.name ?? name;
    const ended = await p.store.resumeType(type);
    this.#changes++;
    const next = new Map(p.roots.paused);
    next.delete(type);
    this.#apply(next);
    return ended;
  }

  /** Reads the pauses from the store and applies them (a start, a signal, a claim tick). */
  async read(): Promise<void> {
    const changes = this.#changes;
    const stored = await this.#p.store.pausedTypes();
    // A pause or resume of this node's landed meanwhile: the next read sees it.
    if (changes !== this.#changes) return;
    this.#apply(new Map(stored.map((s) => [s.type, s])));
  }

  /** The pauses in force, by type name. */
  get paused(): ReadonlyMap<string, PausedType> {
    return this.#p.roots.paused;
  }

  /** Applies the pauses in force, telling of each change (`type-paused`, `type-resumed`). */
  #apply(next: ReadonlyMap<string, PausedType>): void {
    const { roots, events, logger } = this.#p;
    const before = roots.paused;
    const paused = [...next.values()].filter((s) => !before.has(s.type));
    const resumed = [...before.values()].filter((s) => !next.has(s.type));
    if (paused.length === 0 && resumed.length === 0) return;
    roots.setPaused(next);
    for (const pause of paused) {
      logger.info(pause, 'command type paused: its new roots wait until it is resumed');
      events.emit('type-paused', pause);
    }
    for (const pause of resumed) {
      logger.info(pause, 'command type resumed');
      events.emit('type-resumed', pause);
    }
  }
}
