/**
 * The parent's side of the IPC agent broker: serves a child process's `coco-agent-call`
 * messages from a local broker (normally an `InProcessBroker`) and forwards its activity
 * notifications. See `IpcBroker` for the protocol.
 *
 * @example
 * ```ts
 * const agents = inProcessAgents(['a', 'b']);
 * const child = fork('engine-child.ts', { execArgv: ['--import', 'tsx'] });
 * const host = new IpcAgentHost(child, agents);
 * // ... SIGKILL the child, fork another, host it too: the agents keep their tasks ...
 * ```
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, ErrorCode } from '../../core/errors.js';
import type { AgentBroker } from '../port.js';
import {
  IPC_KINDS,
  ipcArgsSchemas,
  ipcCallSchema,
  messageKind,
  salvageId,
  toWireError,
  type IpcChannel,
  type IpcMethod,
} from './ipc-broker.js';

/** Serves one child process's agent calls from `broker`, until the child disconnects. */
export class IpcAgentHost {
  readonly #channel: IpcChannel;
  readonly #broker: AgentBroker;
  readonly #unsubscribe: () => void;
  #closed = false;
  #calls = 0;
  #protocolErrors = 0;

  /** Starts serving at once. `channel` is normally the `ChildProcess` returned by `fork()`. */
  constructor(channel: IpcChannel, broker: AgentBroker) {
    this.#channel = channel;
    this.#broker = broker;
    channel.on('message', this.#onMessage);
    channel.on('disconnect', this.#onDisconnect);
    this.#unsubscribe =
      broker.onActivity?.((agentId) => this.#send({ kind: IPC_KINDS.activity, agentId })) ??
      (() => undefined);
  }

  /** Calls served (answered or failed). */
  get calls(): number {
    return this.#calls;
  }

  /** Call messages that failed validation. */
  get protocolErrors(): number {
    return this.#protocolErrors;
  }

  /** Stops serving (the broker is left open: it is the caller's). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel.off('message', this.#onMessage);
    this.#channel.off('disconnect', this.#onDisconnect);
    this.#unsubscribe();
  }

  readonly #onMessage = (message: unknown): void => {
    if (messageKind(message) !== IPC_KINDS.call) return;
    const parsed = ipcCallSchema.safeParse(message);
    if (!parsed.success) {
      this.#protocolErrors++;
      const id = salvageId(message);
      if (id === undefined) return;
      const error = new CocoError(
        ErrorCode.AgentProtocol,
        `malformed call: ${z.prettifyError(parsed.error)}`,
      );
      this.#send({ kind: IPC_KINDS.reply, id, ok: false, error: toWireError(error) });
      return;
    }
    void this.#serve(parsed.data.id, parsed.data.method, parsed.data.args);
  };

  readonly #onDisconnect = (): void => this.close();

  async #serve(id: number, method: IpcMethod, args: unknown[]): Promise<void> {
    let reply: object;
    try {
      const value = await this.#dispatch(method, args);
      reply = { kind: IPC_KINDS.reply, id, ok: true, value };
    } catch (error) {
      reply = { kind: IPC_KINDS.reply, id, ok: false, error: toWireError(error) };
    }
    this.#calls++;
    if (!this.#send(reply)) {
      // The value (or the error's details) could not be serialised: fail the call instead.
      const error = new CocoError(
        ErrorCode.AgentProtocol,
        `${method}: the reply could not be sent`,
      );
      this.#send({ kind: IPC_KINDS.reply, id, ok: false, error: toWireError(error) });
    }
  }

  async #dispatch(method: IpcMethod, args: unknown[]): Promise<unknown> {
    const broker = this.#broker;
    const bad = (issues: string): never => {
      this.#protocolErrors++;
      throw new CocoError(ErrorCode.AgentProtocol, `${method}: bad arguments: ${issues}`);
    };
    switch (method) {
      case 'agentIds': {
        const parsed = ipcArgsSchemas.agentIds.safeParse(args);
        return parsed.success ? broker.agentIds() : bad(z.prettifyError(parsed.error));
      }
      case 'startTasks': {
        const parsed = ipcArgsSchemas.startTasks.safeParse(args);
        if (!parsed.success) return bad(z.prettifyError(parsed.error));
        const [agentId, requests] = parsed.data;
        return broker.startTasks(
          agentId,
          requests.map(({ taskId, verb, args: taskArgs }) => ({ taskId, verb, args: taskArgs })),
        );
      }
      case 'getStatuses':
      case 'stopTasks':
      case 'clearTasks': {
        const parsed = ipcArgsSchemas[method].safeParse(args);
        return parsed.success ? broker[method](...parsed.data) : bad(z.prettifyError(parsed.error));
      }
      case 'listTasks': {
        const parsed = ipcArgsSchemas.listTasks.safeParse(args);
        return parsed.success
          ? broker.listTasks(...parsed.data)
          : bad(z.prettifyError(parsed.error));
      }
    }
  }

  /** Sends if the child is still there; false only if the message could not be serialised. */
  #send(message: object): boolean {
    if (this.#closed || !this.#channel.connected) return true;
    try {
      // A send error after the child died is expected (it is SIGKILLed in crash tests).
      this.#channel.send(message, () => undefined);
      return true;
    } catch (error) {
      return !(error instanceof TypeError || error instanceof RangeError);
    }
  }
}
