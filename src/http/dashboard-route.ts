/**
 * The dashboard's static files, served by the node at `/`: the page, its one script and its
 * stylesheet, built into `dist/dashboard/` by `npm run build` (scripts/build-dashboard.mjs).
 * These routes are public — they hold no data; the page asks the API for everything, with the
 * token the user signs in with — and every answer carries a strict Content-Security-Policy:
 * scripts and styles only from this origin, nothing inline, no framing, no other connections.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * The policy of the dashboard's answers. No `'unsafe-inline'` anywhere: a string that reaches
 * the page can only ever be text. Progress bars set their width through the CSSOM, which the
 * policy allows (it governs markup and `style` attributes, not `element.style`).
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The files, by route: the file's name in the build folder and its media type. */
const FILES: Readonly<Record<string, readonly [string, string]>> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/assets/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/assets/app.css': ['app.css', 'text/css; charset=utf-8'],
  '/assets/icon.svg': ['icon.svg', 'image/svg+xml'],
};

/** Options of {@link dashboardRoutes}. */
export interface DashboardOptions {
  /** Where the built files are. @default dist/dashboard of this package */
  readonly dir?: string;
}

/**
 * The build folder: `dist/dashboard` beside `dist/src` when running from the build, or the
 * package's `dist/dashboard` when running from the sources (tests, tsx).
 */
function defaultDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const built = join(here, '..', '..', 'dashboard');
  return existsSync(join(built, 'index.html'))
    ? built
    : join(here, '..', '..', 'dist', 'dashboard');
}

interface Loaded {
  readonly body: Buffer;
  readonly etag: string;
  readonly mtimeMs: number;
}

/** Registers the dashboard's routes on the API server. */
export function dashboardRoutes(app: FastifyInstance, options: DashboardOptions = {}): void {
  const dir = options.dir ?? defaultDir();
  // Read on first use and kept; read again when the file changed (a new build under a running
  // node): one stat per request, on files of a few kilobytes.
  const cache = new Map<string, Loaded>();
  const load = (name: string): Loaded | null => {
    const path = join(dir, name);
    let mtimeMs: number;
    try {
      mtimeMs = statSync(path).mtimeMs;
    } catch {
      return null;
    }
    const hit = cache.get(name);
    if (hit && hit.mtimeMs === mtimeMs) return hit;
    const body = readFileSync(path);
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    const loaded = { body, etag, mtimeMs };
    cache.set(name, loaded);
    return loaded;
  };
  for (const [url, [name, type]] of Object.entries(FILES)) {
    app.get(url, { config: { role: 'public' } }, (request: FastifyRequest, reply: FastifyReply) => {
      reply
        .header('content-security-policy', DASHBOARD_CSP)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('x-frame-options', 'DENY')
        .header('cross-origin-opener-policy', 'same-origin')
        .header('cross-origin-resource-policy', 'same-origin')
        // Revalidated on each load (the ETag answers 304): a new build shows at once.
        .header('cache-control', 'no-cache');
      const file = load(name);
      if (!file)
        return reply
          .code(503)
          .type('text/plain; charset=utf-8')
          .send('The dashboard is not built here: run `npm run build`.\n');
      reply.header('etag', file.etag);
      if (request.headers['if-none-match'] === file.etag) return reply.code(304).send();
      return reply.type(type).send(file.body);
    });
  }
}
