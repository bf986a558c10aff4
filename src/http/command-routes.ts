/**
 * The command routes: submit, list (summaries, keyset pages, filters), detail, cancel, rerun.
 *
 * @module
 */
import { context, propagation, trace, type Context } from '@opentelemetry/api';
import type { CommandType } from '../core/command-type.js';
import { CocoError, ErrorCode } from '../core/errors.js';
import { upgradeParams } from '../core/params.js';
import type { CommandRecord } from '../core/records.js';
import { isTerminal } from '../core/states.js';
import type { QueuePosition } from '../engine/admission.js';
import type { CommandDetails } from '../engine/engine.js';
import {
  cancelAnswer,
  releaseAnswer,
  commandDetail,
  commandListQuery,
  commandPage,
  decodeCursor,
  encodeCursor,
  idParam,
  rerunAnswer,
  rerunBody,
  submitAnswer,
  submitBody,
  type CommandSummary,
  type RootQueue,
  type TaskQueue,
} from './contracts.js';
import type { ApiContext } from './context.js';
import { ANSWERED } from './routes.js';

/**
 * Whether a command's detail can no longer change: it ended, its compensation is not running
 * and its tasks are cleared, and so is its tree's root. An ended command of a running tree may
 * still change — a succeeded child is compensated when its parent aborts (its compensation and
 * undo steps move on), and a command's tasks are cleared after its end — so only a finished
 * tree's details are kept (one keyed read of the root, for a child, on a miss).
 */
async function isFinal(
  engine: { get(id: number): Promise<CommandRecord | null> },
  c: CommandRecord,
): Promise<boolean> {
  const done = (r: CommandRecord): boolean =>
    isTerminal(r.status) && r.compensation !== 'compensating' && r.tasksCleared;
  if (!done(c)) return false;
  if (c.rootId === c.id) return true;
  const root = await engine.get(c.rootId);
  return root !== null && done(root);
}

/** A command as a list shows it: no parameters, result or tasks. */
export function summaryOf(c: CommandRecord): CommandSummary {
  return {
    id: c.id,
    type: c.type,
    status: c.status,
    parentId: c.parentId,
    rootId: c.rootId,
    createdAt: c.createdAt,
    endedAt: c.endedAt,
    error: c.error === null ? null : { code: c.error.code, message: c.error.message },
  };
}

/** A command's detail: its summary and everything else (`GET /v1/commands/:id`). */
export function detailOf(d: CommandDetails): unknown {
  const c = d.command;
  const taskQueue = new Map(d.queued.map((q) => [q.ordinal, taskQueueOf(q.position)]));
  let bestQueued: (typeof d.queued)[number] | undefined;
  for (const q of d.queued)
    if (!bestQueued || q.position.ahead < bestQueued.position.ahead) bestQueued = q;
  const rootQueue: RootQueue | null = d.rootQueue && {
    type: c.type,
    ahead: d.rootQueue.ahead,
    limit: d.rootQueue.typeLimit,
    nodeLimit: d.rootQueue.nodeLimit,
    paused: d.rootQueue.paused,
    text: d.rootQueue.text,
  };
  return {
    ...summaryOf(c),
    error: c.error,
    params: c.params,
    paramsVersion: c.paramsVersion,
    idempotencyKey: c.idempotencyKey,
    statusHistory: d.statusHistory,
    result: c.result,
    compensation: c.compensation,
    compensationError: c.compensationError,
    cancelRequested: c.cancelRequested,
    deadlineAt: c.deadlineAt,
    updatedAt: c.updatedAt,
    tasks: d.tasks.map((t) => ({ ...t, queue: taskQueue.get(t.ordinal) ?? null })),
    undo: d.undo,
    children: d.children.map((child) => child.id),
    childPositions: d.children.map((child) => ({
      id: child.id,
      seq: child.seq,
      stage: child.originStage,
    })),
    unreadableChildren: d.unreadableChildren,
    unloadable: d.unloadable,
    releasable: d.releasable,
    rerunOf: d.reruns.rerunOf,
    reruns: [...d.reruns.reruns],
    priority: c.priority,
    queuedSince: c.queuedSince,
    queue:
      rootQueue ??
      (bestQueued ? { ordinal: bestQueued.ordinal, ...taskQueue.get(bestQueued.ordinal)! } : null),
    queued: d.queued,
    rootQueue: d.rootQueue,
  };
}

/** The API's `queue` of a queued task (`tasks[].queue`) from the engine's position. */
function taskQueueOf(p: QueuePosition): TaskQueue {
  return {
    agent: p.agentId,
    ...(p.verbLimit === null ? {} : { verb: p.verb, verbLimit: p.verbLimit }),
    ahead: p.ahead,
    limit: p.limit,
    running: p.running,
    text: p.text,
  };
}

/**
 * The trace context a submitted command's span nests under: the active one when the server is
 * instrumented (an HTTP server span already holds the caller's), else the caller's W3C
 * `traceparent` header through the registered propagator (none registered: no parent).
 */
function callerContext(headers: Readonly<Record<string, unknown>>): Context {
  const active = context.active();
  return trace.getSpan(active) ? active : propagation.extract(active, headers);
}

/** A `BAD_REQUEST` for a cursor that is not one of ours. */
export function badCursor(): CocoError {
  return new CocoError(
    ErrorCode.BadRequest,
    'invalid query: cursor: not a cursor of this API (pass the nextCursor of the page before)',
  );
}

/** Adds the command routes. */
export function commandRoutes(api: ApiContext): void {
  const { routes } = api;

  routes.add(
    {
      method: 'POST',
      url: '/v1/commands',
      role: 'operator',
      tag: 'commands',
      summary: 'Submit a command',
      description:
        'Validates the parameters against the type, stores the command and answers 201 with its id once it is durable. ' +
        'With an idempotency key already used for the same type and parameters, answers 200 with the first command; ' +
        'for another type or other parameters, 409 IDEMPOTENCY_CONFLICT. A W3C `traceparent` header makes the ' +
        "command's span a child of the caller's (with an OpenTelemetry SDK and propagator registered). " +
        'While the store has taken no write for `storeOutageMs` (5 s), answers 503 STORE_FAILED at once, ' +
        'with `Retry-After` (nothing created).',
      body: submitBody,
      ok: { status: 201, schema: submitAnswer, also: [200] },
      errors: {
        400: [ErrorCode.UnknownCommandType, ErrorCode.ParametersInvalid],
        409: [ErrorCode.IdempotencyConflict],
        422: [ErrorCode.CommandTypeNotSubmittable],
        503: [ErrorCode.EngineStopped, ErrorCode.StoreFailed, ErrorCode.IdempotencyKeyTaken],
      },
    },
    async ({ body, request, reply }) => {
      const type = api.types.get(body.type);
      if (!type) throw unknownType(api, body.type);
      const r = await context.with(callerContext(request.headers), () =>
        api.engine().submit(type, body.params, {
          ...(body.idempotencyKey === undefined ? {} : { idempotencyKey: body.idempotencyKey }),
          ...(body.priority === undefined ? {} : { priority: body.priority }),
        }),
      );
      // The first command of this idempotency key: nothing new was created.
      if (r.existing) {
        void reply.code(200).send({ id: r.id });
        return ANSWERED;
      }
      return { id: r.id };
    },
  );

  routes.add(
    {
      method: 'GET',
      url: '/v1/commands',
      role: 'viewer',
      tag: 'commands',
      summary: 'List commands (summaries), newest first',
      description:
        'Keyset pages: pass nextCursor back as cursor. Filters combine (AND); times are ms since the epoch or ISO 8601, ' +
        '`After` inclusive and `Before` exclusive; ended filters match ended commands only. Rows that cannot be read ' +
        'are reported in `unreadable` (and count toward the page size).',
      query: commandListQuery,
      ok: { status: 200, schema: commandPage },
      errors: { 503: [ErrorCode.StoreFailed] },
    },
    async ({ query: q }) => {
      const beforeId = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
      if (beforeId === null) throw badCursor();
      const page = await api.engine().list({
        ...(q.status ? { status: q.status } : {}),
        ...(q.type ? { type: q.type } : {}),
        ...(q.rootsOnly ? { rootsOnly: true } : {}),
        ...(beforeId === undefined ? {} : { beforeId }),
        ...(q.createdAfter === undefined ? {} : { createdAfter: q.createdAfter }),
        ...(q.createdBefore === undefined ? {} : { createdBefore: q.createdBefore }),
        ...(q.endedAfter === undefined ? {} : { endedAfter: q.endedAfter }),
        ...(q.endedBefore === undefined ? {} : { endedBefore: q.endedBefore }),
        limit: q.limit,
      });
      return {
        commands: page.commands.map(summaryOf),
        unreadable: page.unreadable,
        nextCursor: page.nextBeforeId === null ? null : encodeCursor(page.nextBeforeId),
      };
    },
  );

  routes.add(
    {
      method: 'GET',
      url: '/v1/commands/:id',
      role: 'viewer',
      tag: 'commands',
      summary: "A command's detail",
      description:
        'The summary with parameters, status history, result, error, tasks, undo steps and child ids. ' +
        "A final command's detail (ended, settled, compensation done, in a finished tree) never changes: it carries an `ETag`, and a request sending it back in " +
        '`If-None-Match` is answered 304 with no body.',
      params: idParam,
      ok: { status: 200, schema: commandDetail, notModified: true },
      errors: { 404: [ErrorCode.CommandNotFound], 500: [ErrorCode.CorruptRow] },
    },
    async ({ params: { id }, request, reply }) => {
      const engine = api.engine();
      api.details.follow(engine);
      let kept = api.details.get(id, performance.now());
      if (kept === undefined) {
        const details = await engine.inspect(id);
        if (!details)
          throw new CocoError(ErrorCode.CommandNotFound, `command ${id} does not exist`);
        const detail = detailOf(details);
        const c = details.command;
        if (!(await isFinal(engine, c))) return detail;
        const body = JSON.stringify(detail);
        kept = { body, etag: api.details.put(id, c.rootId, body, performance.now()) };
      }
      void reply.header('etag', kept.etag);
      if (request.headers['if-none-match'] === kept.etag) void reply.code(304).send();
      else void reply.code(200).type('application/json; charset=utf-8').send(kept.body);
      return ANSWERED;
    },
  );

  routes.add(
    {
      method: 'POST',
      url: '/v1/commands/:id/cancel',
      role: 'operator',
      tag: 'commands',
      summary: 'Cancel a command and its subtree',
      description:
        'Stops its tasks, cancels its children, runs compensation; answers 202 once the request is durable. ' +
        'Ends a command held because it could not be loaded. The body, if any, is an empty JSON object.',
      params: idParam,
      ok: { status: 202, schema: cancelAnswer },
      errors: {
        404: [ErrorCode.CommandNotFound],
        409: [ErrorCode.CommandState],
        500: [ErrorCode.CorruptRow],
        503: [ErrorCode.EngineStopped, ErrorCode.StoreFailed],
      },
    },
    async ({ params: { id } }) => {
      await api.engine().cancel(id);
      return { id, cancelRequested: true };
    },
  );

  routes.add(
    {
      method: 'POST',
      url: '/v1/commands/:id/release',
      role: 'operator',
      tag: 'commands',
      summary: 'Run again a tree held because the store refused its changes',
      description:
        'For a command held with `TREE_REFUSED` on this node (any command of the tree): deletes the ' +
        "tree's held mark and runs its commands on from what was stored, once the cause is gone. " +
        'Refused again, the tree is held again. The body, if any, is an empty JSON object.',
      params: idParam,
      ok: { status: 200, schema: releaseAnswer },
      errors: {
        404: [ErrorCode.CommandNotFound],
        409: [ErrorCode.CommandState],
        503: [ErrorCode.EngineStopped, ErrorCode.StoreFailed],
      },
    },
    async ({ params: { id } }) => ({ id, ...(await api.engine().release(id)) }),
  );

  routes.add(
    {
      method: 'POST',
      url: '/v1/commands/:id/rerun',
      role: 'operator',
      tag: 'commands',
      summary: 'Run an ended root command again, as a new command',
      description:
        "Submits a new root command of the ended one's type with its parameters (brought to the type's current " +
        'version), as POST /v1/commands does, and answers 201 with both ids; the ended command is left as it was. ' +
        'Only a root that has ended (succeeded, failed or cancelled) runs again: a child is its parent’s to create. ' +
        'With an idempotency key already used for the same type and parameters, answers 200 with the first command. ' +
        'The body, if any, is { idempotencyKey?, priority? }.',
      params: idParam,
      body: rerunBody,
      ok: { status: 201, schema: rerunAnswer, also: [200] },
      errors: {
        400: [ErrorCode.UnknownCommandType, ErrorCode.ParametersInvalid],
        404: [ErrorCode.CommandNotFound],
        409: [ErrorCode.CommandState, ErrorCode.IdempotencyConflict],
        422: [
          ErrorCode.CommandTypeNotSubmittable,
          ErrorCode.ParameterUpgradeFailed,
          ErrorCode.ParameterVersionTooNew,
        ],
        503: [ErrorCode.EngineStopped, ErrorCode.StoreFailed, ErrorCode.IdempotencyKeyTaken],
      },
    },
    async ({ params: { id }, body, request, reply }) => {
      const engine = api.engine();
      const c = await engine.get(id);
      if (!c) throw new CocoError(ErrorCode.CommandNotFound, `command ${id} does not exist`);
      if (c.parentId !== null)
        throw new CocoError(
          ErrorCode.CommandState,
          `command ${id} is a child of command ${c.parentId}: only a root runs again (its root is ${c.rootId})`,
          { details: { commandId: id, rootId: c.rootId } },
        );
      if (!isTerminal(c.status))
        throw new CocoError(
          ErrorCode.CommandState,
          `command ${id} has not ended (${c.status}): wait for its end, or cancel it, before running it again`,
          { details: { commandId: id, status: c.status } },
        );
      const type: CommandType<unknown, unknown> | undefined =
        api.types.get(c.type) ?? api.commands.find((t) => t.aliases.includes(c.type));
      if (!type) throw unknownType(api, c.type, id);
      const { raw } = await upgradeParams(type, c.paramsVersion, c.params, id);
      const key = body?.idempotencyKey;
      const r = await context.with(callerContext(request.headers), () =>
        engine.submit(type, raw, {
          ...(key === undefined ? {} : { idempotencyKey: key }),
          priority: body?.priority ?? c.priority,
        }),
      );
      // Linked before the answer: a caller that was answered finds the link (one whose answer was
      // lost and who tries again with its key links the command it gets, as the first try did).
      await engine.linkRerun(r.id, id);
      // The ended command's kept detail names its reruns: it is read anew.
      api.details.dropTrees([c.rootId]);
      if (r.existing) {
        void reply.code(200).send({ id: r.id, rerunOf: id });
        return ANSWERED;
      }
      return { id: r.id, rerunOf: id };
    },
  );
}

/** The error of a command type this node does not register (or knows under its new name). */
function unknownType(api: ApiContext, name: string, commandId?: number): CocoError {
  const renamed = api.commands.find((t) => t.aliases.includes(name));
  const known = [...api.types.keys()].sort().join(', ');
  const message = renamed
    ? `command type "${name}" was renamed "${renamed.name}"; submit that`
    : commandId === undefined
      ? `unknown command type "${name}"; known: ${known}`
      : `command ${commandId}'s type "${name}" is not registered on this node; known: ${known}`;
  return new CocoError(ErrorCode.UnknownCommandType, message, { details: { type: name } });
}
