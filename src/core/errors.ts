/**
 * The error taxonomy. Every error coco raises or records carries a stable string `code`
 * (shown in messages, stored on failed commands and returned by the API), a `retryable`
 * hint and an optional `cause`.
 *
 * `instanceof` works across duplicated copies of the package because each class checks a
 * global symbol rather than its prototype chain.
 *
 * @module
 */

const BRAND = Symbol.for('coco.error');

/** Stable error codes. Never renumber or rename: they are stored in databases and scripts. */
export const ErrorCode = {
  /** Parameters failed validation at submit (or when a child was created). */
  ParametersInvalid: 'PARAMETERS_INVALID',
  /** A stored parameter version is newer than the running code knows. */
  ParameterVersionTooNew: 'PARAMETER_VERSION_TOO_NEW',
  /** An upgrade function from an older parameter version is missing or threw. */
  ParameterUpgradeFailed: 'PARAMETER_UPGRADE_FAILED',
  /** A stored command names a type no registered definition has. */
  UnknownCommandType: 'UNKNOWN_COMMAND_TYPE',
  /** A child-only command type was submitted on its own (it runs only as another command's child). */
  CommandTypeNotSubmittable: 'COMMAND_TYPE_NOT_SUBMITTABLE',
  /**
   * A command whose type or parameters could not be loaded was ended by a cancel (its stored
   * error); also what its handlers get when they read its parameters.
   */
  CommandUnloadable: 'COMMAND_UNLOADABLE',
  /** A command type was registered twice or is malformed. */
  InvalidDefinition: 'INVALID_DEFINITION',
  /** A state change outside the transition table was attempted. */
  IllegalTransition: 'ILLEGAL_TRANSITION',
  /** A handler threw (after its retries, when stored on a command). */
  HandlerFailed: 'HANDLER_FAILED',
  /**
   * A handler's run did not end within its time (`handlerTimeoutMs`): it counts as failed and is
   * retried under the type's retry policy; its signal is aborted and what it does afterwards is
   * dropped.
   */
  HandlerTimeout: 'HANDLER_TIMEOUT',
  /** A handler did different things on a retry than on the attempt it replays. */
  HandlerNondeterministic: 'HANDLER_NONDETERMINISTIC',
  /** A command ended its stages having created fewer tasks or children than it declared. */
  ExpectedCountUnmet: 'EXPECTED_COUNT_UNMET',
  /** A task ended in failure on its agent. */
  TaskFailed: 'TASK_FAILED',
  /** The agent no longer knows a task that it had accepted. */
  TaskVanished: 'TASK_VANISHED',
  /** A task ran past its deadline and was stopped. */
  TaskDeadlineExceeded: 'TASK_DEADLINE_EXCEEDED',
  /** The agent refused to start a task (unknown verb, bad arguments). */
  TaskRejected: 'TASK_REJECTED',
  /**
   * The agent refused a start because the task id was stopped or cleared before: task ids are
   * single-use, so a start that arrives late never runs unsupervised.
   */
  TaskIdUsed: 'TASK_ID_USED',
  /** A child command failed and the parent's policy made that the parent's failure. */
  ChildFailed: 'CHILD_FAILED',
  /** A command ran past its lifetime. */
  CommandTimeout: 'COMMAND_TIMEOUT',
  /** The command was cancelled. */
  Cancelled: 'CANCELLED',
  /** An undo step failed after its retries; compensation stopped there. */
  CompensationFailed: 'COMPENSATION_FAILED',
  /** An agent could not be reached or answered with an error. */
  AgentUnavailable: 'AGENT_UNAVAILABLE',
  /**
   * A task names an agent this node does not know (not configured in its broker): it fails at
   * once instead of waiting for an agent that will never answer.
   */
  AgentUnknown: 'AGENT_UNKNOWN',
  /**
   * A task names an agent retired from this node's configuration (a reload) by a tree submitted
   * after the retirement: it fails without being sent. The retired agent still runs the work of
   * the trees submitted before (their later stages and compensation): it is drained.
   */
  AgentRetired: 'AGENT_RETIRED',
  /**
   * An agent cannot be forgotten (its row deleted) while this node uses it: configured in its
   * broker, or with tasks of this node in flight there (HTTP 409).
   */
  AgentInUse: 'AGENT_IN_USE',
  /** An agent refused the engine's credentials (wrong shared secret); not retried. */
  AgentUnauthorized: 'AGENT_UNAUTHORIZED',
  /** The agent restarted while the task ran (reported by the agent for such tasks). */
  AgentRestarted: 'AGENT_RESTARTED',
  /** An agent call did not answer in time. */
  AgentTimeout: 'AGENT_TIMEOUT',
  /** An agent's reply did not match the protocol. */
  AgentProtocol: 'AGENT_PROTOCOL',
  /**
   * The node's HTTP agent broker reached a bound of its own, not the agent's fault (the agent is
   * not reported down): a call waited its whole budget for one of the broker's call slots
   * (`maxConcurrentCalls`), or the process ran out of file descriptors (`EMFILE`: raise
   * `ulimit -n` above the agents' number plus `maxConcurrentCalls`); retryable.
   */
  BrokerSaturated: 'BROKER_SATURATED',
  /** No command with that id exists. */
  CommandNotFound: 'COMMAND_NOT_FOUND',
  /** The operation needs a command that has not ended, or one that has. */
  CommandState: 'COMMAND_STATE',
  /** A stored row did not match the expected shape. */
  CorruptRow: 'CORRUPT_ROW',
  /** The store is used by another live engine. */
  StoreInUse: 'STORE_IN_USE',
  /** This node's lease on a shared store expired and another node took its work over. */
  LeaseLost: 'LEASE_LOST',
  /**
   * A batch inserting a command whose idempotency key another command already holds was refused,
   * nothing of it stored: on a shared store that cannot store a keyed root on its own
   * (`SharedStore.insertKeyedRoot`; PostgreSQL's can), another node took the key between this
   * node's look for it and its commit. The node's memory is no longer the truth for that
   * submission: its engine halts, as on a lost lease, and a node rejoins (the submission's
   * caller, answered with this code — 503 from the API — finds the other command with its key
   * when it tries again).
   */
  IdempotencyKeyTaken: 'IDEMPOTENCY_KEY_TAKEN',
  /**
   * A store refused a batch for what it holds — a value it cannot store, a constraint, a row to
   * update that is not there — so the same batch would be refused on every try; nothing of it was
   * stored. The engine finds the tree whose changes are refused (`TREE_REFUSED`) instead of trying
   * the batch again for ever.
   */
  BatchRefused: 'BATCH_REFUSED',
  /**
   * The store refused the changes of one tree of commands on every try (`BATCH_REFUSED` or
   * `ILLEGAL_TRANSITION` for that tree alone, the other trees' changes stored). The tree is
   * marked held in the store and the engine halts, as on a lost lease: a node rejoins, and loads
   * the tree held — nothing of it runs until a cancel ends it from what was stored.
   */
  TreeRefused: 'TREE_REFUSED',
  /** The store failed (I/O, constraint, connection). */
  StoreFailed: 'STORE_FAILED',
  /** The engine is not running (not started, or stopping). */
  EngineStopped: 'ENGINE_STOPPED',
  /**
   * The API: the caller made more calls than `api.rateLimit` allows in its window; nothing was
   * done, try again after `Retry-After` seconds (HTTP 429).
   */
  RateLimited: 'RATE_LIMITED',
  /** Options passed to a constructor were invalid. */
  InvalidOptions: 'INVALID_OPTIONS',
  /** The job monitor was used in the wrong state (started twice, queried before it started). */
  JobMonitorState: 'JOB_MONITOR_STATE',
  /** Command ids are being reserved (a refill of the id block is late); try again. */
  IdExhausted: 'ID_EXHAUSTED',
  /** A listener of an engine or monitor event threw (reported on the `error` event). */
  ListenerFailed: 'LISTENER_FAILED',
  /** Something failed inside coco that no other code describes (a bug: please report it). */
  Internal: 'INTERNAL',

  /**
   * A store's database driver (`better-sqlite3` for SQLite, `pg` for PostgreSQL) is not
   * installed or failed to load; drivers load when a store first connects, so a user of one
   * store never needs the other's.
   */
  DriverMissing: 'DRIVER_MISSING',
  /**
   * A command ran more stages than its limit (`maxStages`): a `next` handler that never returns
   * an empty stage (a forgotten stage check) fails here instead of looping for ever.
   */
  StageLimitExceeded: 'STAGE_LIMIT_EXCEEDED',
  /**
   * The CLI: something answered at the server address, but not a coco node's API (a coco agent,
   * another service).
   */
  NotACocoNode: 'NOT_A_COCO_NODE',

  // The reference agent's storage verbs (reference-agent/storage; `details` say more).
  /** The volume (or the source of a copy) does not exist. */
  VolumeNotFound: 'VOLUME_NOT_FOUND',
  /** The snapshot does not exist. */
  SnapshotNotFound: 'SNAPSHOT_NOT_FOUND',
  /** `volume.create` found the volume already there with another size (or not a file). */
  VolumeSizeMismatch: 'VOLUME_SIZE_MISMATCH',
  /** `volume.verify` computed another checksum than the one expected. */
  ChecksumMismatch: 'CHECKSUM_MISMATCH',
  /** The file system failed (permissions, space, I/O); `details.errno` has the system code. */
  StorageIo: 'STORAGE_IO_ERROR',
  /** A storage path would leave the storage root or go through a symbolic link. */
  StoragePathRefused: 'STORAGE_PATH_REFUSED',
  /** A volume is over the agent's size cap (`maxVolumeBytes`). */
  VolumeTooLarge: 'VOLUME_TOO_LARGE',
  /** A create, copy or fill needs more bytes than the file system has free. */
  InsufficientSpace: 'INSUFFICIENT_SPACE',

  // Requests (the node's HTTP API, the agent protocol) and the CLI.
  /** A malformed request: bad JSON, or a body, query or path failing its schema (400). */
  BadRequest: 'BAD_REQUEST',
  /** Missing, wrong or stale credentials (401). */
  Unauthorized: 'UNAUTHORIZED',
  /**
   * Credentials are good but not enough: a role too low for the route, a cross-origin call, a
   * foreign `Host` header (403).
   */
  Forbidden: 'FORBIDDEN',
  /** A state-changing request whose body is not `application/json` (415). */
  UnsupportedMediaType: 'UNSUPPORTED_MEDIA_TYPE',
  /** An idempotency key used again with another command type or other parameters (409). */
  IdempotencyConflict: 'IDEMPOTENCY_CONFLICT',
  /** No such route, or no such object other than a command (a job, a job view) (404). */
  NotFound: 'NOT_FOUND',
  /** A request body over the size limit (413). */
  PayloadTooLarge: 'PAYLOAD_TOO_LARGE',
  /** A request for another version of the agent protocol than the agent speaks; details name both (404). */
  ProtocolVersion: 'PROTOCOL_VERSION',
  /** The receiver is at a bound it keeps to stay safe (an agent's memory of nonces is full); try again shortly (503). */
  Busy: 'BUSY',
  /** The CLI: a command it ran or waited for ended failed or cancelled. */
  CommandFailed: 'COMMAND_FAILED',
  /** The CLI: bad arguments or options. */
  Usage: 'USAGE',
  /** The CLI: no coco node answered at the server address. */
  ServerUnreachable: 'SERVER_UNREACHABLE',
  /** The CLI: the server answered with an HTTP status and no error body coco understands. */
  HttpError: 'HTTP_ERROR',
} as const;

/** One of the stable {@link ErrorCode} strings, or a user-defined code. */
export type ErrorCodeString = (typeof ErrorCode)[keyof typeof ErrorCode] | (string & {});

/** The serialisable form of an error, as stored on commands and tasks and sent over HTTP. */
export interface ErrorInfo {
  readonly code: string;
  readonly message: string;
  readonly details?: unknown;
}

/** Options common to every {@link CocoError}. */
export interface CocoErrorOptions {
  readonly retryable?: boolean;
  readonly cause?: unknown;
  readonly details?: unknown;
}

/** Base class of every error coco raises. */
export class CocoError extends Error {
  /** Stable machine-readable code, see {@link ErrorCode}. */
  readonly code: string;
  /** Whether trying the same thing again may succeed. */
  readonly retryable: boolean;
  /** Structured detail, stored alongside the message. */
  readonly details: unknown;

  constructor(code: ErrorCodeString, message: string, options: CocoErrorOptions = {}) {
    super(`[${code}] ${message}`, options.cause === undefined ? {} : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null || !(BRAND in value)) return false;
    // Subclasses match only their own kind (by name, since prototypes may differ across copies).
    if (this === CocoError) return true;
    let proto: unknown = Object.getPrototypeOf(value);
    while (proto !== null && typeof proto === 'object') {
      const ctor = (proto as { constructor?: { name?: string } }).constructor;
      if (ctor?.name === this.name) return true;
      proto = Object.getPrototypeOf(proto);
    }
    return false;
  }

  /** The message without the `[CODE]` prefix. */
  get plainMessage(): string {
    const prefix = `[${this.code}] `;
    return this.message.startsWith(prefix) ? this.message.slice(prefix.length) : this.message;
  }

  /** The serialisable form, for storage and HTTP. */
  toInfo(): ErrorInfo {
    return this.details === undefined
      ? { code: this.code, message: this.plainMessage }
      : { code: this.code, message: this.plainMessage, details: this.details };
  }
}

/** One problem found by a validator, with the path of the offending field. */
export interface ValidationIssue {
  readonly path: string;
  readonly message: string;
}

/** Parameters (or another input) failed validation. Nothing was persisted. */
export class ValidationError extends CocoError {
  readonly issues: readonly ValidationIssue[];
  constructor(
    what: string,
    issues: readonly ValidationIssue[],
    code: string = ErrorCode.ParametersInvalid,
  ) {
    const list = issues.map((i) => `${i.path === '' ? '(root)' : i.path}: ${i.message}`).join('; ');
    super(code, `${what}: ${list}`, { details: { issues } });
    this.issues = issues;
  }
}

/** A stored row's parameter version is newer than this code's definition. */
export class ParameterVersionError extends CocoError {
  readonly commandType: string;
  readonly storedVersion: number;
  readonly knownVersion: number;
  constructor(
    commandType: string,
    storedVersion: number,
    knownVersion: number,
    commandId?: number,
  ) {
    super(
      ErrorCode.ParameterVersionTooNew,
      `command ${commandId ?? '(new)'} of type "${commandType}" has parameters at version ${storedVersion}, ` +
        `but this code knows versions up to ${knownVersion}; it is left untouched for a newer node`,
      { details: { commandType, storedVersion, knownVersion, commandId } },
    );
    this.commandType = commandType;
    this.storedVersion = storedVersion;
    this.knownVersion = knownVersion;
  }
}

/** A state change not allowed by the transition table. */
export class IllegalTransitionError extends CocoError {
  constructor(machine: string, from: string, to: string, subject: string) {
    super(
      ErrorCode.IllegalTransition,
      `${machine} ${subject}: ${from} -> ${to} is not a legal transition`,
      {
        details: { machine, from, to, subject },
      },
    );
  }
}

/**
 * A store's batch refused because a command it inserts has an idempotency key another command
 * holds (`IDEMPOTENCY_KEY_TAKEN`); nothing of the batch was stored. `cause`: the database's error.
 */
export class IdempotencyKeyTakenError extends CocoError {
  constructor(cause: unknown) {
    super(
      ErrorCode.IdempotencyKeyTaken,
      'apply refused, nothing of the batch was stored: a command it inserts has an idempotency ' +
        `key another command holds (${(cause as Error | null)?.message ?? String(cause)})`,
      // The batch is refused for good; a submission tried again finds the key's command.
      { cause, retryable: true },
    );
  }
}

/**
 * A store's batch refused for what it holds (`BATCH_REFUSED`): it would be refused on every try;
 * nothing of it was stored. `cause`: the database's error.
 */
export class BatchRefusedError extends CocoError {
  constructor(what: string, cause?: unknown) {
    super(ErrorCode.BatchRefused, `apply refused, nothing of the batch was stored: ${what}`, {
      ...(cause === undefined ? {} : { cause }),
      ...(typeof (cause as { code?: unknown } | null)?.code === 'string'
        ? { details: { driverCode: (cause as { code: string }).code } }
        : {}),
    });
  }
}

/** Turns anything thrown into an {@link ErrorInfo}, keeping codes of coco errors. */
export function toErrorInfo(
  error: unknown,
  fallbackCode: string = ErrorCode.HandlerFailed,
): ErrorInfo {
  if (error instanceof CocoError) return error.toInfo();
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      code: typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code) ? code : fallbackCode,
      message: error.message,
    };
  }
  return {
    code: fallbackCode,
    message: typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error)),
  };
}

/** Builds a {@link CocoError} from a stored {@link ErrorInfo}. */
export function fromErrorInfo(info: ErrorInfo): CocoError {
  return new CocoError(info.code, info.message, { details: info.details });
}
