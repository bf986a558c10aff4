/**
 * The command type routes: the types this node registers with their roots here, and an
 * operator's pause and resume of a type (engine/pauses.ts).
 *
 * @module
 */
import type { CommandType } from '../core/command-type.js';
import { ErrorCode } from '../core/errors.js';
import type { Engine } from '../engine/engine.js';
import type { RootTypeStats } from '../engine/root-admission.js';
import {
  pauseAnswer,
  pauseBody,
  resumeAnswer,
  typeList,
  typeNameParam,
  type CommandTypeEntry,
} from './contracts.js';
import type { ApiContext } from './context.js';

/**
 * Registered types as `GET /v1/types` lists them, with their roots on this node and their pauses
 * (the engine's root admission read once for all).
 */
function entriesOf(engine: Engine, types: readonly CommandType[]): CommandTypeEntry[] {
  const stats = new Map(engine.rootAdmissionStats().map((s) => [s.type, s]));
  return types.map((t) => entryOf(engine, t, stats.get(t.name)));
}

function entryOf(
  engine: Engine,
  type: CommandType,
  stats: RootTypeStats | undefined,
): CommandTypeEntry {
  return {
    name: type.name,
    version: type.version,
    aliases: [...type.aliases],
    submittable: !type.childOnly,
    limit: stats?.limit ?? null,
    running: engine.rootsCounted ? (stats?.running ?? 0) : null,
    queued: stats?.queued ?? 0,
    paused: engine.pausedTypes().get(type.name) ?? null,
  };
}

/** Registers the command type routes. */
export function typeRoutes(api: ApiContext): void {
  const { routes } = api;
  const registered = (name: string): CommandType | undefined =>
    api.commands.find((t) => t.name === name || t.aliases.includes(name));

  routes.add(
    {
      method: 'GET',
      url: '/v1/types',
      role: 'viewer',
      tag: 'types',
      summary: 'The command types this node registers: versions, root limits, roots here, pauses',
      ok: { status: 200, schema: typeList },
    },
    () => {
      const engine = api.engine();
      const known = new Set(api.commands.map((t) => t.name));
      return Promise.resolve({
        types: entriesOf(
          engine,
          [...api.commands].sort((a, b) => (a.name < b.name ? -1 : 1)),
        ),
        otherPaused: [...engine.pausedTypes().values()].filter((p) => !known.has(p.type)),
      });
    },
  );

  routes.add(
    {
      method: 'POST',
      url: '/v1/types/:name/pause',
      role: 'operator',
      tag: 'types',
      summary: 'Pause a command type: its new roots wait until it is resumed',
      description:
        'For every node of the store, and across restarts: roots of the type submitted from now on are ' +
        'accepted and stored, and wait (status pending, queued) until the type is resumed; its roots already ' +
        'running go on, and children of every type run. Pausing a paused type changes nothing and answers ' +
        'its first pause. The caller is kept as `by`. The body, if any, is { reason? } (at most 500 characters).',
      params: typeNameParam,
      body: pauseBody,
      ok: { status: 200, schema: pauseAnswer },
      errors: {
        400: [ErrorCode.UnknownCommandType, ErrorCode.ParametersInvalid],
        422: [ErrorCode.CommandTypeNotSubmittable],
        503: [ErrorCode.EngineStopped, ErrorCode.StoreFailed],
      },
    },
    async ({ params: { name }, body, request }) => {
      const engine = api.engine();
      const pause = await engine.pauseType(name, {
        reason: body?.reason ?? null,
        by: request.caller?.name ?? null,
      });
      return { ...entriesOf(engine, [registered(pause.type)!])[0]!, paused: pause };
    },
  );

  routes.add(
    {
      method: 'POST',
      url: '/v1/types/:name/resume',
      role: 'operator',
      tag: 'types',
      summary: 'Resume a paused command type: its waiting roots run as the limits allow',
      description:
        "Ends the type's pause for every node of the store (at once on this one; on the others when " +
        'signalled, at the latest at their next claim tick) and answers the pause it ended — null when the ' +
        'type was not paused. A name no longer registered is resumed too (a pause left by a removed type). ' +
        'The body, if any, is an empty JSON object.',
      params: typeNameParam,
      ok: { status: 200, schema: resumeAnswer },
      errors: { 503: [ErrorCode.EngineStopped, ErrorCode.StoreFailed] },
    },
    async ({ params: { name } }) => {
      const type = registered(name);
      const resumed = await api.engine().resumeType(type?.name ?? name);
      return { name: type?.name ?? name, resumed };
    },
  );
}
