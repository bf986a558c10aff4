/**
 * Who may call what: tokens with roles, deny by default, and the checks that keep a browser from
 * being turned against the API (foreign `Host`, cross-origin, non-JSON state changes).
 *
 * Every route declares its role in its route config (`config: { role: 'viewer' }`); the one
 * `onRequest` hook of {@link guard} refuses a route that declares none. `public` routes (liveness,
 * the dashboard's static files) need no token; the roles are ordered viewer < operator < admin,
 * and a token's role must reach the route's.
 *
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode } from '../core/errors.js';

/** The roles of API tokens, weakest first. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
/** A token's role: `viewer` reads, `operator` also submits and cancels, `admin` also prunes. */
export type Role = (typeof ROLES)[number];
/** What a route needs: a role, or nothing (`public`: liveness, static files). */
export type RouteRole = Role | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; a route without one is refused to everyone (deny by default). */
    role?: RouteRole;
  }
}

/** An API token as configured (the token itself already read from its file or the environment). */
export interface ApiToken {
  readonly name: string;
  readonly role: Role;
  readonly token: string;
}

/**
 * Routes a plugin of another part registers without a route config, and the role they get: the
 * node's Prometheus scrape endpoint (observability) reads counts, so viewer.
 */
const DEFAULT_ROLES: Readonly<Record<string, RouteRole>> = { '/metrics': 'viewer' };

/**
 * Paths that are public whatever their route says: the dashboard's static files hold no data
 * (every number they show comes from the API, behind a token). GET and HEAD only.
 */
function isStaticPath(url: string): boolean {
  return url === '/' || url === '/index.html' || url.startsWith('/assets/');
}

/** Whether the method changes state (and so must be same-origin JSON). */
function isStateChanging(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
}

/** The tokens a node accepts, compared in constant time. */
export class TokenTable {
  #tokens: readonly { readonly digest: Buffer; readonly token: ApiToken }[] = [];

  constructor(tokens: readonly ApiToken[]) {
    this.replace(tokens);
  }

  /** Accepts these tokens from now on, and no others (a reload: rotation, revocation). */
  replace(tokens: readonly ApiToken[]): void {
    this.#tokens = tokens.map((token) => ({ digest: digest(token.token), token }));
  }

  /**
   * The token a bearer header carries, or null. Every configured token is compared (digests of
   * equal length, `timingSafeEqual`), so the time taken says nothing of which one matched or how
   * much of it.
   */
  find(header: string | undefined): ApiToken | null {
    if (header === undefined || !header.startsWith('Bearer ')) return null;
    const given = digest(header.slice(7).trim());
    let found: ApiToken | null = null;
    for (const t of this.#tokens) if (timingSafeEqual(t.digest, given)) found = t.token;
    return found;
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

const RANK: Readonly<Record<Role, number>> = { viewer: 0, operator: 1, admin: 2 };

/** Whether a token of role `has` may call a route needing `needs`. */
export function roleReaches(has: Role, needs: Role): boolean {
  return RANK[has] >= RANK[needs];
}

/** Options of {@link guard}. */
export interface GuardOptions {
  readonly tokens: TokenTable;
  /**
   * Host names accepted in the `Host` header besides IP literals and `localhost` (DNS rebinding:
   * a foreign name pointing at this address is refused). The bound host name goes here too.
   */
  readonly allowedHosts: readonly string[];
}

/** The host name of a `Host` header (no port, no IPv6 brackets), lower case. */
function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

/**
 * Whether a `Host` header names this server: an IP literal (a page reached by address cannot be
 * rebound), `localhost`, or one of the allowed names.
 */
export function hostAllowed(header: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (header === undefined || header === '') return false;
  const name = hostName(header);
  return (
    isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost') || allowed.has(name)
  );
}

interface Refusal {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

/**
 * Adds the API's one access hook: the `Host` check, the token and its role, then for state
 * changes the origin and the content type. A refused call never reaches its handler (nothing
 * changes) and is logged at warn with the route and the caller's address — never the token.
 * Routes registered later, by any plugin, go through it too.
 */
export function guard(app: FastifyInstance, options: GuardOptions): void {
  const allowed = new Set(options.allowedHosts.map((h) => h.toLowerCase()));
  const refuse = (request: FastifyRequest, reply: FastifyReply, r: Refusal): FastifyReply => {
    request.log.warn(
      {
        route: request.routeOptions.url ?? null,
        method: request.method,
        url: request.url.split('?')[0],
        ip: request.ip,
        status: r.status,
        code: r.code,
      },
      `API call refused: ${r.message}`,
    );
    return reply.code(r.status).send({ error: { code: r.code, message: r.message } });
  };
  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url;
    const matched = route !== undefined && !request.is404;
    const declared = matched ? (request.routeOptions.config.role ?? DEFAULT_ROLES[route]) : null;
    const path = request.url.split('?')[0] ?? '';
    const isPublic =
      declared === 'public' ||
      (matched && (request.method === 'GET' || request.method === 'HEAD') && isStaticPath(path));
    if (isPublic) {
      // A public route answers anyone; a valid token still says who asks (readiness gives its
      // details only then). An invalid one is not refused here.
      const token = options.tokens.find(request.headers.authorization);
      if (token) request.caller = { name: token.name, role: token.role };
      return;
    }
    // `request.host`: the Host header, or behind a trusted proxy (api.trustProxy) the host the
    // client asked for (X-Forwarded-Host).
    if (!hostAllowed(request.host, allowed)) {
      return refuse(request, reply, {
        status: 421,
        code: ErrorCode.Forbidden,
        message: `the Host header "${request.host}" does not name this server (add it to api.allowedHosts)`,
      });
    }
    const token = options.tokens.find(request.headers.authorization);
    if (!token) {
      return refuse(request, reply, {
        status: 401,
        code: ErrorCode.Unauthorized,
        message: 'a valid "Authorization: Bearer <token>" header is required',
      });
    }
    // Unknown routes answer 404 to any valid token (their handler says so).
    if (!matched) return;
    if (declared === undefined || declared === null) {
      return refuse(request, reply, {
        status: 403,
        code: ErrorCode.Forbidden,
        message: `route ${request.method} ${route} declares no role: refused to everyone`,
      });
    }
    if (!roleReaches(token.role, declared)) {
      return refuse(request, reply, {
        status: 403,
        code: ErrorCode.Forbidden,
        message: `${request.method} ${route} needs the ${declared} role; this token has ${token.role}`,
      });
    }
    // The caller's name, for the access log and handlers (never the token).
    request.caller = { name: token.name, role: token.role };
    if (!isStateChanging(request.method)) return;
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== `${request.protocol}://${request.host}`) {
      return refuse(request, reply, {
        status: 403,
        code: ErrorCode.Forbidden,
        message: `cross-origin request from ${origin} refused`,
      });
    }
    const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      return refuse(request, reply, {
        status: 415,
        code: ErrorCode.UnsupportedMediaType,
        message: `${request.method} ${route} takes only application/json (got ${type === '' ? 'none' : type})`,
      });
    }
  });
  app.decorateRequest('caller', null);
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who called (the token's name and role), set by the access hook; null on public routes. */
    caller: { readonly name: string; readonly role: Role } | null;
  }
}
