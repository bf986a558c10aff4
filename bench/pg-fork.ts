/**
 * The node processes of bench/pg.ts: each forked from bench/pg-node.ts, told its configuration
 * on its command line and driven over IPC ({@link ParentMessage} out, {@link NodeMessage} back).
 *
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeConfig, NodeMessage, ParentMessage } from './pg-common.js';

const here = dirname(fileURLToPath(import.meta.url));
const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

/**
 * Node start plus warm-up must end within this: a start is ~1 s and a warm-up a fifth of a run
 * (seconds), so two minutes means a node is stuck (no server, a lock), not slow.
 */
export const READY_TIMEOUT_MS = 120_000;
/** A measured run (or a raw-limit run) still going after this long is stuck: fail, do not hang. */
export const RUN_TIMEOUT_MS = 180_000;

/** The node processes forked and not exited yet (killed by the benchmark's cleanup). */
export const children = new Set<ChildProcess>();

/** A forked node and the messages it sent that nobody has waited for yet. */
export class Node {
  readonly proc: ChildProcess;
  readonly index: number;
  readonly #inbox: { m: NodeMessage; at: number }[] = [];
  #waiter: (() => void) | null = null;
  #failure: Error | null = null;
  #stopping = false;

  constructor(config: NodeConfig, execArgv: string[]) {
    this.index = config.node;
    this.proc = fork(join(here, `pg-node${ext}`), [JSON.stringify(config)], {
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.add(this.proc);
    this.proc.on('message', (m: NodeMessage) => {
      if (m.t === 'error') this.#fail(new Error(`node ${this.index}: ${m.message}`));
      else this.#inbox.push({ m, at: performance.now() });
      this.#waiter?.();
    });
    this.proc.on('exit', (code, signal) => {
      children.delete(this.proc);
      if (!this.#stopping) this.#fail(new Error(`node ${this.index} exited (${code ?? signal})`));
      this.#waiter?.();
    });
  }

  #fail(error: Error): void {
    this.#failure ??= error;
  }

  send(m: ParentMessage): void {
    this.proc.send(m);
  }

  /** The next message of type `t` and when it arrived (performance.now()). */
  async next<T extends NodeMessage['t']>(
    t: T,
    timeoutMs: number,
  ): Promise<{ m: Extract<NodeMessage, { t: T }>; at: number }> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      if (this.#failure) throw this.#failure;
      const i = this.#inbox.findIndex((x) => x.m.t === t);
      if (i >= 0) {
        const [x] = this.#inbox.splice(i, 1);
        return x as { m: Extract<NodeMessage, { t: T }>; at: number };
      }
      const left = until - performance.now();
      if (left <= 0) throw new Error(`node ${this.index}: no "${t}" after ${timeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = null;
    }
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    const exited = new Promise<void>((resolve) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) resolve();
      else this.proc.once('exit', () => resolve());
    });
    this.send({ t: 'stop' });
    await this.next('stopped', RUN_TIMEOUT_MS);
    await exited;
  }
}
