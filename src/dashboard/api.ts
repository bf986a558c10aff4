/**
 * The API client of the dashboard: every call carries `Authorization: Bearer <token>` with the
 * token the user signed in with, kept in `sessionStorage` only (gone when the tab closes, never
 * in a URL, never in `localStorage`). Answers are parsed with the schemas of `schemas.ts`.
 *
 * @module
 */
import type * as z from 'zod/mini';
import {
  admission,
  agentList,
  anything,
  releaseAnswer,
  rerunAnswer,
  commandDetails,
  commandPage,
  commandType,
  errorBody,
  jobPage,
  jobTree,
  readiness,
  resumeAnswer,
  typeList,
  whoami,
  type Admission,
  type Agent,
  type CommandDetails,
  type CommandSummary,
  type CommandType,
  type Job,
  type JobTree,
  type PausedType,
  type Readiness,
  type UnreadableRow,
  type TypeList,
  type Whoami,
} from './schemas.js';

const TOKEN_KEY = 'coco.token';

/** The token of this tab's session, or null before sign-in. */
export function sessionToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps the token for this tab's session. */
export function keepToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** Forgets the token (sign out, or a token the server refused). */
export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** A refused or failed API call: the HTTP status and the server's error code and message. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The headers of an authenticated call. */
export function authHeaders(token = sessionToken()): Record<string, string> {
  return token === null ? {} : { authorization: `Bearer ${token}` };
}

/** Turns a non-2xx answer into an {@link ApiError} (with the server's code when it gave one). */
export async function failure(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = errorBody.parse(JSON.parse(text));
    return new ApiError(res.status, body.error.code, body.error.message);
  } catch {
    return new ApiError(res.status, `HTTP ${res.status}`, text.slice(0, 200) || res.statusText);
  }
}

async function call<S extends z.ZodMiniType>(
  schema: S,
  path: string,
  init: RequestInit = {},
  token = sessionToken(),
): Promise<z.output<S>> {
  const res = await fetch(path, {
    ...init,
    headers: { accept: 'application/json', ...authHeaders(token), ...init.headers },
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!res.ok) throw await failure(res);
  return schema.parse(await res.json());
}

/** A query string from the values that are set. */
function query(values: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

/** Filters of the job list. */
export interface JobFilter {
  readonly status?: readonly string[];
  readonly type?: string;
  readonly createdAfter?: number;
  readonly createdBefore?: number;
}

/** A page of jobs and the cursor of the next one. */
export interface JobListPage {
  readonly jobs: readonly Job[];
  readonly nextCursor: string | null;
}

/** `GET /v1/jobs`: one page, newest first. */
export async function listJobs(
  filter: JobFilter,
  cursor: string | null,
  limit: number,
): Promise<JobListPage> {
  const page = await call(
    jobPage,
    `/v1/jobs${query({
      limit,
      status: filter.status?.join(','),
      type: filter.type,
      createdAfter: filter.createdAfter,
      createdBefore: filter.createdBefore,
      cursor: cursor ?? undefined,
    })}`,
  );
  return { jobs: page.jobs, nextCursor: page.nextCursor ?? null };
}

/** A page of commands, the rows that could not be read, and the next page's cursor. */
export interface CommandListPage {
  readonly commands: readonly CommandSummary[];
  readonly unreadable: readonly UnreadableRow[];
  readonly nextCursor: string | null;
}

/** `GET /v1/commands`: one page, newest first. */
export async function listCommands(
  filter: { status?: readonly string[]; type?: string; rootsOnly?: boolean },
  cursor: string | null,
  limit: number,
): Promise<CommandListPage> {
  const page = await call(
    commandPage,
    `/v1/commands${query({
      limit,
      status: filter.status?.join(','),
      type: filter.type,
      rootsOnly: filter.rootsOnly,
      cursor: cursor ?? undefined,
    })}`,
  );
  return {
    commands: page.commands,
    unreadable: page.unreadable ?? [],
    nextCursor: page.nextCursor ?? null,
  };
}

/** `GET /v1/whoami`. */
export function getWhoami(token?: string): Promise<Whoami> {
  return call(whoami, '/v1/whoami', {}, token);
}

/**
 * How long the readiness read may take: the node answers it within its own store probe's 800 ms
 * limit, so 3 s without an answer means the node itself does not answer (stopped, frozen, the
 * network).
 */
const READY_TIMEOUT_MS = 3_000;

/**
 * `GET /v1/ready`: the node's readiness, whether 200 or 503; with the token, so that the node
 * says what failed (`detail`).
 */
export async function getReadiness(): Promise<Readiness> {
  const res = await fetch('/v1/ready', {
    headers: { accept: 'application/json', ...authHeaders() },
    credentials: 'omit',
    cache: 'no-store',
    signal: AbortSignal.timeout(READY_TIMEOUT_MS),
  }).catch((error: unknown) => {
    throw error instanceof DOMException && error.name === 'TimeoutError'
      ? new Error(`no answer within ${READY_TIMEOUT_MS / 1000} s`)
      : error;
  });
  if (!res.ok && res.status !== 503) throw await failure(res);
  return readiness.parse(await res.json());
}

/** `GET /v1/jobs/:id`. */
export function getJob(id: number): Promise<JobTree> {
  return call(jobTree, `/v1/jobs/${id}`);
}

/** `GET /v1/commands/:id`. */
export function getCommand(id: number): Promise<CommandDetails> {
  return call(commandDetails, `/v1/commands/${id}`);
}

/** `GET /v1/agents`. */
export async function listAgents(): Promise<readonly Agent[]> {
  return (await call(agentList, '/v1/agents')).agents;
}

/** `GET /v1/admission`. */
export function getAdmission(): Promise<Admission> {
  return call(admission, '/v1/admission');
}

/** `POST /v1/commands/:id/cancel` (operators). */
export async function cancelCommand(id: number): Promise<void> {
  await call(anything, `/v1/commands/${id}/cancel`, postJson);
}

/** `POST /v1/commands/:id/rerun` (operators): the new command's id. */
export async function rerunCommand(id: number): Promise<number> {
  return (await call(rerunAnswer, `/v1/commands/${id}/rerun`, postJson)).id;
}

/** `POST /v1/commands/:id/release` (operators): how many commands of the tree run on. */
export async function releaseCommand(id: number): Promise<number> {
  return (await call(releaseAnswer, `/v1/commands/${id}/release`, postJson)).released;
}

/** `GET /v1/types`: the command types the node registers, with their roots and pauses. */
export function listTypes(): Promise<TypeList> {
  return call(typeList, '/v1/types');
}

/**
 * `POST /v1/types/:name/pause` (operators), with the operator's reason if any: the type as it is
 * now, paused (by its first pause, if it was paused already).
 */
export function pauseType(name: string, reason: string): Promise<CommandType> {
  return call(commandType, `/v1/types/${encodeURIComponent(name)}/pause`, {
    ...postJson,
    body: JSON.stringify(reason === '' ? {} : { reason }),
  });
}

/** `POST /v1/types/:name/resume` (operators): the pause it ended, or null (it was not paused). */
export async function resumeType(name: string): Promise<PausedType | null> {
  return (await call(resumeAnswer, `/v1/types/${encodeURIComponent(name)}/resume`, postJson))
    .resumed;
}

/** `POST /v1/admin/agents/:id/forget` (admins). */
export async function forgetAgent(id: string): Promise<void> {
  await call(anything, `/v1/admin/agents/${encodeURIComponent(id)}/forget`, postJson);
}

/** A state-changing call: JSON, an empty object as its body. */
const postJson: RequestInit = {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: '{}',
};
