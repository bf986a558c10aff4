/**
 * A small agent-protocol (v2) server for tests and the HTTP benchmark: in-memory tasks, signed
 * requests checked as the protocol wants (`verifyRequest` on the headers before the body is read,
 * then the body's hash, each nonce accepted once), long-polled changes, single-use task ids (as
 * every agent coco ships), and fault knobs (delay, error status, dropped connections, hangs,
 * malformed replies, a new boot id).
 *
 * One server can host many agents: each is reached under `/agents/<id>` (the protocol paths
 * follow), or at the root when the server hosts a single agent. With `protocol: 1` it plays
 * agents of the previous protocol, which know none of the `/v2/...` paths (404 `NOT_FOUND`).
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { z } from 'zod';
import {
  changesRequest,
  idsRequest,
  listRequest,
  MAX_CHANGES_WAIT_MS,
  PATHS,
  PROTOCOL_VERSION,
  startRequest,
  statusRequest,
  type taskStatus,
} from '../../src/protocol/agent-v2.js';
import { NonceMemory } from '../../src/protocol/replay.js';
import { bodySha256, HEADERS, verifyRequest } from '../../src/protocol/signature.js';
import { STOPPED_BEFORE_START, usedIdError, UsedTaskIds } from '../../src/protocol/used-ids.js';

type Status = z.output<typeof taskStatus>;
type Path = (typeof PATHS)[keyof typeof PATHS];

/** A fault: what the agent does instead of (or before) answering. */
export type FaultKind =
  | { readonly kind: 'delay'; readonly ms: number }
  | { readonly kind: 'status'; readonly status: number }
  | { readonly kind: 'drop' }
  | { readonly kind: 'hang' }
  | { readonly kind: 'malformed' }
  | { readonly kind: 'invalid' };

/** A fault rule: applies to `paths` (all when absent), `times` times (forever when absent). */
export type Fault = FaultKind & { readonly paths?: readonly Path[]; times?: number };

interface Task {
  readonly taskId: string;
  readonly verb: string;
  readonly args: unknown;
  status: Status;
  seq: number;
  timer: NodeJS.Timeout | null;
}

/** What a test can see of the agent's traffic. */
export interface FakeAgentCounters {
  /** Requests that reached the agent, by protocol path (refused ones included). */
  readonly requests: Map<string, number>;
  /** Requests refused with 401. */
  unauthorized: number;
  /** Task ids asked about per status request. */
  readonly statusSizes: number[];
}

/** One simulated agent. */
export class FakeAgent {
  readonly id: string;
  secret: string;
  bootId: string = randomUUID();
  readonly tasks = new Map<string, Task>();
  /** Ids stopped before their start arrived, or cleared: their starts are refused. */
  readonly used = new UsedTaskIds();
  readonly faults: Fault[] = [];
  readonly counters: FakeAgentCounters = {
    requests: new Map(),
    unauthorized: 0,
    statusSizes: [],
  };
  /** Nonces of the requests this agent accepted. */
  readonly nonces = new NonceMemory();
  /** Called when a task ends (with the wall time, ms): latency measurements. */
  onEnded: ((taskId: string, at: number) => void) | null = null;
  #seq = 0;
  readonly #waiters = new Set<() => void>();

  constructor(id: string, secret: string) {
    this.id = id;
    this.secret = secret;
  }

  /** Requests received on one path. */
  requests(path: Path): number {
    return this.counters.requests.get(path) ?? 0;
  }

  /** Adds a fault rule (first matching rule wins). */
  fault(fault: Fault): this {
    this.faults.push(fault);
    return this;
  }

  /** Removes every fault rule. */
  heal(): this {
    this.faults.length = 0;
    return this;
  }

  /** A new process: a new boot id (tasks and used ids kept unless `keepTasks` is false). */
  restart(keepTasks = true): string {
    this.bootId = randomUUID();
    if (!keepTasks) {
      for (const t of this.tasks.values()) if (t.timer) clearTimeout(t.timer);
      this.tasks.clear();
      this.used.clear();
    }
    this.#changed();
    return this.bootId;
  }

  /** Ends a running task (a `hold` task, typically). Returns false if it is not running. */
  finish(
    taskId: string,
    outcome: { result?: unknown; error?: { code: string; message: string } } = {},
  ): boolean {
    const task = this.tasks.get(taskId);
    if (!task || task.status.state !== 'running') return false;
    this.#end(task, outcome.error ? 'failed' : 'succeeded', outcome);
    return true;
  }

  /** Ids of running tasks. */
  running(): string[] {
    return [...this.tasks.values()]
      .filter((t) => t.status.state === 'running')
      .map((t) => t.taskId);
  }

  /** The fault to apply to a request on `path`, if any (counts it down). */
  takeFault(path: Path): FaultKind | null {
    const i = this.faults.findIndex((f) => !f.paths || f.paths.includes(path));
    if (i < 0) return null;
    const fault = this.faults[i]!;
    if (fault.times !== undefined && --fault.times <= 0) this.faults.splice(i, 1);
    return fault;
  }

  start(body: z.output<typeof startRequest>): unknown {
    const results = body.tasks.map(({ taskId, verb, args }) => {
      if (this.tasks.has(taskId)) return { taskId, accepted: true };
      const used = this.used.get(taskId, Date.now());
      if (used !== undefined) return { taskId, accepted: false, error: usedIdError(taskId, used) };
      if (!['noop', 'hold', 'sleep', 'fail'].includes(verb))
        return {
          taskId,
          accepted: false,
          error: { code: 'TASK_REJECTED', message: `unknown verb "${verb}"` },
        };
      const task: Task = {
        taskId,
        verb,
        args,
        status: { taskId, state: 'running', progress: 0 },
        seq: ++this.#seq,
        timer: null,
      };
      this.tasks.set(taskId, task);
      if (verb === 'noop') this.#end(task, 'succeeded', { result: args });
      else if (verb === 'fail')
        this.#end(task, 'failed', { error: { code: 'BOOM', message: 'the fail verb failed' } });
      else if (verb === 'sleep') {
        const ms = (args as { ms?: number } | null)?.ms ?? 10;
        task.timer = setTimeout(() => this.#end(task, 'succeeded', { result: args }), ms);
      }
      return { taskId, accepted: true };
    });
    this.#changed();
    return { bootId: this.bootId, results };
  }

  status(body: z.output<typeof statusRequest>): unknown {
    this.counters.statusSizes.push(body.taskIds.length);
    const tasks = body.taskIds.map(
      (taskId) =>
        this.tasks.get(taskId)?.status ??
        (this.used.get(taskId, Date.now()) === 'stopped'
          ? { taskId, state: 'cancelled', error: STOPPED_BEFORE_START }
          : { taskId, state: 'unknown' }),
    );
    return { bootId: this.bootId, tasks };
  }

  stop(body: z.output<typeof idsRequest>): unknown {
    for (const id of body.taskIds) {
      const task = this.tasks.get(id);
      if (task === undefined) this.used.add(id, 'stopped', Date.now());
      else if (task.status.state === 'running') this.#end(task, 'cancelled', {});
    }
    return { bootId: this.bootId, ok: true };
  }

  clear(body: z.output<typeof idsRequest>): unknown {
    for (const id of body.taskIds) {
      const task = this.tasks.get(id);
      if (task?.status.state === 'running') continue;
      this.tasks.delete(id);
      this.used.add(id, 'cleared', Date.now());
    }
    return { bootId: this.bootId, ok: true };
  }

  list(body: z.output<typeof listRequest>): unknown {
    return {
      bootId: this.bootId,
      taskIds: [...this.tasks.keys()].filter((id) => id.startsWith(body.prefix)),
    };
  }

  async changes(body: z.output<typeof changesRequest>, closed: AbortSignal): Promise<unknown> {
    const otherBoot = body.bootId !== undefined && body.bootId !== this.bootId;
    const from = otherBoot || body.cursor > this.#seq ? 0 : body.cursor;
    const collect = (): Status[] => {
      const out: Status[] = [];
      for (const t of this.tasks.values())
        if (t.seq > from && t.taskId.startsWith(body.prefix)) out.push(t.status);
      return out;
    };
    let tasks = collect();
    // A caller that knew another boot learns of the restart at once, even with nothing to report.
    if (tasks.length === 0 && body.waitMs > 0 && !otherBoot) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          closed.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(body.waitMs, MAX_CHANGES_WAIT_MS));
        this.#waiters.add(done);
        closed.addEventListener('abort', done);
      });
      tasks = collect();
    }
    return { bootId: this.bootId, cursor: this.#seq, tasks };
  }

  #end(
    task: Task,
    state: 'succeeded' | 'failed' | 'cancelled',
    outcome: { result?: unknown; error?: { code: string; message: string } },
  ): void {
    if (task.timer) clearTimeout(task.timer);
    task.timer = null;
    task.status = {
      taskId: task.taskId,
      state,
      ...(state === 'succeeded' && outcome.result !== undefined ? { result: outcome.result } : {}),
      ...(outcome.error ? { error: outcome.error } : {}),
      ...(state === 'cancelled' ? { error: { code: 'CANCELLED', message: 'stopped' } } : {}),
    };
    task.seq = ++this.#seq;
    this.#changed();
    this.onEnded?.(task.taskId, performance.timeOrigin + performance.now());
  }

  #changed(): void {
    for (const wake of [...this.#waiters]) wake();
  }
}

/** Options of {@link FakeAgentServer.start}. */
export interface FakeServerOptions {
  /** Agent ids, or `{ id, secret }`s. Secrets default to `secret-of-<id>-0123456789`. */
  readonly agents: readonly (string | { readonly id: string; readonly secret: string })[];
  /** Serve every agent under `/agents/<id>`. @default true when hosting more than one agent */
  readonly prefixRouting?: boolean;
  /** The agents' clock for the signature check. @default Date.now */
  readonly now?: () => number;
  /**
   * The protocol the agents speak: 1 plays agents of the previous release, which answer every
   * `/v2/...` path with 404 `NOT_FOUND`, as the protocol 1 reference agent did. @default 2
   */
  readonly protocol?: 1 | 2;
}

/** The default secret of a test agent. */
export function secretOf(id: string): string {
  return `secret-of-${id}-0123456789`;
}

/** What the server as a whole sees: connections and requests open at once, and their peaks. */
export interface FakeServerTraffic {
  connections: number;
  peakConnections: number;
  /** Requests being handled, long-polls (`changes`) excepted. */
  calls: number;
  peakCalls: number;
}

/** A node:http server hosting one or many fake agents. */
export class FakeAgentServer {
  readonly agents = new Map<string, FakeAgent>();
  readonly traffic: FakeServerTraffic = {
    connections: 0,
    peakConnections: 0,
    calls: 0,
    peakCalls: 0,
  };
  readonly #server: Server;
  readonly #prefixRouting: boolean;
  readonly #now: () => number;
  readonly #protocol: 1 | 2;
  readonly #closing = new AbortController();
  #base = '';

  private constructor(options: FakeServerOptions) {
    for (const a of options.agents) {
      const { id, secret } = typeof a === 'string' ? { id: a, secret: secretOf(a) } : a;
      this.agents.set(id, new FakeAgent(id, secret));
    }
    this.#prefixRouting = options.prefixRouting ?? this.agents.size > 1;
    this.#now = options.now ?? Date.now;
    this.#protocol = options.protocol ?? PROTOCOL_VERSION;
    // Every held long-poll listens for close(); thousands at once is the point, not a leak.
    setMaxListeners(0, this.#closing.signal);
    this.#server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
      const call = !(req.url ?? '').endsWith(PATHS.changes);
      const t = this.traffic;
      if (call) {
        t.calls++;
        t.peakCalls = Math.max(t.peakCalls, t.calls);
        res.once('close', () => void t.calls--);
      }
      void this.#handle(req, res);
    });
    this.#server.on('connection', (socket) => {
      const t = this.traffic;
      t.connections++;
      t.peakConnections = Math.max(t.peakConnections, t.connections);
      socket.once('close', () => void t.connections--);
    });
  }

  /** Starts a server on 127.0.0.1 (a free port). */
  static async start(options: FakeServerOptions): Promise<FakeAgentServer> {
    const server = new FakeAgentServer(options);
    await new Promise<void>((resolve) => server.#server.listen(0, '127.0.0.1', resolve));
    const { port } = server.#server.address() as AddressInfo;
    server.#base = `http://127.0.0.1:${port}`;
    return server;
  }

  /** The agent with this id. */
  agent(id: string): FakeAgent {
    const agent = this.agents.get(id);
    if (!agent) throw new Error(`no fake agent ${id}`);
    return agent;
  }

  /** The URL the broker should use for an agent. */
  url(id: string): string {
    return this.#prefixRouting ? `${this.#base}/agents/${id}` : this.#base;
  }

  /** The broker's agent list for these agents (with their secrets). */
  configs(): { id: string; url: string; secret: string }[] {
    return [...this.agents.values()].map((a) => ({
      id: a.id,
      url: this.url(a.id),
      secret: a.secret,
    }));
  }

  /** Stops listening, ends held long-polls and hung requests, closes every connection. */
  async close(): Promise<void> {
    this.#closing.abort();
    for (const agent of this.agents.values())
      for (const t of agent.tasks.values()) if (t.timer) clearTimeout(t.timer);
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = this.#route(req.url ?? '/');
    if (!route) {
      const message = `no call ${req.method} ${req.url}`;
      return refuseUnread(res, 404, { error: { code: 'NOT_FOUND', message } });
    }
    const { agent, path } = route;
    agent.counters.requests.set(path, (agent.counters.requests.get(path) ?? 0) + 1);
    const fault = agent.takeFault(path);
    if (fault) {
      switch (fault.kind) {
        case 'delay':
          await new Promise((r) => setTimeout(r, fault.ms));
          break;
        case 'status':
          return send(res, fault.status, {
            error: { code: 'FAKE_FAULT', message: `injected ${fault.status}` },
          });
        case 'drop':
          return void req.socket.destroy();
        case 'hang':
          return; // never answered; close() ends the connection
        case 'malformed':
          res.writeHead(200, { 'content-type': 'application/json' });
          return void res.end('{"bootId": "x", tasks: [oops');
        case 'invalid':
          return send(res, 200, { bootId: agent.bootId, surprise: true });
      }
    }
    const method = req.method ?? 'GET';
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const now = this.#now();
    const checked = verifyRequest(
      agent.secret,
      agent.id,
      method,
      path,
      {
        timestamp: header(HEADERS.timestamp),
        caller: header(HEADERS.caller),
        agent: header(HEADERS.agent),
        nonce: header(HEADERS.nonce),
        contentSha256: header(HEADERS.contentSha256),
        signature: header(HEADERS.signature),
      },
      now,
    );
    const refused = !checked.ok
      ? checked.reason
      : agent.nonces.remember(checked.fields.nonce, checked.fields.timestamp, now) === 'fresh'
        ? null
        : `nonce ${checked.fields.nonce} already used`;
    if (refused !== null) {
      agent.counters.unauthorized++;
      return refuseUnread(res, 401, { error: { code: 'UNAUTHORIZED', message: refused } });
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    if (checked.ok && bodySha256(raw) !== checked.fields.bodySha256) {
      agent.counters.unauthorized++;
      const message = 'the body does not match its signed hash';
      return send(res, 401, { error: { code: 'UNAUTHORIZED', message } });
    }
    const body = raw.toString('utf8');
    try {
      const answer = await this.#dispatch(agent, method, path, body);
      if (answer === undefined)
        return send(res, 405, { error: { code: 'METHOD', message: `${method} ${path}` } });
      send(res, 200, answer);
    } catch (error) {
      send(res, 400, {
        error: {
          code: 'BAD_REQUEST',
          message: error instanceof Error ? error.message : String(error),
        },
      });
    }
  }

  async #dispatch(agent: FakeAgent, method: string, path: Path, body: string): Promise<unknown> {
    if (path === PATHS.health) {
      if (method !== 'GET') return undefined;
      return {
        protocol: PROTOCOL_VERSION,
        agentId: agent.id,
        bootId: agent.bootId,
        version: 'fake-1',
        verbs: ['noop', 'hold', 'sleep', 'fail'],
        tasks: agent.tasks.size,
        time: Date.now(),
      };
    }
    if (method !== 'POST') return undefined;
    const json: unknown = JSON.parse(body);
    switch (path) {
      case PATHS.start:
        return agent.start(startRequest.parse(json));
      case PATHS.status:
        return agent.status(statusRequest.parse(json));
      case PATHS.stop:
        return agent.stop(idsRequest.parse(json));
      case PATHS.clear:
        return agent.clear(idsRequest.parse(json));
      case PATHS.list:
        return agent.list(listRequest.parse(json));
      case PATHS.changes:
        return agent.changes(changesRequest.parse(json), this.#closing.signal);
    }
  }

  #route(url: string): { agent: FakeAgent; path: Path } | null {
    let rest = url.split('?')[0] ?? '/';
    let agent: FakeAgent | undefined;
    if (this.#prefixRouting) {
      const m = /^\/agents\/([^/]+)(\/.*)$/.exec(rest);
      if (!m) return null;
      agent = this.agents.get(m[1]!);
      rest = m[2]!;
    } else agent = this.agents.values().next().value;
    const path = (Object.values(PATHS) as string[]).find((p) => p === rest) as Path | undefined;
    return agent && path && this.#protocol === PROTOCOL_VERSION ? { agent, path } : null;
  }
}

/** Answers without reading the request's body, and closes the connection (nothing to drain). */
function refuseUnread(res: ServerResponse, status: number, body: unknown): void {
  res.setHeader('connection', 'close');
  send(res, status, body);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
