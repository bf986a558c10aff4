/**
 * The end of a command's life in memory: its outcome recorded and told to its parent and to
 * whoever waits for it, its tasks cleared on their agents, and then its eviction from the
 * command repository once nothing of it is left to write.
 *
 * @module
 */
import type { Clock } from '../core/clock.js';
import type { Committer } from './committer.js';
import type { Dispatcher } from './dispatcher.js';
import type { EngineEvents } from './events.js';
import type { ChildState, LiveCommand, LiveTask } from './live.js';
import type { Tracing } from './tracing.js';

/** What {@link Endings} is built with. */
export interface EndingsParts {
  /** The command repository (live commands by id). */
  readonly live: Map<number, LiveCommand>;
  readonly committer: Committer;
  readonly events: EngineEvents;
  readonly dispatcher: Dispatcher;
  readonly clock: Clock;
  readonly tracing: Tracing;
  /** Queues a command to be looked at (a parent told of its child's end). */
  wake(c: LiveCommand): void;
}

/** Ends commands, clears their tasks, and lets them go. */
export class Endings {
  readonly #h: EndingsParts;
  readonly #endWaiters = new Map<number, ((c: LiveCommand) => void)[]>();

  constructor(host: EndingsParts) {
    this.#h = host;
  }

  /** The command's end is durable: its span ends, observers hear of it. Made once. */
  readonly #endedAfter = (c: LiveCommand): void => {
    const { events, tracing } = this.#h;
    tracing.ended(c);
    if (events.has('ended')) events.emit('ended', c);
  };

  /** {@link Endings.#done} as a callback, made once (not a closure per command). */
  readonly #doneAfter = (c: LiveCommand): void => this.#done(c);

  /**
   * Clears the tasks a settled command had when it settled, `last` the last of them (tasks are
   * only ever appended: it says which tasks, and whose). Made once, not a closure per command:
   * see {@link Committer.afterCommitWith}.
   */
  readonly #clearAfter = (last: LiveTask): void => {
    const dispatcher = this.#h.dispatcher;
    const all = last.command.tasks;
    // A task's ordinal is its position (as `Coordinator.liveTask` reads it); searched otherwise.
    const count = all[last.ordinal] === last ? last.ordinal + 1 : all.indexOf(last) + 1;
    // Tasks cleared meanwhile are skipped (as `Dispatcher.clear` would); tasks added since (a
    // compensation's undo tasks) are not this settle's to clear.
    for (let i = 0; i < count; i++) if (!all[i]!.cleared) dispatcher.clear(all[i]!);
  };

  /** Records a command's outcome, tells its parent, and starts clearing its tasks. */
  end(c: LiveCommand, status: 'succeeded' | 'failed' | 'cancelled'): void {
    const now = this.#h.clock.now();
    c.end(status, now);
    this.#h.committer.command(c);
    c.timer?.cancel();
    c.timer = null;
    c.lifetimeTimer?.cancel();
    c.lifetimeTimer = null;
    this.#notifyParent(c);
    this.settle(c, now);
    // Observers (metrics) and the command's span hear of the end once it is durable.
    if (c.span !== null || this.#h.events.has('ended'))
      this.#h.committer.afterCommitWith(this.#endedAfter, c, c);
    const waiters = this.#endWaiters.get(c.id);
    if (waiters) {
      this.#endWaiters.delete(c.id);
      this.#h.committer.afterCommit(() => {
        for (const w of waiters) w(c);
      }, c);
    }
  }

  /** Resolves with the live command once it has ended and that is durable. */
  whenEnded(c: LiveCommand): Promise<LiveCommand> {
    return new Promise((resolve) => {
      const list = this.#endWaiters.get(c.id) ?? [];
      list.push(resolve);
      this.#endWaiters.set(c.id, list);
    });
  }

  /** An ended command's compensation ended: its parent learns how, and its tasks are cleared. */
  compensated(c: LiveCommand): void {
    this.#notifyParent(c);
    this.settle(c);
  }

  #notifyParent(c: LiveCommand): void {
    if (c.parentId === null) return;
    const p = this.#h.live.get(c.parentId);
    if (!p?.children) return;
    const ch = findChild(p.children, c.seq ?? -1);
    if (!ch || ch.id !== c.id) return;
    const wasEnded = ch.ended;
    ch.mirror(c);
    if (!wasEnded && ch.ended) {
      p.childEnded(ch);
      if (p.failurePolicy === 'fail-fast' && ch.status !== 'succeeded') p.abort?.abort();
    }
    this.#h.wake(p);
  }

  /**
   * Once a command has settled: clear its tasks on their agents, then let it go. `now`: a
   * reading of the clock the caller just made (else one is made if needed).
   */
  settle(c: LiveCommand, now?: number): void {
    if (!c.settled) return;
    // Counted, not filtered into an array (every command ends here): the clears below go to the
    // first `count` tasks (the ones it has now; ordinals never move), skipping cleared ones.
    const tasks = c.tasks;
    const count = tasks.length;
    let uncleared = 0;
    let agentDone = true;
    for (let i = 0; i < count; i++) {
      const t = tasks[i]!;
      if (!t.cleared) uncleared++;
      if (!t.agentDone) agentDone = false;
    }
    if (uncleared === 0) {
      if (!c.tasksCleared) {
        c.tasksCleared = true;
        this.#touch(c, now);
      }
      this.#h.committer.afterCommitWith(this.#doneAfter, c, c);
      return;
    }
    if (!c.tasksCleared && agentDone) {
      // Every task has ended on its agent: the row says its tasks are cleared with the outcome
      // (same batch), one write fewer than recording the clears after they are done. The clears
      // below follow the commit; a task a crash leaves on its agent is found there by a
      // reconciliation (at start, on taking an agent's lease, or when a node leaves), which
      // clears the ended tasks of ended commands. A task the engine has ended but its agent may
      // still run (past its deadline, being stopped) keeps its command active until its clear
      // is recorded: a reconciliation must never clear it while it runs.
      c.tasksCleared = true;
      this.#touch(c, now);
    }
    // Clearing follows the commit that records the command's outcome: of the first `count`
    // tasks, the ones it has now (count > 0: some task is not cleared).
    this.#h.committer.afterCommitWith(this.#clearAfter, tasks[count - 1]!, c);
  }

  #touch(c: LiveCommand, now = this.#h.clock.now()): void {
    c.updatedAt = now;
    this.#h.committer.command(c);
  }

  /** Every task of a settled command was cleared: record it, then let the command go. */
  allCleared(c: LiveCommand): void {
    if (!c.tasksCleared) {
      c.tasksCleared = true;
      this.#h.committer.settled(c);
    } else if (!c.dirty) {
      // Stored as cleared with the outcome (see settle): nothing left to write.
      this.#done(c);
      return;
    }
    this.#h.committer.afterCommitWith(this.#doneAfter, c, c);
  }

  /** The command's tasks are cleared and the store says so: tell observers, let it go. */
  #done(c: LiveCommand): void {
    if (this.#h.events.has('cleared')) this.#h.events.emit('cleared', { commandId: c.id });
    if (c.settled && c.tasksCleared && !c.dirty && !c.busy && this.#h.live.get(c.id) === c) {
      this.#h.live.delete(c.id);
      c.timer?.cancel();
    }
  }
}

/** Binary search of a child by journal position (children are kept in creation order). */
function findChild(children: readonly ChildState[], seq: number): ChildState | undefined {
  let lo = 0;
  let hi = children.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const ch = children[mid]!;
    if (ch.seq === seq) return ch;
    if (ch.seq < seq) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}
