/**
 * The engine API's contracts (zod): what each route takes (path, query, body) and answers. The
 * routes validate their input with these, and the OpenAPI document (`/openapi.json`,
 * openapi.ts) is generated from them, so the two cannot part.
 *
 * @module
 */
import { z } from 'zod';
import { AGENT_ID_MAX_LENGTH, AGENT_ID_PATTERN, AGENT_ID_RULE } from '../core/records.js';
import { admissionLimitsSchema } from '../engine/options.js';
import {
  COMMAND_STATUSES,
  COMPENSATION_STATUSES,
  TASK_STATUSES,
  UNDO_STATUSES,
} from '../core/states.js';
import { JOB_STATUSES, STEP_KINDS } from '../jobs/port.js';

// ---------------------------------------------------------------------------------------------
// Requests

/** `POST /v1/commands`. */
export const submitBody = z
  .object({
    type: z.string().min(1).describe('the command type, e.g. disk.migrate'),
    params: z.unknown().describe("the parameters, checked against the type's schema"),
    idempotencyKey: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe(
        'submitting again with the same key and the same type and parameters returns the first command (200); with others, 409',
      ),
    /** Admission priority (higher first among queued tasks; engine/admission.ts). */
    priority: z
      .number()
      .int()
      .min(-1_000_000)
      .max(1_000_000)
      .optional()
      .describe('admission priority of its tasks on limited agents (higher first; default 0)'),
  })
  .strict();

/** A numeric id in the path. */
export const idParam = z.object({
  id: z.coerce
    .number()
    .int()
    .positive()
    .max(2 ** 53 - 1),
});

/** An agent id in the path (spelled as a broker's configuration spells them). */
export const agentIdParam = z.object({
  id: z.string().min(1).max(AGENT_ID_MAX_LENGTH).regex(AGENT_ID_PATTERN, AGENT_ID_RULE),
});
/** `POST /v1/admin/agents/:id/forget`. */
export const forgetAnswer = z.object({ id: z.string(), forgotten: z.literal(true) });
/** An empty JSON object: the body of an admin action that takes none. */
export const emptyBody = z.object({}).strict().optional();

const csv = <T extends readonly [string, ...string[]]>(values: T) =>
  z
    .string()
    .transform((s) => s.split(',').filter((x) => x !== ''))
    .pipe(z.array(z.enum(values)).min(1))
    .describe(`comma-separated: ${values.join(', ')}`);

/** A time in a query: ms since the epoch, or an ISO 8601 date-time. */
const instant = z
  .string()
  .transform((s, ctx) => {
    const ms = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
    if (!Number.isSafeInteger(ms)) {
      ctx.addIssue({ code: 'custom', message: 'give ms since the epoch or an ISO 8601 time' });
      return z.NEVER;
    }
    return ms;
  })
  .describe('ms since the epoch, or an ISO 8601 date-time');

/** Largest page of a list. */
export const MAX_PAGE = 500;

const limit = z.coerce
  .number()
  .int()
  .min(1)
  .max(MAX_PAGE)
  .default(50)
  .describe(`page size, 1..${MAX_PAGE}`);

/** An opaque page cursor: the `nextCursor` of the page before. */
const cursor = z.string().min(1).max(100).describe('the nextCursor of the previous page (opaque)');

/** Encodes where the next page starts (newest first: below this id). */
export function encodeCursor(beforeId: number): string {
  return Buffer.from(`b${beforeId}`).toString('base64url');
}

/** The id a cursor stands for, or null if it is not one of ours. */
export function decodeCursor(text: string): number | null {
  const m = /^b([1-9]\d{0,15})$/.exec(Buffer.from(text, 'base64url').toString('utf8'));
  const id = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(id) ? id : null;
}

/** `GET /v1/commands` query. */
export const commandListQuery = z
  .object({
    limit,
    cursor: cursor.optional(),
    status: csv(COMMAND_STATUSES).optional(),
    type: z.string().min(1).max(200).optional(),
    rootsOnly: z
      .enum(['true', 'false'])
      .transform((v) => v === 'true')
      .optional(),
    createdAfter: instant.optional(),
    createdBefore: instant.optional(),
    endedAfter: instant.optional(),
    endedBefore: instant.optional(),
  })
  .strict();

/** `GET /v1/jobs` query. */
export const jobListQuery = z
  .object({
    limit,
    cursor: cursor.optional(),
    status: csv(JOB_STATUSES).optional(),
    type: z.string().min(1).max(200).optional(),
    createdAfter: instant.optional(),
    createdBefore: instant.optional(),
  })
  .strict();

/**
 * `POST /v1/admin/prune` (retention): trees that ended at least `olderThanMs` ago go, with their
 * jobs; `dryRun` counts them instead.
 */
export const pruneBody = z
  .object({
    olderThanMs: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    dryRun: z.boolean().default(false),
  })
  .strict();

// ---------------------------------------------------------------------------------------------
// Answers

/** An error as the API answers it. */
export const errorInfo = z.object({
  code: z.string(),
  message: z.string(),
  details: z.unknown().optional(),
});

/** Every refusal and failure: `{ error: { code, message, details? } }`. */
export const errorAnswer = z.object({ error: errorInfo });

const ms = z.number().int().describe('ms since the epoch');

/** A command in a list: no parameters, result or tasks (see the detail). */
export const commandSummary = z.object({
  id: z.number().int(),
  type: z.string(),
  status: z.enum(COMMAND_STATUSES),
  parentId: z.number().int().nullable(),
  rootId: z.number().int(),
  createdAt: ms,
  endedAt: ms.nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});
/** See {@link commandSummary}. */
export type CommandSummary = z.infer<typeof commandSummary>;

/** A row a list could not read, and why (`CORRUPT_ROW`). */
export const unreadableRow = z.object({
  table: z.enum(['commands', 'tasks', 'undo']),
  commandId: z.number().int().nullable(),
  parentId: z.number().int().nullable(),
  error: errorInfo,
});

/** `GET /v1/commands`. */
export const commandPage = z.object({
  commands: z.array(commandSummary),
  unreadable: z.array(unreadableRow),
  nextCursor: z.string().nullable(),
});

const taskRecord = z.object({
  commandId: z.number().int(),
  ordinal: z.number().int(),
  origin: z.number().int(),
  agentId: z.string(),
  verb: z.string(),
  args: z.unknown(),
  status: z.enum(TASK_STATUSES),
  result: z.unknown(),
  error: errorInfo.nullable(),
  deadlineAt: ms.nullable(),
  stopRequested: z.boolean(),
  createdAt: ms,
  endedAt: ms.nullable(),
});

const undoRecord = z.object({
  commandId: z.number().int(),
  ordinal: z.number().int(),
  seq: z.number().int(),
  stage: z.number().int(),
  name: z.string(),
  data: z.unknown(),
  status: z.enum(UNDO_STATUSES),
  error: errorInfo.nullable(),
});

/**
 * Where a queued task waits (admission control, engine/admission.ts): its agent, the agent's
 * limit, and the tasks queued ahead of it on that agent; `verb` and `verbLimit` when its verb
 * has a limit of its own there.
 */
export const taskQueue = z.object({
  agent: z.string(),
  verb: z
    .string()
    .optional()
    .describe('the task\u2019s verb, when it has a limit of its own on the agent'),
  verbLimit: z.number().int().optional().describe('that verb\u2019s limit on the agent'),
  ahead: z.number().int().describe('queued tasks on the agent admitted before it (current order)'),
  limit: z
    .number()
    .int()
    .nullable()
    .describe('the agent\u2019s limit (null: only per-verb limits)'),
  running: z.number().int().describe('tasks holding a slot of the agent now'),
  text: z.string().describe("'queued for host-1: 12 ahead, limit 4'"),
});

/** {@link taskQueue}'s type. */
export type TaskQueue = z.infer<typeof taskQueue>;

/** A paused command type (engine/pauses.ts). */
export const pausedType = z.object({
  type: z.string(),
  pausedAt: z.number().int().describe('when it was paused (ms since the epoch)'),
  by: z.string().nullable().describe('who paused it (the API caller), when known'),
  reason: z.string().nullable().describe("why, in the operator's words"),
});

/** {@link pausedType}'s type. */
export type PausedTypeEntry = z.infer<typeof pausedType>;

/**
 * Where a root waiting for the root limits, or for its type's resume, stands
 * (engine/root-admission.ts).
 */
export const rootQueue = z.object({
  type: z.string(),
  ahead: z.number().int().describe('queued roots admitted before it (current order)'),
  limit: z.number().int().nullable().describe('its type\u2019s limit (null: only the node\u2019s)'),
  nodeLimit: z.number().int().nullable().describe('roots running at once on the node, at most'),
  paused: pausedType.nullable().describe('its type’s pause: it waits for a resume'),
  text: z
    .string()
    .describe("'queued: 3 ahead, disk.migrate limit 8', 'queued: 0 ahead, disk.migrate paused'"),
});

/** {@link rootQueue}'s type. */
export type RootQueue = z.infer<typeof rootQueue>;

/** `GET /v1/commands/:id`: the summary, and everything else about the command. */
export const commandDetail = commandSummary.extend({
  error: errorInfo.nullable(),
  params: z.unknown(),
  paramsVersion: z.number().int(),
  idempotencyKey: z.string().nullable(),
  statusHistory: z
    .array(z.object({ status: z.enum(COMMAND_STATUSES), at: ms }))
    .describe('each stored status, oldest first'),
  result: z.unknown(),
  compensation: z.enum(COMPENSATION_STATUSES),
  compensationError: errorInfo.nullable(),
  cancelRequested: z.boolean(),
  deadlineAt: ms.nullable(),
  updatedAt: ms,
  tasks: z.array(
    taskRecord.extend({
      queue: taskQueue
        .nullable()
        .describe('where the task waits for a slot of its agent (status queued), else null'),
    }),
  ),
  undo: z.array(undoRecord),
  children: z.array(z.number().int()).describe('child command ids, in creation order'),
  childPositions: z
    .array(
      z.object({
        id: z.number().int(),
        seq: z
          .number()
          .int()
          .nullable()
          .describe(
            "its place in the parent's journal, shared with the undo steps' seq (compensation undoes by descending seq)",
          ),
        stage: z
          .number()
          .int()
          .nullable()
          .describe(
            'the stage of the parent that created it (0: execute; a serial chain has one per stage)',
          ),
      }),
    )
    .describe("each child's place in its parent's work, in creation order (as children)"),
  unreadableChildren: z.array(unreadableRow),
  unloadable: errorInfo
    .nullable()
    .describe(
      'why the command is held: it could not be loaded, or the store refused its tree (`TREE_REFUSED`)',
    ),
  releasable: z
    .boolean()
    .describe(
      'held because the store refused its tree: POST /v1/commands/:id/release runs the tree on',
    ),
  rerunOf: z
    .number()
    .int()
    .nullable()
    .describe('for a root: the ended root it runs again (POST /v1/commands/:id/rerun), else null'),
  reruns: z
    .array(z.number().int())
    .describe('for a root: the roots that ran it again, oldest first'),
  priority: z.number().int().describe('admission priority of its tasks (higher first)'),
  queuedSince: ms
    .nullable()
    .describe('a root waiting for the root limits since then (it runs nothing yet), else null'),
  queue: z
    .union([taskQueue.extend({ ordinal: z.number().int() }), rootQueue])
    .nullable()
    .describe(
      'what the command waits for, else null: a root waiting for the root limits ({ type, ahead, limit, … }), or else its best-placed queued task ({ ordinal, agent, verb?, ahead, limit, … })',
    ),
  queued: z
    .array(
      z.object({
        ordinal: z.number().int(),
        position: z.object({
          agentId: z.string(),
          ahead: z.number().int(),
          limit: z.number().nullable(),
          verbLimit: z.number().nullable(),
          running: z.number().int(),
          text: z.string(),
        }),
      }),
    )
    .describe('deprecated: tasks[].queue says the same'),
  rootQueue: z
    .object({
      ahead: z.number().int(),
      typeLimit: z.number().nullable(),
      nodeLimit: z.number().nullable(),
      text: z.string(),
    })
    .nullable()
    .describe('deprecated: queue says the same for a queued root'),
});

/** A job: the user's view of a root command and everything it started. */
export const jobRecord = z.object({
  id: z.number().int(),
  type: z.string(),
  status: z.enum(JOB_STATUSES),
  compensation: z.enum(COMPENSATION_STATUSES),
  progress: z.number(),
  error: errorInfo.nullable(),
  startedAt: ms,
  updatedAt: ms,
  endedAt: ms.nullable(),
});

/** `GET /v1/jobs`. */
export const jobPage = z.object({ jobs: z.array(jobRecord), nextCursor: z.string().nullable() });

const step = z.object({
  jobId: z.number().int(),
  key: z.string(),
  parentKey: z.string().nullable(),
  kind: z.enum(STEP_KINDS),
  name: z.string(),
  commandId: z.number().int(),
  taskOrdinal: z.number().int().nullable(),
  status: z.string(),
  compensation: z.enum(COMPENSATION_STATUSES),
  progress: z.number(),
  expectedTasks: z.number().int(),
  expectedChildren: z.number().int(),
  undo: z.boolean(),
  error: errorInfo.nullable(),
  startedAt: ms,
  endedAt: ms.nullable(),
  updatedAt: ms,
});

interface StepNodeShape {
  step: z.infer<typeof step>;
  tasks: z.infer<typeof step>[];
  children: StepNodeShape[];
}
const stepNode: z.ZodType<StepNodeShape> = z.lazy(() =>
  z.object({ step, tasks: z.array(step), children: z.array(stepNode) }),
);

/** `GET /v1/jobs/:id`: the job and its steps as a tree. */
export const jobTree = z.object({
  job: jobRecord,
  root: stepNode.nullable(),
  orphans: z.array(step),
});

/** `GET /v1/agents`. */
export const agentList = z.object({
  agents: z.array(
    z.object({
      id: z.string(),
      address: z.string().nullable(),
      state: z.enum(['up', 'down']),
      bootId: z.string().nullable(),
      lastSeenAt: ms.nullable(),
      lastError: errorInfo.nullable(),
      updatedAt: ms,
      tasksInFlight: z
        .number()
        .int()
        .describe("this node's tasks on the agent that have not ended (started or running)"),
      configured: z
        .boolean()
        .describe(
          "whether this node's configuration names the agent: false for one retired by a reload " +
            '(still reached until the work in flight there ends) or seen before a restart without it',
        ),
      retiredAt: ms
        .nullable()
        .describe(
          'when a reload of this node retired the agent (null: not retired here): the trees ' +
            'submitted before go on there; a task of a tree submitted since fails unsent (AGENT_RETIRED)',
        ),
    }),
  ),
});

/** `POST /v1/commands`. */
export const submitAnswer = z.object({ id: z.number().int() });
/** `POST /v1/commands/:id/rerun`: the body (optional). */
export const rerunBody = z
  .object({
    idempotencyKey: submitBody.shape.idempotencyKey,
    priority: submitBody.shape.priority.describe(
      "admission priority of its tasks on limited agents (default: the ended command's)",
    ),
  })
  .strict()
  .optional();
/** `POST /v1/commands/:id/rerun`. */
export const rerunAnswer = z.object({
  id: z.number().int().describe('the new command'),
  rerunOf: z.number().int().describe('the ended command it runs again'),
});
/** `POST /v1/commands/:id/cancel`. */
export const cancelAnswer = z.object({ id: z.number().int(), cancelRequested: z.literal(true) });

/** The answer to `POST /v1/commands/:id/release`. */
export const releaseAnswer = z.object({
  id: z.number().int(),
  rootId: z.number().int(),
  released: z.number().int().describe('the commands of the tree that were held, now running'),
});
/** `POST /v1/admin/prune`. */
export const pruneAnswer = z.object({
  trees: z.number().int(),
  commands: z.number().int(),
  tasks: z.number().int(),
  undo: z.number().int(),
  jobs: z.number().int(),
  more: z.boolean(),
});
/** `GET /v1/whoami`. */
export const whoami = z.object({
  name: z.string(),
  role: z.enum(['viewer', 'operator', 'admin']),
});
/** `GET /v1/health`. */
export const health = z.object({
  ok: z.boolean(),
  state: z.string(),
  haltedBy: z.object({ code: z.string() }).optional(),
  rejoining: z.boolean(),
  nodeId: z.string(),
  version: z.string(),
});
/** `GET /v1/ready`. */
export const ready = z.object({
  ready: z.boolean(),
  nodeId: z.string(),
  reason: z.string().optional(),
  /** The failure behind the reason, in its own words: only to a caller with a valid token. */
  detail: z.string().optional(),
});

/** The name of a command type in the path (its registered name, or a former one). */
export const typeNameParam = z.object({ name: z.string().min(1).max(200) });

/** A command type this node registers, and its roots here (`GET /v1/types`). */
export const commandTypeEntry = z.object({
  name: z.string(),
  version: z.number().int().describe("its parameters' version"),
  aliases: z.array(z.string()).describe('former names, still accepted'),
  submittable: z.boolean().describe('false: it runs only as a child of another command'),
  limit: z
    .number()
    .int()
    .nullable()
    .describe('its roots running at once on this node, at most (null: no limit of its own)'),
  running: z
    .number()
    .int()
    .nullable()
    .describe(
      'its roots holding a slot on this node, counted while a root limit or a pause is set (null: not counted now)',
    ),
  queued: z.number().int().describe('its roots waiting on this node (a limit, or its pause)'),
  paused: pausedType
    .nullable()
    .describe('its pause, for every node of the store (null: not paused)'),
});

/** {@link commandTypeEntry}'s type. */
export type CommandTypeEntry = z.infer<typeof commandTypeEntry>;

/** `GET /v1/types`. */
export const typeList = z.object({
  types: z.array(commandTypeEntry),
  otherPaused: z
    .array(pausedType)
    .describe('pauses kept in the store for names this node does not register (a removed type)'),
});

/** `POST /v1/types/:name/pause`: the body (optional). */
export const pauseBody = z
  .object({
    reason: z
      .string()
      .max(500)
      .refine((r) => !r.includes('\u0000'), 'must not contain U+0000')
      .optional()
      .describe("why, in the operator's words (shown with the pause)"),
  })
  .strict()
  .optional();

/** `POST /v1/types/:name/pause`: the type, paused (the first pause, if it was paused already). */
export const pauseAnswer = commandTypeEntry.extend({ paused: pausedType });

/** `POST /v1/types/:name/resume`. */
export const resumeAnswer = z.object({
  name: z.string(),
  resumed: pausedType.nullable().describe('the pause it ended (null: it was not paused)'),
});

/** `POST /v1/admin/limits`: the admission limits (engine/admission.ts), checked by the engine. */
export const limitsBody = admissionLimitsSchema;

/** `GET /v1/admission`, `POST /v1/admin/limits`: the limits in force and each limited agent. */
export const admissionAnswer = z.object({
  limits: admissionLimitsSchema,
  agents: z.array(
    z.object({
      agentId: z.string(),
      limit: z.number().nullable(),
      running: z.number(),
      queued: z.number(),
      oldestWaitMs: z.number(),
      verbs: z.array(
        z.object({
          verb: z.string(),
          limit: z.number().nullable(),
          running: z.number(),
          queued: z.number(),
        }),
      ),
    }),
  ),
});
