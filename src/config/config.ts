/**
 * The configuration file of `coco serve` (JSON): where the store is, how the HTTP API listens,
 * which agents exist (id, URL, shared secret) and which modules define the command types.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ErrorCode, ValidationError } from '../core/errors.js';
import { toIssues } from '../core/params.js';
import { DEFAULT_STORE_URL } from './store-url.js';

/** Default port of the engine's HTTP API. */
export const DEFAULT_API_PORT = 7390;

const agentSchema = z.object({
  id: z.string().min(1).max(128),
  url: z.url(),
  secret: z.string().min(16, 'use a secret of at least 16 characters'),
});

/** The configuration, as validated (paths resolved against the file's folder). */
export const configSchema = z
  .object({
    /** Store URL. @default sqlite:.coco/coco.db */
    store: z.string().default(DEFAULT_STORE_URL),
    nodeId: z.string().min(1).optional(),
    api: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(DEFAULT_API_PORT),
        /** When set, every API call but health needs `Authorization: Bearer <token>`. */
        token: z.string().min(16).optional(),
      })
      .default({ host: '127.0.0.1', port: DEFAULT_API_PORT }),
    agents: z.array(agentSchema).default([]),
    /** Modules exporting command types (an array export named `commands`, or any arrays of them). */
    commands: z.array(z.string().min(1)).default([]),
    /** Keep the job/step view (the monitor). @default true */
    jobs: z.boolean().default(true),
    tuning: z.record(z.string(), z.number()).optional(),
    /**
     * On a shared store, what a node does when it lost its lease (another node fenced it):
     * `rejoin` as a fresh node, or `exit` with code 75 for its supervisor to restart it.
     * @default 'rejoin'
     */
    onLeaseLost: z.enum(['rejoin', 'exit']).default('rejoin'),
  })
  .strict();

/** A validated configuration. */
export type CocoConfig = z.output<typeof configSchema>;

/** Validates a configuration object; throws `INVALID_OPTIONS` naming each bad field. */
export function parseConfig(raw: unknown, baseDir: string, what = 'configuration'): CocoConfig {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success)
    throw new ValidationError(
      `invalid ${what}`,
      toIssues(parsed.error.issues),
      ErrorCode.InvalidOptions,
    );
  const c = parsed.data;
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const store =
    c.store.startsWith('sqlite:') && !isAbsolute(c.store.slice(7))
      ? `sqlite:${abs(c.store.slice(7))}`
      : c.store;
  return { ...c, store, commands: c.commands.map(abs) };
}

/** Reads and validates a configuration file. */
export function loadConfig(path: string): CocoConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ValidationError(
      `cannot read the configuration file ${path}`,
      [{ path: '', message: (error as Error).message }],
      ErrorCode.InvalidOptions,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ValidationError(
      `${path} is not valid JSON`,
      [{ path: '', message: (error as Error).message }],
      ErrorCode.InvalidOptions,
    );
  }
  return parseConfig(raw, dirname(resolve(path)), path);
}
