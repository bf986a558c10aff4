/**
 * The CLI's client of a node's HTTP API. Errors keep the API's codes; an unreachable server is
 * a `SERVER_UNREACHABLE` error saying where it looked and how to point elsewhere.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { Option } from 'commander';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { CocoError, ErrorCode, fromErrorInfo } from '../core/errors.js';
import { readLocalToken, tokenFilePath } from '../config/api-tokens.js';
import { DEFAULT_API_PORT, loadConfig } from '../config/config.js';
import { readSecretFile } from '../config/secrets.js';
import { DEFAULT_STORE_URL } from '../config/store-url.js';
import { usage } from './errors.js';

/** The environment variable the CLI takes its API token from. */
export const TOKEN_ENV = 'COCO_TOKEN';

/** The `--token-file` option of the subcommands that call a node. */
export function tokenFileOption(): Option {
  return new Option(
    '--token-file <path>',
    `file holding the API token (or ${TOKEN_ENV}; default: the token the node created beside its store)`,
  );
}

/** `--token` is refused: process arguments are visible to every user of the host. */
export function tokenInArgs(): CocoError {
  return usage(
    `--token is not accepted: process arguments are visible to every user of the host (ps, /proc); ` +
      `give the token in a file only you can read (--token-file <path>) or in ${TOKEN_ENV}`,
  );
}

/** Where the CLI may find its API token (see {@link findToken}). */
export interface TokenSources {
  /** `--token-file`: a file holding the token. */
  readonly tokenFile?: string | undefined;
  /** `--store`: the store whose node's own token to use. */
  readonly store?: string | undefined;
  /** `--config`: the configuration naming the store. */
  readonly config?: string | undefined;
}

/** A token found, and where (never the token in messages: only the place). */
export interface FoundToken {
  readonly token: string | undefined;
  /** Where the CLI looked, for the message of a refused call. */
  readonly looked: string;
}

/**
 * The API token, first found of: `--token-file`; `COCO_TOKEN`; the token a node without
 * configured tokens created beside its store — the store of `--store`, else of the
 * configuration (`--config`, else ./coco.json), else the default store. The most explicit
 * source wins; the file beside the store is what makes the CLI work on a node's own machine
 * with nothing set. A token is never taken from the arguments (`ps` shows them to every user).
 */
export function findToken(o: TokenSources): FoundToken {
  if (o.tokenFile !== undefined) {
    try {
      return { token: readSecretFile(resolve(o.tokenFile)).secret, looked: o.tokenFile };
    } catch (error) {
      throw error instanceof CocoError ? usage(error.plainMessage) : error;
    }
  }
  const env = process.env[TOKEN_ENV];
  if (env !== undefined && env !== '') return { token: env, looked: TOKEN_ENV };
  let store = o.store;
  let baseDir = process.cwd();
  const config = o.config ?? (existsSync('coco.json') ? 'coco.json' : undefined);
  if (store === undefined && config !== undefined) {
    try {
      store = loadConfig(config).store;
      baseDir = dirname(resolve(config));
    } catch {
      // A configuration the CLI cannot read names no store: the default one is tried.
    }
  }
  try {
    const path = tokenFilePath(store ?? DEFAULT_STORE_URL, baseDir);
    return {
      token: readLocalToken(path) ?? undefined,
      looked: `--token-file, ${TOKEN_ENV} and ${path}`,
    };
  } catch {
    return { token: undefined, looked: `--token-file and ${TOKEN_ENV}` };
  }
}

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
  readonly #looked: string;

  /** A client of the node at `server`, with the token found (see {@link findToken}). */
  constructor(server: string, token: FoundToken | string | undefined = findToken({})) {
    this.server = server.replace(/\/+$/, '');
    const found = typeof token === 'object' ? token : { token, looked: 'the caller' };
    this.#token = found.token;
    this.#looked = found.looked;
  }

  /** The error of a refused call, saying where the CLI looked for its token. */
  #refused(info: { code: string; message: string; details?: unknown }): CocoError {
    const error = fromErrorInfo(info);
    if (info.code !== ErrorCode.Unauthorized) return error;
    return new CocoError(
      info.code,
      `${info.message}; ${this.#token === undefined ? 'no token found' : 'the token was refused'} (looked in ${this.#looked}). ` +
        `Use the token file of the node's store (--store, --config), --token-file <path> or ${TOKEN_ENV}`,
      { details: info.details },
    );
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
        ? this.#refused(parsed.data.error)
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
        ? this.#refused(parsed.data.error)
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
