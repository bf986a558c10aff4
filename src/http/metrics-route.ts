/**
 * `GET /metrics`: the node's metrics in the Prometheus text format (see
 * `observability/metrics.ts`). A fastify plugin of its own, registered by the API; the route's
 * `config.role` is what the API's authentication reads (a viewer may scrape).
 *
 * @module
 */
import type { FastifyInstance } from 'fastify';
import type { NodeMetrics } from '../observability/metrics.js';

/** Options of {@link metricsRoute}. */
export interface MetricsRouteOptions {
  readonly metrics: NodeMetrics;
}

/** Registers `GET /metrics` (a fastify plugin: `app.register(metricsRoute, { metrics })`). */
export function metricsRoute(
  app: FastifyInstance,
  options: MetricsRouteOptions,
  done: (error?: Error) => void,
): void {
  const { metrics } = options;
  app.get('/metrics', { config: { role: 'viewer' } }, async (_request, reply) => {
    const text = await metrics.text();
    return reply.header('content-type', metrics.contentType).send(text);
  });
  done();
}
