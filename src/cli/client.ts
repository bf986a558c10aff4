/**
 * The CLI's client of a node's HTTP API. Errors keep the API's codes; an unreachable server is
 * a `SERVER_UNREACHABLE` error saying where it looked and how to point elsewhere.
 *
 * @module
 */
import { z } from 'zod';
import { CocoError, ErrorCode, fromErrorInfo } from '../core/errors.js';
import { DEFAULT_API_PORT } from '../config/config.js';

/** Where the CLI looks for a node by default: `COCO_SERVER`, else the local default port. */
export function defaultServer(): string {
  return process.env.COCO_SERVER ?? `http://127.0.0.1:${DEFAULT_API_PORT}`;
}

const errorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});

/** A small typed client of the API. */
export class ApiClient {
  readonly server: string;
  readonly #token: string | undefined;

  constructor(server: string, token?: string) {
    this.server = server.replace(/\/+$/, '');
    this.#token = token ?? process.env.COCO_TOKEN;
  }

  async #call(method: string, path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      throw new CocoError(
        ErrorCode.ServerUnreachable,
        `cannot reach a coco node at ${this.server} (${(error as Error).message}); start one with "coco serve", or point at one with --server or COCO_SERVER`,
        { cause: error },
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      throw new CocoError(
        ErrorCode.AgentProtocol,
        `${this.server}${path} answered ${res.status} with something that is not JSON`,
      );
    }
    if (!res.ok) {
      const parsed = errorBody.safeParse(json);
      throw parsed.success
        ? fromErrorInfo(parsed.data.error)
        : new CocoError(ErrorCode.HttpError, `${method} ${path}: HTTP ${res.status}`);
    }
    return json;
  }

  get(path: string): Promise<unknown> {
    return this.#call('GET', path);
  }

  post(path: string, body: unknown): Promise<unknown> {
    return this.#call('POST', path, body);
  }

  /** Follows a server-sent event stream, calling `onEvent` with each event's JSON data. */
  async stream(path: string, onEvent: (data: unknown) => void): Promise<void> {
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, {
        headers: this.#token ? { authorization: `Bearer ${this.#token}` } : {},
      });
    } catch (error) {
      throw new CocoError(
        ErrorCode.ServerUnreachable,
        `cannot reach a coco node at ${this.server} (${(error as Error).message})`,
        { cause: error },
      );
    }
    if (!res.ok || !res.body) {
      const parsed = errorBody.safeParse(JSON.parse((await res.text()) || 'null'));
      throw parsed.success
        ? fromErrorInfo(parsed.data.error)
        : new CocoError(ErrorCode.HttpError, `GET ${path}: HTTP ${res.status}`);
    }
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n');
        if (data) onEvent(JSON.parse(data));
      }
    }
  }
}
