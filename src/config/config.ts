/**
 * The configuration file of `coco serve` (JSON): where the store is, how the HTTP API listens,
 * which agents exist (id, URL, shared secret) and which modules define the command types.
 *
 * Secrets need not be written in it: an agent's `secretFile` names a file holding its secret
 * (resolved against the configuration's folder), and any string value may use `${NAME}` for the
 * environment variable NAME (`$${` for a literal `${`), e.g. a store URL's password.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { CocoError, ErrorCode, ValidationError, type ValidationIssue } from '../core/errors.js';
import { toIssues } from '../core/params.js';
import { DEFAULT_PRUNE_BATCH } from '../engine/retention.js';
import { MAX_PRUNE_LIMIT } from '../store/port.js';
import { durationSchema } from './duration.js';
import { expandEnv, MIN_SECRET_LENGTH, readSecretFile } from './secrets.js';
import type { AdmissionLimits, AgentLimit } from '../engine/admission.js';
import { DEFAULT_STORE_URL } from './store-url.js';

/** Default port of the engine's HTTP API. */
export const DEFAULT_API_PORT = 7390;

const agentSchema = z
  .object({
    id: z.string().min(1).max(128),
    url: z.url(),
    /** The shared secret itself (or `${NAME}` for an environment variable). */
    secret: z
      .string()
      .min(MIN_SECRET_LENGTH, `use a secret of at least ${MIN_SECRET_LENGTH} characters`)
      .optional(),
    /** A file holding the shared secret (relative to the configuration's folder). */
    secretFile: z.string().min(1).optional(),
    /** Tasks running at once on the agent, at most; the rest wait `queued` in the engine. */
    maxRunning: z.number().int().positive().optional(),
    /** Per verb: tasks of that verb running at once on the agent, at most. */
    maxRunningByVerb: z.record(z.string().min(1), z.number().int().positive()).optional(),
  })
  .refine((a) => (a.secret === undefined) !== (a.secretFile === undefined), {
    message: 'give exactly one of secret and secretFile',
  });

/**
 * An API token: its name (logs say who called, never the token), role, and the token itself or
 * a file holding it (relative to the configuration's folder). `${NAME}` takes it from the
 * environment.
 */
const tokenSchema = z
  .object({
    name: z.string().min(1).max(64),
    role: z.enum(['viewer', 'operator', 'admin']),
    token: z
      .string()
      .min(MIN_SECRET_LENGTH, `use a token of at least ${MIN_SECRET_LENGTH} characters`)
      .optional(),
    tokenFile: z.string().min(1).optional(),
  })
  .strict()
  .refine((t) => (t.token === undefined) !== (t.tokenFile === undefined), {
    message: 'give exactly one of token and tokenFile',
  });

/**
 * Retention, off unless configured: a node deletes the trees that ended at least `maxAge` ago
 * (with their jobs) every `interval`, in batches of `batch` trees, each pass for at most
 * `budget`. Durations are `"30d"`-style text or numbers of milliseconds.
 */
const retentionSchema = z
  .object({
    /** Age past which an ended tree goes (e.g. `"30d"`). */
    maxAge: durationSchema,
    /** Time between passes. @default "1h" */
    interval: durationSchema.default(3_600_000),
    /** Trees per transaction. @default 100 */
    batch: z.number().int().min(1).max(MAX_PRUNE_LIMIT).default(DEFAULT_PRUNE_BATCH),
    /** Longest a pass goes on; what is left waits for the next. @default "30s" */
    budget: durationSchema.default(30_000),
  })
  .strict();

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
        /** One admin token (shorthand of a `tokens` entry named `token`). */
        token: z.string().min(MIN_SECRET_LENGTH).optional(),
        /**
         * The tokens the API accepts. None configured: the node creates its own admin token
         * beside the store (and refuses to bind a non-loopback address).
         */
        tokens: z.array(tokenSchema).default([]),
        /**
         * Host names the `Host` header may carry besides IP literals and localhost (DNS
         * rebinding defence); the bound host is always allowed.
         */
        allowedHosts: z.array(z.string().min(1)).default([]),
        /**
         * Ended commands whose rendered detail the API keeps for the next read (an ended
         * command never changes; http/detail-cache.ts); 0 keeps none. @default 10,000
         */
        detailCacheEntries: z.number().int().min(0).max(1_000_000).optional(),
        /**
         * Behind a reverse proxy (TLS termination): trust its `X-Forwarded-Proto`, `-Host` and
         * `-For` — `true` for any peer, or the proxies' addresses / CIDR ranges. Needed for the
         * same-origin check of state-changing calls when browsers see `https://` and the node
         * `http://`, and for callers' real addresses in the logs. @default false
         */
        trustProxy: z.union([z.boolean(), z.array(z.string().min(1)).min(1)]).optional(),
        /**
         * At most `max` calls per `window` from each token (its name), answered 429
         * `RATE_LIMITED` with `Retry-After` past it; public routes (liveness, readiness, the
         * dashboard's files) are not counted. Off unless configured.
         */
        rateLimit: z
          .object({
            max: z.number().int().min(1),
            /** @default "1m" */
            window: durationSchema.default(60_000),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({ host: '127.0.0.1', port: DEFAULT_API_PORT, tokens: [], allowedHosts: [] }),
    agents: z.array(agentSchema).default([]),
    /** Modules exporting command types (an array export named `commands`, or any arrays of them). */
    commands: z.array(z.string().min(1)).default([]),
    /**
     * Keep the job/step view (the monitor): `true`, `false`, or `{ stopTimeout }` — how long a
     * stopping node waits for the view's last writes before letting go of a job store that does
     * not answer (`"5s"`, the default; what is not written is reconciled at the next start).
     * @default true
     */
    jobs: z
      .union([z.boolean(), z.object({ stopTimeout: durationSchema.optional() }).strict()])
      .default(true),
    tuning: z.record(z.string(), z.number()).optional(),
    /**
     * On a shared store, what a node does when it lost its lease (another node fenced it):
     * `rejoin` as a fresh node, or `exit` with code 75 for its supervisor to restart it.
     * @default 'rejoin'
     */
    onLeaseLost: z.enum(['rejoin', 'exit']).default('rejoin'),
    /** Retention: absent, the node keeps every ended tree (prune with `coco prune`). */
    retention: retentionSchema.optional(),
    /**
     * Admission (besides the agents' `maxRunning`): limits of running root commands per type
     * and per node; and ageing: a queued task or root ranks as if queued one `ageStep` earlier
     * per priority level, so nothing waits behind higher priorities for ever.
     * @default { ageStep: "1m" }
     */
    admission: z
      .object({
        ageStep: durationSchema.optional(),
        /** Root commands running at once on this node, at most; the rest wait. */
        maxRunningRoots: z.number().int().positive().optional(),
        /** Per command type: its root commands running at once on this node, at most. */
        types: z
          .record(z.string().min(1), z.object({ maxRunning: z.number().int().positive() }).strict())
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/** An agent of the configuration, its secret read. */
export interface AgentConfig {
  readonly id: string;
  readonly url: string;
  readonly secret: string;
  readonly maxRunning?: number;
  readonly maxRunningByVerb?: Readonly<Record<string, number>>;
}

/** The engine's admission limits written in a configuration (its agents' `maxRunning`). */
export function limitsOf(config: CocoConfig): AdmissionLimits {
  const agents: Record<string, AgentLimit> = {};
  for (const a of config.agents) {
    if (a.maxRunning === undefined && a.maxRunningByVerb === undefined) continue;
    agents[a.id] = {
      ...(a.maxRunning !== undefined ? { maxRunning: a.maxRunning } : {}),
      ...(a.maxRunningByVerb !== undefined ? { maxRunningByVerb: a.maxRunningByVerb } : {}),
    };
  }
  const { ageStep, maxRunningRoots, types } = config.admission ?? {};
  return {
    agents,
    ...(ageStep !== undefined ? { ageStepMs: ageStep } : {}),
    ...(maxRunningRoots !== undefined ? { maxRunningRoots } : {}),
    ...(types !== undefined ? { types } : {}),
  };
}

/** An API token of the configuration, its file read. */
export interface TokenConfig {
  readonly name: string;
  readonly role: 'viewer' | 'operator' | 'admin';
  readonly token: string;
}

/** A validated configuration (agents' secret files and token files read). */
export type CocoConfig = Omit<z.output<typeof configSchema>, 'agents' | 'api'> & {
  readonly agents: readonly AgentConfig[];
  readonly api: {
    readonly host: string;
    readonly port: number;
    /** The configured tokens (`api.token` included, as an admin token named `token`). */
    readonly tokens: readonly TokenConfig[];
    readonly allowedHosts: readonly string[];
    readonly detailCacheEntries?: number;
    readonly trustProxy?: boolean | readonly string[];
    /** At most `max` calls per `window` (ms) from each token. */
    readonly rateLimit?: { readonly max: number; readonly window: number };
  };
  /** The folder relative paths were resolved against (the configuration's). */
  readonly baseDir: string;
};

/** Options of {@link parseConfig} and {@link loadConfig}. */
export interface ParseConfigOptions {
  /** Where `${NAME}` finds its values. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Told of what is allowed but unwise (a secret file readable by others). @default silent */
  readonly warn?: (message: string) => void;
}

/**
 * Validates a configuration object: `${NAME}` replaced in every string, then the schema, then
 * the agents' secret files read. Throws `INVALID_OPTIONS` naming each bad field (and each
 * missing variable); never a secret.
 */
export function parseConfig(
  raw: unknown,
  baseDir: string,
  what = 'configuration',
  options: ParseConfigOptions = {},
): CocoConfig {
  const invalid = (issues: readonly ValidationIssue[]): ValidationError =>
    new ValidationError(`invalid ${what}`, issues, ErrorCode.InvalidOptions);
  const expansion: ValidationIssue[] = [];
  const expanded = expandStrings(raw, options.env ?? process.env, [], expansion);
  if (expansion.length > 0) throw invalid(expansion);
  const parsed = configSchema.safeParse(expanded);
  if (!parsed.success) throw invalid(toIssues(parsed.error.issues));
  const c = parsed.data;
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const store =
    c.store.startsWith('sqlite:') && !isAbsolute(c.store.slice(7))
      ? `sqlite:${abs(c.store.slice(7))}`
      : c.store;
  const secretIssues: ValidationIssue[] = [];
  const agents = c.agents.map((agent, i): AgentConfig => {
    const { id, url, maxRunning, maxRunningByVerb } = agent;
    const limits = {
      ...(maxRunning !== undefined ? { maxRunning } : {}),
      ...(maxRunningByVerb !== undefined ? { maxRunningByVerb } : {}),
    };
    if (agent.secret !== undefined) return { id, url, secret: agent.secret, ...limits };
    try {
      const read = readSecretFile(abs(agent.secretFile ?? ''));
      if (read.warning) options.warn?.(read.warning);
      return { id, url, secret: read.secret, ...limits };
    } catch (error) {
      if (!(error instanceof CocoError)) throw error;
      secretIssues.push({ path: `agents.${i}.secretFile`, message: error.plainMessage });
      return { id, url, secret: '', ...limits };
    }
  });
  const tokens = c.api.tokens.map((t, i): TokenConfig => {
    const { name, role } = t;
    if (t.token !== undefined) return { name, role, token: t.token };
    try {
      const read = readSecretFile(abs(t.tokenFile ?? ''));
      if (read.warning) options.warn?.(read.warning);
      return { name, role, token: read.secret };
    } catch (error) {
      if (!(error instanceof CocoError)) throw error;
      secretIssues.push({ path: `api.tokens.${i}.tokenFile`, message: error.plainMessage });
      return { name, role, token: '' };
    }
  });
  if (c.api.token !== undefined) tokens.push({ name: 'token', role: 'admin', token: c.api.token });
  if (secretIssues.length > 0) throw invalid(secretIssues);
  const { host, port, allowedHosts, detailCacheEntries, trustProxy, rateLimit } = c.api;
  return {
    ...c,
    store,
    agents,
    api: {
      host,
      port,
      tokens,
      allowedHosts,
      ...(detailCacheEntries === undefined ? {} : { detailCacheEntries }),
      ...(trustProxy === undefined ? {} : { trustProxy }),
      ...(rateLimit === undefined ? {} : { rateLimit }),
    },
    commands: c.commands.map(abs),
    baseDir: resolve(baseDir),
  };
}

/** `value` with `${NAME}` replaced in every string it holds; problems go to `issues`. */
function expandStrings(
  value: unknown,
  env: Readonly<Record<string, string | undefined>>,
  path: readonly (string | number)[],
  issues: ValidationIssue[],
): unknown {
  if (typeof value === 'string') {
    try {
      return expandEnv(value, env);
    } catch (error) {
      if (!(error instanceof CocoError)) throw error;
      issues.push({ path: path.join('.'), message: error.plainMessage });
      return value;
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => expandStrings(v, env, [...path, i], issues));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, expandStrings(v, env, [...path, k], issues)]),
    );
  }
  return value;
}

/** Reads and validates a configuration file (see {@link parseConfig}). */
export function loadConfig(path: string, options: ParseConfigOptions = {}): CocoConfig {
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
  return parseConfig(raw, dirname(resolve(path)), path, options);
}
