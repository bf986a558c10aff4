/**
 * The node's routes: liveness, readiness, the node's facts, the caller, agents, retention.
 *
 * @module
 */
import { ErrorCode } from '../core/errors.js';
import { runRetention } from '../jobs/retention.js';
import {
  admissionAnswer,
  agentIdParam,
  agentList,
  emptyBody,
  forgetAnswer,
  health,
  limitsBody,
  pruneAnswer,
  pruneBody,
  ready,
  whoami,
} from './contracts.js';
import type { ApiContext } from './context.js';
import { Readiness } from './readiness.js';
import { ANSWERED } from './routes.js';
import { z } from 'zod';

const nodeInfo = z.object({
  nodeId: z.string(),
  storeId: z.string(),
  version: z.string(),
  state: z.string(),
  rejoining: z.boolean(),
  commandTypes: z.array(z.string()),
  stats: z.object({
    liveCommands: z.number().int(),
    watchedTasks: z.number().int(),
    commits: z.object({
      batches: z.number().int(),
      commands: z.number().int(),
      tasks: z.number().int(),
      applyMs: z.number(),
    }),
  }),
});

/** Adds the node's routes. */
export function nodeRoutes(api: ApiContext): void {
  const { routes } = api;
  const readiness = new Readiness(api.engine, api.rejoining);

  routes.add(
    {
      method: 'GET',
      url: '/v1/health',
      role: 'public',
      tag: 'node',
      summary: 'Liveness: the process answers',
      description:
        '200 with ok: true while the engine runs; 503 with ok: false once it halted (its lease lost) or stopped. ' +
        'Public (no token): it says nothing but the state.',
      ok: { status: 200, schema: health, also: [503] },
    },
    ({ reply }) => {
      const e = api.engine();
      const ok = e.state === 'running';
      void reply.code(ok ? 200 : 503).send({
        ok,
        state: e.state,
        ...(e.haltError ? { haltedBy: { code: e.haltError.code } } : {}),
        rejoining: api.rejoining(),
        nodeId: e.nodeId,
        version: api.version,
      });
      return ANSWERED;
    },
  );

  routes.add(
    {
      method: 'GET',
      url: '/v1/ready',
      role: 'public',
      tag: 'node',
      summary: 'Readiness: whether this node takes work now, and why not',
      description:
        '503 with a reason while the engine starts, after it halted or was fenced, while the node rejoins its cluster, ' +
        'while the store has taken no write for `storeOutageMs` (5 s), ' +
        "or while the store does not answer (checked at most once a second). Public, for orchestrators' probes; " +
        'the failure behind a reason (`detail`, in its own words: it may name hosts or paths) only to a caller ' +
        'with a valid token.',
      ok: { status: 200, schema: ready, also: [503] },
    },
    async ({ request, reply }) => {
      const notReady = await readiness.check();
      void reply.code(notReady === null ? 200 : 503).send({
        ready: notReady === null,
        nodeId: api.engine().nodeId,
        ...(notReady ? { reason: notReady.reason } : {}),
        ...(notReady?.detail && request.caller ? { detail: notReady.detail } : {}),
      });
      return ANSWERED;
    },
  );

  routes.add(
    {
      method: 'GET',
      url: '/v1/node',
      role: 'viewer',
      tag: 'node',
      summary: "The node's facts: ids, version, command types, engine counters",
      ok: { status: 200, schema: nodeInfo },
    },
    () => {
      const e = api.engine();
      return {
        nodeId: e.nodeId,
        storeId: e.storeId,
        version: api.version,
        state: e.state,
        rejoining: api.rejoining(),
        commandTypes: [...api.types.keys()].sort(),
        stats: e.stats(),
      };
    },
  );

  routes.add(
    {
      method: 'GET',
      url: '/v1/whoami',
      role: 'viewer',
      tag: 'node',
      summary: "The caller's token: its name and role",
      ok: { status: 200, schema: whoami },
    },
    ({ request }) => ({ name: request.caller?.name ?? '', role: request.caller?.role ?? 'viewer' }),
  );

  routes.add(
    {
      method: 'GET',
      url: '/v1/agents',
      role: 'viewer',
      tag: 'node',
      summary:
        'Agents as the engine last saw them, with the tasks this node has on each and whether it is configured',
      ok: { status: 200, schema: agentList },
    },
    async () => {
      const e = api.engine();
      const inFlight = e.tasksInFlight();
      const [agents, configured, retired] = await Promise.all([
        e.agents(),
        e.configuredAgents(),
        e.retiredAgents(),
      ]);
      const named = new Set(configured);
      return {
        agents: agents.map((a) => ({
          ...a,
          tasksInFlight: inFlight.get(a.id) ?? 0,
          configured: named.has(a.id),
          retiredAt: retired.get(a.id) ?? null,
        })),
      };
    },
  );

  routes.add(
    {
      method: 'GET',
      url: '/v1/admission',
      role: 'viewer',
      tag: 'node',
      summary: 'Admission: the limits in force, and per limited agent its slots held and queue',
      ok: { status: 200, schema: admissionAnswer },
    },
    () => {
      const e = api.engine();
      return Promise.resolve({ limits: e.limits, agents: e.admissionStats() });
    },
  );

  routes.add(
    {
      method: 'POST',
      url: '/v1/admin/limits',
      role: 'admin',
      tag: 'admin',
      summary: 'Replace the admission limits without a restart (as a configuration reload does)',
      body: limitsBody,
      ok: { status: 200, schema: admissionAnswer },
      errors: { 400: [ErrorCode.InvalidOptions] },
    },
    ({ body }) => {
      api.setLimits(body);
      const e = api.engine();
      return Promise.resolve({ limits: e.limits, agents: e.admissionStats() });
    },
  );

  routes.add(
    {
      method: 'POST',
      url: '/v1/admin/prune',
      role: 'admin',
      tag: 'admin',
      summary: 'Retention: delete the trees that ended long enough ago, with their jobs',
      description:
        'Deletes (or with dryRun counts) the trees whose root ended at least olderThanMs ago and none of whose ' +
        "commands is active, in bounded batches for at most the node's prune budget; more: true asks for another call.",
      body: pruneBody,
      ok: { status: 200, schema: pruneAnswer },
      errors: { 503: [ErrorCode.EngineStopped] },
    },
    async ({ body }) => {
      const e = api.engine();
      const r = await runRetention(
        {
          prune: (req, onBatch) => e.prune(req, onBatch),
          get: (id) => e.get(id),
          jobs: api.monitor()?.jobStore ?? null,
        },
        { olderThanMs: body.olderThanMs, dryRun: body.dryRun },
      );
      const { trees, commands, tasks, undo, jobs, more } = r;
      return { trees, commands, tasks, undo, jobs, more };
    },
  );

  routes.add(
    {
      method: 'POST',
      url: '/v1/admin/agents/:id/forget',
      role: 'admin',
      tag: 'admin',
      summary: 'Forget an agent taken out of service: GET /v1/agents no longer lists it',
      description:
        "Deletes the agent's row. Refused (409 AGENT_IN_USE) while this node's configuration names it " +
        '(remove it and reload first: it is then retired) or while this node has tasks in flight there. ' +
        'This node stops following it; another node naming it writes its row again at its next change. ' +
        'The body, if any, is an empty JSON object.',
      params: agentIdParam,
      body: emptyBody,
      ok: { status: 200, schema: forgetAnswer },
      errors: {
        404: [ErrorCode.NotFound],
        409: [ErrorCode.AgentInUse],
        503: [ErrorCode.EngineStopped, ErrorCode.StoreFailed],
      },
    },
    async ({ params: { id } }) => {
      await api.engine().forgetAgent(id);
      return { id, forgotten: true as const };
    },
  );
}
