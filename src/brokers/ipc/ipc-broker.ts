/**
 * An {@link AgentBroker} whose agents live in another process, reached over Node's
 * child-process IPC channel. Crash tests run the engine in a child process with an
 * {@link IpcBroker}, while the agents (and their counters) live in the test process behind an
 * `IpcAgentHost`; SIGKILLing the child then loses the engine but not the agents.
 *
 * Protocol (every message is validated with zod on receipt; other messages on the channel are
 * left alone, so a test can share it):
 * - child → parent `{ kind: 'coco-agent-call', id, method, args }`
 * - parent → child `{ kind: 'coco-agent-reply', id, ok: true, value }` or
 *   `{ kind: 'coco-agent-reply', id, ok: false, error: ErrorInfo & { retryable? } }`
 * - parent → child `{ kind: 'coco-agent-activity', agentId }`
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, ErrorCode, type ErrorInfo } from '../../core/errors.js';
import type { AgentBroker, StartRequest, StartResult, TaskStatusReport } from '../port.js';

/** Message kinds of the protocol. */
export const IPC_KINDS = {
  call: 'coco-agent-call',
  reply: 'coco-agent-reply',
  activity: 'coco-agent-activity',
} as const;

/** The broker methods that cross the channel. */
export const IPC_METHODS = [
  'agentIds',
  'startTasks',
  'getStatuses',
  'stopTasks',
  'clearTasks',
  'listTasks',
] as const;

/** One of {@link IPC_METHODS}. */
export type IpcMethod = (typeof IPC_METHODS)[number];

/** An {@link ErrorInfo} on the wire; `retryable` carries {@link CocoError.retryable} across. */
export const wireErrorSchema = z.object({
  code: z.string().min(1),
  message: z.string(),
  details: z.unknown().optional(),
  retryable: z.boolean().optional(),
});

/** An error as it crosses the channel. */
export type WireError = z.output<typeof wireErrorSchema>;

const startRequestSchema = z.object({
  taskId: z.string(),
  verb: z.string(),
  args: z.unknown().optional(),
});
const idsSchema = z.array(z.string());

/** Argument tuples of each method, checked by the host. */
export const ipcArgsSchemas = {
  agentIds: z.tuple([]),
  startTasks: z.tuple([z.string(), z.array(startRequestSchema)]),
  getStatuses: z.tuple([z.string(), idsSchema]),
  stopTasks: z.tuple([z.string(), idsSchema]),
  clearTasks: z.tuple([z.string(), idsSchema]),
  listTasks: z.tuple([z.string(), z.string()]),
} as const;

const errorInfoSchema = wireErrorSchema.omit({ retryable: true });

/** Reply values of each method, checked by the broker. */
export const ipcResultSchemas = {
  agentIds: idsSchema,
  startTasks: z.array(
    z.discriminatedUnion('accepted', [
      z.object({ taskId: z.string(), accepted: z.literal(true) }),
      z.object({ taskId: z.string(), accepted: z.literal(false), error: errorInfoSchema }),
    ]),
  ),
  getStatuses: z.array(
    z.object({
      taskId: z.string(),
      state: z.enum(['running', 'succeeded', 'failed', 'cancelled', 'unknown']),
      progress: z.number().optional(),
      result: z.unknown().optional(),
      error: errorInfoSchema.optional(),
    }),
  ),
  stopTasks: z.unknown(),
  clearTasks: z.unknown(),
  listTasks: idsSchema,
} as const;

const idSchema = z.number().int().nonnegative();

/** A call, child → parent. */
export const ipcCallSchema = z.object({
  kind: z.literal(IPC_KINDS.call),
  id: idSchema,
  method: z.enum(IPC_METHODS),
  args: z.array(z.unknown()),
});

/** A reply, parent → child. */
export const ipcReplySchema = z.discriminatedUnion('ok', [
  z.object({
    kind: z.literal(IPC_KINDS.reply),
    id: idSchema,
    ok: z.literal(true),
    value: z.unknown().optional(),
  }),
  z.object({
    kind: z.literal(IPC_KINDS.reply),
    id: idSchema,
    ok: z.literal(false),
    error: wireErrorSchema,
  }),
]);

/** An activity notification, parent → child. */
export const ipcActivitySchema = z.object({
  kind: z.literal(IPC_KINDS.activity),
  agentId: z.string(),
});

/** The `kind` of a message, if it is an object with a string kind. */
export function messageKind(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const kind = (message as { kind?: unknown }).kind;
  return typeof kind === 'string' ? kind : undefined;
}

/** The `id` of a malformed message, when one can still be read (to fail just that call). */
export function salvageId(message: unknown): number | undefined {
  const parsed = z.object({ id: idSchema }).safeParse(message);
  return parsed.success ? parsed.data.id : undefined;
}

/**
 * The part of a process or `ChildProcess` the IPC broker and host use. `process` (in a child
 * started with an IPC channel) and a `ChildProcess` from `fork()` both fit.
 */
export interface IpcChannel {
  readonly connected: boolean;
  send(message: object, callback: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'disconnect', listener: () => void): unknown;
}

/** This process's own IPC channel to its parent. Throws if it was started without one. */
export function parentChannel(): IpcChannel {
  const send = process.send?.bind(process);
  if (send === undefined) {
    throw new CocoError(
      ErrorCode.InvalidOptions,
      'this process has no IPC channel (not started by fork())',
    );
  }
  return {
    get connected() {
      return process.connected;
    },
    send: (message, callback) => send(message, undefined, undefined, callback),
    on: (event: 'message' | 'disconnect', listener: (message: unknown) => void) =>
      process.on(event, listener),
    off: (event: 'message' | 'disconnect', listener: (message: unknown) => void) =>
      process.off(event, listener),
  };
}

/**
 * Default time a call may wait for its reply. The host answers from memory in milliseconds
 * even for batches of thousands of ids, so 10 s only expires when the parent is wedged or a
 * reply was lost; then the engine sees `AGENT_TIMEOUT` and backs off instead of hanging its
 * poll loop forever.
 */
export const DEFAULT_IPC_TIMEOUT_MS = 10_000;

/** Node fires longer timers after 1 ms (the delay overflows 32 bits), so longer is refused. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options of {@link IpcBroker}. */
export interface IpcBrokerOptions {
  /** The channel to the agents' host. @default this process's channel to its parent */
  readonly channel?: IpcChannel;
  /** Milliseconds a call waits for its reply before failing with `AGENT_TIMEOUT`. @default {@link DEFAULT_IPC_TIMEOUT_MS} */
  readonly timeoutMs?: number;
}

interface Pending {
  readonly method: IpcMethod;
  /** Number of items the reply must have (one per request or id), if the method has that rule. */
  readonly expected: number | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: CocoError) => void;
  readonly timer: NodeJS.Timeout;
}

/** The agent broker of a child process whose agents are hosted by its parent. */
export class IpcBroker implements AgentBroker {
  readonly #channel: IpcChannel;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<(agentId: string) => void>();
  #nextId = 1;
  #closed: CocoError | undefined;
  #protocolErrors = 0;

  constructor(options: IpcBrokerOptions = {}) {
    const timeoutMs = options.timeoutMs ?? DEFAULT_IPC_TIMEOUT_MS;
    if (!(timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS)) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `timeoutMs must be in 1..${MAX_TIMER_MS}, got ${timeoutMs}`,
      );
    }
    this.#timeoutMs = timeoutMs;
    this.#channel = options.channel ?? parentChannel();
    this.#channel.on('message', this.#onMessage);
    this.#channel.on('disconnect', this.#onDisconnect);
  }

  /** {@inheritDoc AgentBroker.agentIds} */
  async agentIds(): Promise<readonly string[]> {
    return this.#call('agentIds', [], undefined);
  }

  /** {@inheritDoc AgentBroker.startTasks} */
  async startTasks(
    agentId: string,
    requests: readonly StartRequest[],
  ): Promise<readonly StartResult[]> {
    return this.#call('startTasks', [agentId, requests], requests.length);
  }

  /** {@inheritDoc AgentBroker.getStatuses} */
  async getStatuses(
    agentId: string,
    taskIds: readonly string[],
  ): Promise<readonly TaskStatusReport[]> {
    return this.#call('getStatuses', [agentId, taskIds], taskIds.length);
  }

  /** {@inheritDoc AgentBroker.stopTasks} */
  async stopTasks(agentId: string, taskIds: readonly string[]): Promise<void> {
    await this.#call('stopTasks', [agentId, taskIds], undefined);
  }

  /** {@inheritDoc AgentBroker.clearTasks} */
  async clearTasks(agentId: string, taskIds: readonly string[]): Promise<void> {
    await this.#call('clearTasks', [agentId, taskIds], undefined);
  }

  /** {@inheritDoc AgentBroker.listTasks} */
  async listTasks(agentId: string, prefix: string): Promise<readonly string[]> {
    return this.#call('listTasks', [agentId, prefix], undefined);
  }

  /** Calls `listener` when the host reports that an agent has news. */
  onActivity(listener: (agentId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** Detaches from the channel (which stays open) and fails the calls still waiting. */
  close(): Promise<void> {
    this.#shut(new CocoError(ErrorCode.AgentUnavailable, 'the IPC agent broker was closed'));
    return Promise.resolve();
  }

  /** Calls waiting for their reply. */
  get pendingCalls(): number {
    return this.#pending.size;
  }

  /** Messages of this protocol that failed validation (and were dropped or failed their call). */
  get protocolErrors(): number {
    return this.#protocolErrors;
  }

  #call<M extends IpcMethod>(
    method: M,
    args: readonly unknown[],
    expected: number | undefined,
  ): Promise<z.output<(typeof ipcResultSchemas)[M]>> {
    return new Promise((resolve, reject) => {
      if (this.#closed !== undefined) return reject(this.#closed);
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        this.#settle(id)?.reject(
          new CocoError(
            ErrorCode.AgentTimeout,
            `${method}: no reply from the agent host within ${this.#timeoutMs} ms`,
            {
              retryable: true,
            },
          ),
        );
      }, this.#timeoutMs);
      // The channel keeps the process alive while it is open; the timer alone must not.
      timer.unref();
      const pending: Pending = {
        method,
        expected,
        resolve: resolve as (value: unknown) => void,
        reject,
        timer,
      };
      this.#pending.set(id, pending);
      const failed = (cause: unknown): void =>
        this.#settle(id)?.reject(unavailable(`${method}: could not send to the agent host`, cause));
      try {
        this.#channel.send({ kind: IPC_KINDS.call, id, method, args }, (error) => {
          if (error !== null) failed(error);
        });
      } catch (error) {
        failed(error);
      }
    });
  }

  /** Takes a call out of the pending table (undefined if it was already settled). */
  #settle(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    if (pending === undefined) return undefined;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    return pending;
  }

  readonly #onMessage = (message: unknown): void => {
    const kind = messageKind(message);
    if (kind === IPC_KINDS.reply) this.#onReply(message);
    else if (kind === IPC_KINDS.activity) {
      const parsed = ipcActivitySchema.safeParse(message);
      if (!parsed.success) return void this.#protocolErrors++;
      for (const listener of [...this.#listeners]) listener(parsed.data.agentId);
    } else if (kind?.startsWith('coco-agent-') === true) this.#protocolErrors++;
  };

  #onReply(message: unknown): void {
    const parsed = ipcReplySchema.safeParse(message);
    if (!parsed.success) {
      this.#protocolErrors++;
      const id = salvageId(message);
      const pending = id === undefined ? undefined : this.#settle(id);
      pending?.reject(
        protocolError(`${pending.method}: malformed reply: ${z.prettifyError(parsed.error)}`),
      );
      return;
    }
    const reply = parsed.data;
    // A reply to a call that timed out or was failed already: nothing waits for it any more.
    const pending = this.#settle(reply.id);
    if (pending === undefined) return;
    if (!reply.ok) {
      const { code, message: text, details, retryable } = reply.error;
      return pending.reject(new CocoError(code, text, { details, retryable: retryable ?? false }));
    }
    const value = ipcResultSchemas[pending.method].safeParse(reply.value);
    if (!value.success) {
      this.#protocolErrors++;
      return pending.reject(
        protocolError(`${pending.method}: bad reply value: ${z.prettifyError(value.error)}`),
      );
    }
    const length = Array.isArray(value.data) ? value.data.length : undefined;
    if (pending.expected !== undefined && length !== pending.expected) {
      this.#protocolErrors++;
      return pending.reject(
        protocolError(
          `${pending.method}: ${length} items in the reply for ${pending.expected} in the call`,
        ),
      );
    }
    pending.resolve(value.data);
  }

  readonly #onDisconnect = (): void => {
    this.#shut(unavailable('the IPC channel to the agent host is disconnected'));
  };

  #shut(reason: CocoError): void {
    if (this.#closed !== undefined) return;
    this.#closed = reason;
    this.#channel.off('message', this.#onMessage);
    this.#channel.off('disconnect', this.#onDisconnect);
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(reason);
  }
}

function unavailable(message: string, cause?: unknown): CocoError {
  return new CocoError(ErrorCode.AgentUnavailable, message, { retryable: true, cause });
}

function protocolError(message: string): CocoError {
  return new CocoError(ErrorCode.AgentProtocol, message);
}

/** Converts an error to its wire form: a {@link CocoError} keeps code, details and retryable. */
export function toWireError(
  error: unknown,
  fallbackCode: string = ErrorCode.AgentUnavailable,
): WireError {
  if (error instanceof CocoError) return { ...error.toInfo(), retryable: error.retryable };
  const info: ErrorInfo = {
    code: fallbackCode,
    message: error instanceof Error ? error.message : String(error),
  };
  return info;
}
