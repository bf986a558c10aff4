/**
 * Helpers of the reference-agent tests: a signing HTTP client over `fetch`, agents on temporary
 * data directories (closed after each test), and a pino logger whose lines the test can read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { z } from 'zod';
import {
  createAgentServer,
  startAgent,
  type AgentOptions,
  type AgentServer,
  type RunningAgent,
} from '../../src/reference-agent/index.js';
import {
  PATHS,
  changesResponse,
  errorResponse,
  healthResponse,
  listResponse,
  okResponse,
  startResponse,
  statusResponse,
} from '../../src/protocol/agent-v2.js';
import { HEADERS, signedHeaders } from '../../src/protocol/signature.js';

export const SECRET = 'test-secret-0123456789abcdef';
export const CALLER = 'engine-node-1';

/** A raw answer. */
export interface Answer {
  readonly status: number;
  readonly body: unknown;
  /** The headers the request was sent with (to send it again, see {@link resend}). */
  readonly sent: Readonly<Record<string, string>>;
}

/** How to (mis)sign one request. */
export interface SignOptions {
  readonly secret?: string;
  readonly timestamp?: number;
  readonly caller?: string;
  /** Send no signature headers at all. */
  readonly unsigned?: boolean;
  /** Sign this text but send `body`. */
  readonly signedBody?: string;
  /** Sign for `caller` but send this caller header. */
  readonly sentCaller?: string;
  /** The agent the request is signed for. @default 'agent-1' */
  readonly agentId?: string;
  /** The nonce. @default a fresh one */
  readonly nonce?: string;
}

/** Sends a request to an agent, signed like the engine would (unless told otherwise). */
export async function send(
  url: string,
  method: 'GET' | 'POST',
  path: string,
  body: string | undefined,
  sign: SignOptions = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (sign.unsigned !== true) {
    Object.assign(
      headers,
      signedHeaders(sign.secret ?? SECRET, {
        method,
        path,
        agentId: sign.agentId ?? 'agent-1',
        caller: sign.caller ?? CALLER,
        body: sign.signedBody ?? body ?? '',
        ...(sign.timestamp === undefined ? {} : { timestamp: sign.timestamp }),
        ...(sign.nonce === undefined ? {} : { nonce: sign.nonce }),
      }),
    );
    if (sign.sentCaller !== undefined) headers[HEADERS.caller] = sign.sentCaller;
  }
  return resend(url, method, path, body, headers);
}

/** Sends a request with exactly these headers (a captured request, replayed). */
export async function resend(
  url: string,
  method: 'GET' | 'POST',
  path: string,
  body: string | undefined,
  headers: Readonly<Record<string, string>>,
): Promise<Answer> {
  const response = await fetch(url + path, { method, headers, body });
  const text = await response.text();
  return {
    status: response.status,
    body: text === '' ? undefined : (JSON.parse(text) as unknown),
    sent: headers,
  };
}

/** A client of one agent whose answers are checked against the protocol's schemas. */
export class Client {
  readonly url: string;
  readonly #sign: SignOptions;

  /** `sign`: how every request is signed (by default as the engine would, with `SECRET`). */
  constructor(url: string, sign: SignOptions = {}) {
    this.url = url;
    this.#sign = sign;
  }

  post(path: string, body: unknown, sign?: SignOptions): Promise<Answer> {
    return send(this.url, 'POST', path, JSON.stringify(body), { ...this.#sign, ...sign });
  }

  async #ok<T>(schema: z.ZodType<T>, answer: Promise<Answer>): Promise<T> {
    const { status, body } = await answer;
    if (status !== 200) throw new Error(`HTTP ${status}: ${JSON.stringify(body)}`);
    return schema.parse(body);
  }

  health() {
    return this.#ok(healthResponse, send(this.url, 'GET', PATHS.health, undefined, this.#sign));
  }
  /** Starts tasks; a missing `args` is sent as null (the schema requires the key, see below). */
  start(tasks: readonly { taskId: string; verb: string; args?: unknown }[]) {
    const body = { tasks: tasks.map((t) => ({ ...t, args: t.args ?? null })) };
    return this.#ok(startResponse, this.post(PATHS.start, body));
  }
  status(taskIds: readonly string[]) {
    return this.#ok(statusResponse, this.post(PATHS.status, { taskIds }));
  }
  async one(taskId: string) {
    return (await this.status([taskId])).tasks[0]!;
  }
  stop(taskIds: readonly string[]) {
    return this.#ok(okResponse, this.post(PATHS.stop, { taskIds }));
  }
  clear(taskIds: readonly string[]) {
    return this.#ok(okResponse, this.post(PATHS.clear, { taskIds }));
  }
  list(prefix: string) {
    return this.#ok(listResponse, this.post(PATHS.list, { prefix }));
  }
  changes(request: { cursor: number; bootId?: string; waitMs?: number; prefix?: string }) {
    return this.#ok(changesResponse, this.post(PATHS.changes, request));
  }
}

/** Checks an error answer and returns its error. */
export function refusal(answer: Answer, status: number) {
  if (answer.status !== status) {
    throw new Error(
      `expected HTTP ${status}, got ${answer.status}: ${JSON.stringify(answer.body)}`,
    );
  }
  return errorResponse.parse(answer.body).error;
}

/** A pino logger writing JSON lines into `lines`. */
export function captureLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const raw: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void raw.push(line) });
  return {
    logger,
    lines: () => raw.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

const dirs: string[] = [];
const agents: { close(): Promise<void> }[] = [];

/** Closes the agents and removes the directories of the test: `afterEach(cleanup)`. */
export async function cleanup(): Promise<void> {
  for (const agent of agents.splice(0)) await agent.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A fresh temporary directory, removed after the test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'coco-agent-'));
  dirs.push(dir);
  return dir;
}

/** A listening agent on 127.0.0.1 (closed after the test) and a client of it. */
export async function agent(
  options: Partial<AgentOptions> = {},
): Promise<{ agent: RunningAgent; client: Client; lines: () => Record<string, unknown>[] }> {
  const log = captureLogger();
  const running = await startAgent({
    id: 'agent-1',
    secret: SECRET,
    dataDir: options.dataDir ?? tempDir(),
    logger: log.logger,
    ...options,
  });
  agents.push(running);
  return { agent: running, client: new Client(running.url), lines: log.lines };
}

/**
 * A listening agent built with `createAgentServer` (so the test sees its table and feed),
 * closed after the test, and a client of it.
 */
export async function server(
  options: Partial<AgentOptions> = {},
): Promise<{ server: AgentServer; client: Client }> {
  const created = createAgentServer({
    id: 'agent-1',
    secret: SECRET,
    dataDir: options.dataDir ?? tempDir(),
    logger: captureLogger().logger,
    ...options,
  });
  agents.push(created);
  await created.app.listen({ host: '127.0.0.1', port: 0 });
  const address = created.app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('not listening on TCP');
  return { server: created, client: new Client(`http://127.0.0.1:${address.port}`) };
}

/** A promise with its resolve function, for verbs the test lets finish. */
export function gate<T = unknown>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}
