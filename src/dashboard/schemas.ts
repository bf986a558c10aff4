/**
 * What the dashboard reads from the API, parsed at the boundary (zod's small build). Only the
 * fields the views show are required; anything else the server adds is ignored, so the page
 * keeps working when the API grows.
 *
 * @module
 */
import * as z from 'zod/mini';

// The page's policy allows no eval: zod's compiled parsers are turned off rather than tried.
z.config({ jitless: true });

const num = z.number();
const str = z.string();
const when = z.nullable(z.number());

/** An error as the API reports it: a stable code and a message. */
export const errorInfo = z.looseObject({
  code: str,
  message: str,
  details: z.optional(z.unknown()),
});
/** See {@link errorInfo}. */
export type ErrorInfo = z.infer<typeof errorInfo>;
const maybeError = z.optional(z.nullable(errorInfo));

/** `GET /v1/whoami`. */
export const whoami = z.looseObject({ role: z.enum(['viewer', 'operator', 'admin']), name: str });
/** See {@link whoami}. */
export type Whoami = z.infer<typeof whoami>;

/** A job (one per root command), as the job list and the event stream give it. */
export const job = z.looseObject({
  id: num,
  type: str,
  status: str,
  compensation: z.optional(str),
  progress: num,
  error: maybeError,
  startedAt: num,
  updatedAt: z.optional(num),
  endedAt: when,
});
/** See {@link job}. */
export type Job = z.infer<typeof job>;

/** `GET /v1/jobs`: a page, newest first, and the next page's cursor (null: the last page). */
export const jobPage = z.looseObject({
  jobs: z.array(job),
  nextCursor: z.optional(z.nullable(str)),
});

/** A step of a job's tree: a command, or a task of a command. */
export const step = z.looseObject({
  key: str,
  kind: z.enum(['command', 'task']),
  name: str,
  commandId: num,
  taskOrdinal: z.nullable(num),
  status: str,
  compensation: str,
  progress: num,
  expectedTasks: num,
  expectedChildren: num,
  undo: z.boolean(),
  error: maybeError,
  startedAt: num,
  endedAt: when,
});
/** See {@link step}. */
export type Step = z.infer<typeof step>;

/** A command step with its tasks and children. */
export interface StepNode {
  readonly step: Step;
  readonly tasks: readonly Step[];
  readonly children: readonly StepNode[];
}
const stepNode: z.ZodMiniType<StepNode> = z.looseObject({
  step,
  tasks: z.array(step),
  get children() {
    return z.array(stepNode);
  },
});

/** `GET /v1/jobs/:id` and each `event: job` of `/v1/jobs/:id/events`. */
export const jobTree = z.looseObject({
  job,
  root: z.nullable(stepNode),
  orphans: z.optional(z.array(step)),
});
/** See {@link jobTree}. */
export type JobTree = z.infer<typeof jobTree>;

/** A command in a list: no parameters (the API's `CommandSummary`). */
export const commandSummary = z.looseObject({
  id: num,
  type: str,
  status: str,
  parentId: z.nullable(num),
  rootId: num,
  createdAt: num,
  endedAt: when,
  error: maybeError,
});
/** See {@link commandSummary}. */
export type CommandSummary = z.infer<typeof commandSummary>;

/** A row the server could not read, named with why. */
export const unreadableRow = z.looseObject({
  table: z.optional(str),
  commandId: z.nullable(num),
  parentId: z.optional(z.nullable(num)),
  error: errorInfo,
});
/** See {@link unreadableRow}. */
export type UnreadableRow = z.infer<typeof unreadableRow>;

/** `GET /v1/commands`. */
export const commandPage = z.looseObject({
  commands: z.array(commandSummary),
  unreadable: z.optional(z.array(unreadableRow)),
  nextCursor: z.optional(z.nullable(str)),
});

/** A paused command type: when, by whom and why (an operator's pause of its new roots). */
export const pausedType = z.looseObject({
  type: str,
  pausedAt: num,
  by: z.nullable(str),
  reason: z.nullable(str),
});
/** See {@link pausedType}. */
export type PausedType = z.infer<typeof pausedType>;

/**
 * What a queued task or command waits for (admission control): `text` says it, e.g. "queued for
 * host-1: 12 ahead, limit 4"; the numbers are there for sorting and titles. A root whose type is
 * paused carries the pause (`paused`): it waits for a resume, not for a slot.
 */
export const queue = z.nullable(
  z.looseObject({
    text: str,
    ahead: z.optional(num),
    agent: z.optional(str),
    type: z.optional(str),
    paused: z.optional(z.nullable(pausedType)),
  }),
);
/** See {@link queue}. */
export type Queue = z.infer<typeof queue>;

/** A task of a command. */
export const task = z.looseObject({
  ordinal: num,
  origin: z.optional(num),
  agentId: str,
  verb: str,
  status: str,
  progress: z.optional(z.nullable(num)),
  error: maybeError,
  createdAt: z.optional(num),
  endedAt: z.optional(when),
  queue: z.optional(queue),
});
/** See {@link task}. */
export type Task = z.infer<typeof task>;

/** An undo step of a command. */
export const undoStep = z.looseObject({
  ordinal: num,
  seq: num,
  stage: z.optional(num),
  name: str,
  status: str,
  error: maybeError,
});
/** See {@link undoStep}. */
export type UndoStep = z.infer<typeof undoStep>;

/** A command's child, as its details list it: its id (type and status come from the job tree). */
export const child = z.pipe(
  z.union([num, z.looseObject({ id: num, seq: z.optional(z.nullable(num)) })]),
  z.transform((c) =>
    typeof c === 'number' ? { id: c, seq: null } : { id: c.id, seq: c.seq ?? null },
  ),
);
/** See {@link child}. */
export type Child = z.infer<typeof child>;

const commandFields = {
  id: num,
  type: str,
  status: str,
  parentId: z.nullable(num),
  rootId: num,
  createdAt: num,
  endedAt: when,
  error: maybeError,
  params: z.optional(z.unknown()),
  paramsVersion: z.optional(num),
  result: z.optional(z.unknown()),
  compensation: z.optional(str),
  compensationError: maybeError,
  expectedTasks: z.optional(num),
  expectedChildren: z.optional(num),
  cancelRequested: z.optional(z.boolean()),
  statusHistory: z.optional(z.array(z.looseObject({ status: str, at: num }))),
};
const detailLists = {
  tasks: z.array(task),
  undo: z.array(undoStep),
  children: z.array(child),
  unreadableChildren: z.optional(z.array(unreadableRow)),
  unloadable: maybeError,
  releasable: z.optional(z.boolean()),
  queue: z.optional(queue),
  /** A root's: the ended root (its job) it runs again, else null (absent from an older node). */
  rerunOf: z.optional(z.nullable(num)),
  /** A root's: the roots (jobs) that ran it again, oldest first (absent from an older node). */
  reruns: z.optional(z.array(num)),
};

/** A child's place in its parent's work (`childPositions`): its journal seq, its parent's stage. */
const childPosition = z.looseObject({
  id: num,
  seq: z.optional(z.nullable(num)),
  stage: z.optional(z.nullable(num)),
});

/**
 * `GET /v1/commands/:id`: the summary's fields with the details beside them. A child's `seq`
 * comes from `childPositions` when the API gives it (children themselves are listed as ids).
 */
export const commandDetails = z.pipe(
  z.looseObject({
    ...commandFields,
    ...detailLists,
    childPositions: z.optional(z.array(childPosition)),
  }),
  z.transform((d) => {
    if (d.childPositions === undefined) return d;
    const seqs = new Map(d.childPositions.map((p) => [p.id, p.seq ?? null]));
    return {
      ...d,
      children: d.children.map((c) => ({ id: c.id, seq: c.seq ?? seqs.get(c.id) ?? null })),
    };
  }),
);
/** See {@link commandDetails}. */
export type CommandDetails = z.infer<typeof commandDetails>;

/** An agent as the node last saw it. */
export const agent = z.looseObject({
  id: str,
  address: z.optional(z.nullable(str)),
  state: str,
  bootId: z.optional(z.nullable(str)),
  lastSeenAt: z.optional(when),
  lastError: maybeError,
  tasksInFlight: z.optional(z.nullable(num)),
  configured: z.optional(z.boolean()),
  /** When a reload of the node retired it (drained: new trees start nothing there). */
  retiredAt: z.optional(when),
});
/** See {@link agent}. */
export type Agent = z.infer<typeof agent>;

/** `GET /v1/agents`. */
export const agentList = z.looseObject({ agents: z.array(agent) });

const slots = {
  limit: z.nullable(num),
  running: num,
  queued: num,
};
/** A limited agent's slots and queue, in all and per verb. */
export const agentAdmission = z.looseObject({
  agentId: str,
  ...slots,
  oldestWaitMs: num,
  verbs: z.array(z.looseObject({ verb: str, ...slots })),
});

/** `GET /v1/admission`: the limits in force, and each limited agent's slots and queue. */
export const admission = z.looseObject({
  limits: z.looseObject({
    maxRunningRoots: z.optional(num),
    types: z.optional(z.record(str, z.looseObject({ maxRunning: z.optional(num) }))),
  }),
  agents: z.array(agentAdmission),
});
/** See {@link admission}. */
export type Admission = z.infer<typeof admission>;

/** A command type the node registers, with its roots on the node and its pause (`GET /v1/types`). */
export const commandType = z.looseObject({
  name: str,
  version: num,
  aliases: z.array(str),
  /** False: it runs only as a child of another command (it cannot be paused either). */
  submittable: z.boolean(),
  limit: z.nullable(num),
  /** Null: roots are not counted on the node now (no root limit, no pause). */
  running: z.nullable(num),
  queued: num,
  paused: z.nullable(pausedType),
});
/** See {@link commandType}. */
export type CommandType = z.infer<typeof commandType>;

/** `GET /v1/types`: the registered types, and pauses kept for names the node does not register. */
export const typeList = z.looseObject({
  types: z.array(commandType),
  otherPaused: z.optional(z.array(pausedType)),
});
/** See {@link typeList}. */
export type TypeList = z.infer<typeof typeList>;

/** `POST /v1/types/:name/resume`: the pause it ended (null: the type was not paused). */
export const resumeAnswer = z.looseObject({ name: str, resumed: z.nullable(pausedType) });

/** `POST /v1/commands/:id/rerun`. */
export const rerunAnswer = z.looseObject({ id: num, rerunOf: num });
/** The answer to a release (`POST /v1/commands/:id/release`). */
export const releaseAnswer = z.looseObject({ id: num, rootId: num, released: num });

/** An answer whose body the page does not read. */
export const anything = z.unknown();

/** `GET /v1/ready`'s answer (200 or 503). */
export const readiness = z.looseObject({
  ready: z.boolean(),
  nodeId: str,
  reason: z.optional(str),
  detail: z.optional(str),
});
/** See {@link readiness}. */
export type Readiness = z.infer<typeof readiness>;

/** The body of an error answer. */
export const errorBody = z.looseObject({ error: errorInfo });
